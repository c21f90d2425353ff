package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
)

const deleteHelp = `Usage: dagflow delete [--db FILE] ID

Delete removes a run that has ended (completed, failed or cancelled) from the
database, with its steps, attempts, logs and webhooks, and the child runs of
its sub-workflow steps. A child run goes with its parent: delete the parent.
A run that has not ended is refused: cancel it first ('dagflow cancel ID').

Delete changes the database and runs nothing: the unfinished runs in it are not
resumed. It prints nothing on success.

Exit status: 0 deleted, 2 no such run or database, a run that has not ended or
a child run, 3 the database is in use or cannot be opened.
`

const pruneHelp = `Usage: dagflow prune [--db FILE] --older-than DURATION [--dry-run]

Prune deletes every run that ended (completed, failed or cancelled) more than
DURATION ago, as 'dagflow delete' does each, and prints the id of each run it
deleted on stdout, one per line, then how many on stderr. Child runs go with
their parent; runs that have not ended are kept, however old.

DURATION is a Go duration (90m, 36h, 1h30m) or a number of days (30d);
0 deletes every run that has ended. With --dry-run, prune prints the runs it
would delete and deletes none.

Prune changes the database and runs nothing: the unfinished runs in it are not
resumed. (An application embedding dagflow prunes as it goes with
WithRetention.)

Exit status: 0 (also when no run was old enough), 2 a missing or bad
--older-than or no such database, 3 the database is in use or cannot be
opened.
`

func (c *cli) cmdDelete(ctx context.Context, args []string) error {
	fs := c.newFlagSet("delete", deleteHelp)
	var f dbFlags
	f.register(c, fs)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id := pos[0]
	eng, err := c.open(&f, openQuiet)
	if err != nil {
		return err
	}
	defer c.close(eng)
	st, err := eng.Status(ctx, id)
	if err != nil {
		return c.runError(f.db, id, err)
	}
	if st.Parent != "" {
		return inputError("%s: run %q is a child run of %q, and goes with it: delete its parent once it has ended", f.db, id, st.Parent)
	}
	if err := eng.Delete(ctx, id); err != nil {
		var se *dagflow.StateError
		if errors.As(err, &se) {
			return inputError("cannot delete run %q: it is %s; cancel it first ('dagflow cancel %s')", id, se.State, id)
		}
		return c.runError(f.db, id, err)
	}
	return nil
}

func (c *cli) cmdPrune(ctx context.Context, args []string) error {
	fs := c.newFlagSet("prune", pruneHelp)
	var f dbFlags
	f.register(c, fs)
	var older durationFlag
	fs.Var(&older, "older-than", "delete the runs that ended more than `DURATION` ago (required; 36h, 30d)")
	dry := fs.Bool("dry-run", false, "print the runs that would be deleted, and delete none")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if !older.set {
		return inputError("prune: --older-than is required (see 'dagflow prune --help')")
	}
	eng, err := c.open(&f, openQuiet)
	if err != nil {
		return err
	}
	defer c.close(eng)
	before := time.Now().Add(-older.d)
	var ids []string
	for o := (dagflow.ListOptions{Limit: 1000}); ; {
		page, err := eng.List(ctx, o)
		if err != nil {
			return opError("%s: listing runs: %v", f.db, err)
		}
		for _, r := range page.Runs {
			// A child run goes with its parent; CompletedAt is zero while
			// a retry of the run is under way.
			if r.Parent == "" && r.State.Final() && !r.CompletedAt.IsZero() && r.CompletedAt.Before(before) {
				ids = append(ids, r.ID)
			}
		}
		if page.Next == "" {
			break
		}
		o.After = page.Next
	}
	verb := "deleted"
	if *dry {
		verb = "would delete"
	}
	n := 0
	for _, id := range ids {
		if !*dry {
			err := eng.Delete(ctx, id)
			if errors.Is(err, dagflow.ErrNotFound) {
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					c.note(f.db, "%s %d runs before the interrupt", verb, n)
					return c.interrupted("stopped")
				}
				c.note(f.db, "%s %d runs before the error", verb, n)
				return c.runError(f.db, id, err)
			}
		}
		n++
		if _, err := fmt.Fprintln(c.stdout, id); err != nil {
			return opError("writing the output: %v", err)
		}
	}
	c.note(f.db, "%s %d %s that ended before %s", verb, n, plural(n, "run", "runs"), before.UTC().Format(time.RFC3339))
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// durationFlag is a duration given as a Go duration or a number of days.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (f *durationFlag) String() string {
	if !f.set {
		return ""
	}
	return f.d.String()
}

func (f *durationFlag) Set(s string) error {
	d, err := parseDuration(s)
	if err != nil {
		return err
	}
	f.d, f.set = d, true
	return nil
}

// parseDuration reads a Go duration ("36h", "1h30m") or a number of days
// ("30d", "1.5d"); it refuses a negative one.
func parseDuration(s string) (time.Duration, error) {
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(days, 64)
		if err != nil || n != n || n > 100*365 {
			return 0, fmt.Errorf("%q is not a duration such as 36h or 30d", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, fmt.Errorf("%q is not a duration such as 36h or 30d", s)
		}
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}
