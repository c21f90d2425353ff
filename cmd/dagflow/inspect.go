package main

import (
	"context"
	"fmt"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/dagflow/dagflow"
)

const statusHelp = `Usage: dagflow status [--db FILE] ID

Status prints the status of a run as indented JSON on stdout: its state, the
completed and failed steps, every result, and each step's state and attempts.
It only reads the database: unfinished runs in it are not resumed.

Exit status: 0 the run exists (whatever its state), 2 no such run or database,
3 the database is in use or cannot be opened.
`

const listHelp = `Usage: dagflow list [--db FILE] [--state STATE] [--limit N] [--json]

List prints the runs in the database, newest first, as a table with the
columns ID, STATE, STEPS (steps ended/all steps; a step has ended when it
completed, failed, was skipped or cancelled), FAILED, CREATED (UTC) and ERROR
(the first line of why the run failed); or, with --json, as JSON lines: one
object per run with the fields id, state, createdAt, startedAt, completedAt,
steps, done, failed and error.
A note on stderr says when there are more runs than --limit.
It only reads the database: unfinished runs in it are not resumed.

Exit status: 0, 2 bad flags or no such database, 3 the database is in use or
cannot be opened.
`

func (c *cli) cmdStatus(ctx context.Context, args []string) error {
	fs := c.newFlagSet("status", statusHelp)
	var f dbFlags
	f.register(c, fs)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	eng, err := c.open(&f, openReadOnly)
	if err != nil {
		return err
	}
	defer c.close(eng)
	st, err := eng.Status(ctx, pos[0])
	if err != nil {
		return c.runError(f.db, pos[0], err)
	}
	return c.printJSON(st)
}

var states = []dagflow.State{dagflow.StatePending, dagflow.StateRunning, dagflow.StateCompleted, dagflow.StateFailed, dagflow.StateCancelled}

func (c *cli) cmdList(ctx context.Context, args []string) error {
	fs := c.newFlagSet("list", listHelp)
	var f dbFlags
	f.register(c, fs)
	state := fs.String("state", "", "list only runs in `STATE`: pending (no step started yet), running, completed, failed or cancelled")
	limit := fs.Int("limit", 100, "list at most `N` runs")
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *state != "" && !slices.Contains(states, dagflow.State(*state)) {
		return inputError("list: --state %q: not one of pending, running, completed, failed, cancelled", *state)
	}
	if *limit < 1 {
		return inputError("list: --limit %d: must be at least 1", *limit)
	}
	eng, err := c.open(&f, openReadOnly)
	if err != nil {
		return err
	}
	defer c.close(eng)
	page, err := eng.List(ctx, dagflow.ListOptions{State: dagflow.State(*state), Limit: *limit})
	if err != nil {
		return opError("%s: listing runs: %v", f.db, err)
	}
	if *asJSON {
		for _, r := range page.Runs {
			if err := c.printLine(r); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tSTEPS\tFAILED\tCREATED\tERROR")
		for _, r := range page.Runs {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s", r.ID, r.State, r.Done, r.Steps, r.Failed,
				r.CreatedAt.UTC().Format(time.DateTime))
			if r.Error != "" {
				fmt.Fprintf(tw, "\t%s", oneLine(r.Error, 60))
			}
			fmt.Fprintln(tw)
		}
		if err := tw.Flush(); err != nil {
			return opError("writing the output: %v", err)
		}
	}
	if page.Next != "" {
		c.note(f.db, "more runs than --limit %d", *limit)
	}
	return nil
}

// printLine prints v as one line of JSON on stdout.
func (c *cli) printLine(v any) error {
	b, err := marshalNoEscape(v)
	if err == nil {
		_, err = c.stdout.Write(b)
	}
	if err != nil {
		return opError("writing the output: %v", err)
	}
	return nil
}

// oneLine cuts s to its first line and at most n runes.
func oneLine(s string, n int) string {
	for i, r := range s {
		if r == '\n' {
			s = s[:i] + " ..."
			break
		}
	}
	if r := []rune(s); len(r) > n {
		s = string(r[:n-3]) + "..."
	}
	return s
}
