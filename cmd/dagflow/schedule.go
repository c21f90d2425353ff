package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	// Time zones for --timezone wherever the binary runs, with or without
	// the system's zoneinfo (a minimal container image has none).
	_ "time/tzdata"

	"github.com/dagflow/dagflow"
)

const scheduleHelp = `Usage: dagflow schedule add|list|remove [flags] [arguments]

Schedule manages the schedules kept in the database: each creates a run of a
workflow at every tick of a cron expression, named <schedule id>/<UTC time of
the tick> (nightly/2025-06-01T02:00:00Z).

  dagflow schedule add [--db FILE] [--timezone TZ] [--base-url URL] ID CRON FILE
  dagflow schedule list [--db FILE] [--json]
  dagflow schedule remove [--db FILE] ID

A schedule ticks while an engine has the database open: 'dagflow console', or
a program embedding dagflow on the file; the commands that run runs (run,
resume, retry, cancel) tick it too while they are open. When none is, ticks
are missed, and the next engine to open the database creates the run of the
latest missed tick only. Runs that ticks created are ordinary runs: list,
status, resume and delete work on them.

Run 'dagflow schedule <add|list|remove> --help' for each one's flags.
`

const scheduleAddHelp = `Usage: dagflow schedule add [--db FILE] [--timezone TZ] [--base-url URL] [-v]
                            ID CRON FILE.json

Schedule add adds the schedule ID, or replaces the schedule of that id (the
runs it created stay), and prints it as indented JSON on stdout: its id, cron
expression, time zone and next tick.

CRON is a standard five-field cron expression, quoted as one argument
("0 2 * * *": every day at 02:00; fields minute, hour, day of month, month,
day of week), or a descriptor such as @hourly or @daily. It is read in
--timezone, an IANA time zone such as Europe/Paris (default UTC).

FILE.json ("-" reads stdin) is a workflow file as 'dagflow run' takes it; its
"id" may be left out, and is not used if given: each tick's run is named
<ID>/<UTC time of the tick>. It is checked as 'dagflow run' would check it:
relative URLs need --base-url (or $DAGFLOW_BASE_URL) to be checked, and resolve
against the base URL of the engine that creates each run.

Schedule add creates the database if needed. It changes the database and runs
nothing: the unfinished runs in it are not resumed.

Exit status: 0, 2 a bad id, expression, time zone or workflow file, 3 the
database is in use or cannot be opened.
`

const scheduleListHelp = `Usage: dagflow schedule list [--db FILE] [--json]

Schedule list prints the schedules in the database, by id, as a table with the
columns ID, CRON, TIMEZONE, NEXT (the next tick, UTC) and LAST (the latest tick
a run was created for, UTC); or, with --json, as JSON lines: one object per
schedule with the fields id, cron, timezone, next and last. A next tick in the
past was missed while no engine had the database open: the next engine to open
it creates that run.
It only reads the database: unfinished runs in it are not resumed.

Exit status: 0, 2 no such database, 3 the database is in use or cannot be
opened.
`

const scheduleRemoveHelp = `Usage: dagflow schedule remove [--db FILE] ID

Schedule remove removes the schedule ID: no run is created for it any more.
The runs it created stay in the database ('dagflow delete' or 'dagflow prune'
remove them). It prints nothing on success, and runs nothing.

Exit status: 0 removed, 2 no such schedule or database, 3 the database is in
use or cannot be opened.
`

func (c *cli) cmdSchedule(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return inputError("schedule: missing subcommand: add, list or remove (see 'dagflow schedule --help')")
	}
	switch args[0] {
	case "add":
		return c.cmdScheduleAdd(ctx, args[1:])
	case "list":
		return c.cmdScheduleList(ctx, args[1:])
	case "remove", "rm":
		return c.cmdScheduleRemove(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			return c.cmdSchedule(ctx, []string{args[1], "--help"})
		}
		fmt.Fprint(c.stdout, scheduleHelp)
		return nil
	}
	return inputError("schedule: unknown subcommand %q: add, list or remove (see 'dagflow schedule --help')", args[0])
}

func (c *cli) cmdScheduleAdd(ctx context.Context, args []string) error {
	fs := c.newFlagSet("schedule add", scheduleAddHelp)
	var f runFlags
	f.register(c, fs)
	tz := fs.String("timezone", "", "the IANA time zone `TZ` CRON is read in, such as Europe/Paris (default UTC)")
	pos, err := c.parse(fs, args, 3, 3)
	if err != nil {
		return err
	}
	id, expr, file := pos[0], pos[1], pos[2]
	wf, err := c.readScheduledWorkflow(file)
	if err != nil {
		return err
	}
	hopts, err := c.httpOptions(&f)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(f.db)
	made := errors.Is(statErr, os.ErrNotExist) // by this command
	eng, err := c.open(&f.dbFlags, openQuietCreate, dagflow.WithHTTP(hopts))
	if err != nil {
		return err
	}
	defer c.close(eng)
	fail := func(err error) error {
		if made {
			// Nothing is in the file this command made: leave no file.
			c.close(eng)
			os.Remove(f.db)
		}
		return err
	}
	old, err := eng.Schedules(ctx)
	if err != nil {
		return fail(opError("%s: reading the schedules: %v", f.db, err))
	}
	err = eng.Schedule(ctx, dagflow.Schedule{ID: id, Cron: expr, Timezone: *tz, Workflow: wf})
	var ve *dagflow.ValidationError
	switch {
	case errors.As(err, &ve):
		return fail(scheduleProblems(displayName(file), *tz, ve))
	case err != nil:
		return fail(opError("%s: adding the schedule: %v", f.db, err))
	}
	for _, s := range old {
		if s.ID == id {
			c.note(f.db, "replaced the schedule %q (%s %s); the runs it created stay", id, s.Cron, cmp.Or(s.Timezone, "UTC"))
		}
	}
	list, err := eng.Schedules(ctx)
	if err != nil {
		return opError("%s: reading the schedules: %v", f.db, err)
	}
	for _, s := range list {
		if s.ID == id {
			return c.printJSON(s)
		}
	}
	return opError("%s: the schedule %q is not in the database after adding it", f.db, id)
}

// readScheduledWorkflow reads the workflow file of a schedule: its id may be
// left out, and is dropped.
func (c *cli) readScheduledWorkflow(name string) (dagflow.Workflow, error) {
	wf, ve, err := c.loadWorkflow(name)
	if err != nil {
		return wf, err
	}
	if ve != nil {
		var ps []dagflow.Problem
		for _, p := range ve.Problems {
			if p.Path == "id" && wf.ID == "" {
				continue // left out: each tick names its run
			}
			ps = append(ps, p)
		}
		if len(ps) > 0 {
			return wf, problemsError(displayName(name), &dagflow.ValidationError{WorkflowID: ve.WorkflowID, Problems: ps})
		}
	}
	wf.ID = ""
	return wf, nil
}

// scheduleProblems turns the problems Engine.Schedule found into bad input:
// those of the workflow name the file, the others the argument or flag.
func scheduleProblems(file, tz string, ve *dagflow.ValidationError) error {
	var wps []dagflow.Problem
	var lines []string
	for _, p := range ve.Problems {
		switch {
		case p.Path == "workflow":
			wps = append(wps, dagflow.Problem{Message: p.Message})
		case strings.HasPrefix(p.Path, "workflow."):
			wps = append(wps, dagflow.Problem{Path: strings.TrimPrefix(p.Path, "workflow."), Message: p.Message})
		case p.Path == "id":
			lines = append(lines, "schedule add: ID: "+p.Message)
		case p.Path == "cron":
			lines = append(lines, "schedule add: CRON: "+p.Message)
		case p.Path == "timezone":
			lines = append(lines, fmt.Sprintf("schedule add: --timezone %q: %s", tz, strings.TrimPrefix(p.Message, "timezone: ")))
		default:
			lines = append(lines, "schedule add: "+p.String())
		}
	}
	if len(wps) > 0 {
		var e *exitErr
		if errors.As(problemsError(file, &dagflow.ValidationError{Problems: wps}), &e) {
			lines = append(lines, e.msg)
		}
	}
	return inputError("%s", strings.Join(lines, "\n"))
}

func (c *cli) cmdScheduleList(ctx context.Context, args []string) error {
	fs := c.newFlagSet("schedule list", scheduleListHelp)
	var f dbFlags
	f.register(c, fs)
	asJSON := fs.Bool("json", false, "print JSON lines instead of a table")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	eng, err := c.open(&f, openReadOnly)
	if err != nil {
		return err
	}
	defer c.close(eng)
	list, err := eng.Schedules(ctx)
	if err != nil {
		return opError("%s: reading the schedules: %v", f.db, err)
	}
	if *asJSON {
		for _, s := range list {
			if err := c.printLine(s); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCRON\tTIMEZONE\tNEXT\tLAST")
	for _, s := range list {
		last := "-"
		if !s.Last.IsZero() {
			last = s.Last.UTC().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Cron, cmp.Or(s.Timezone, "UTC"), s.Next.UTC().Format(time.DateTime), last)
	}
	if err := tw.Flush(); err != nil {
		return opError("writing the output: %v", err)
	}
	return nil
}

func (c *cli) cmdScheduleRemove(ctx context.Context, args []string) error {
	fs := c.newFlagSet("schedule remove", scheduleRemoveHelp)
	var f dbFlags
	f.register(c, fs)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	eng, err := c.open(&f, openQuiet)
	if err != nil {
		return err
	}
	defer c.close(eng)
	if err := eng.Unschedule(ctx, pos[0]); errors.Is(err, dagflow.ErrNotFound) {
		return inputError("%s: no schedule with id %q", f.db, pos[0])
	} else if err != nil {
		return opError("%s: removing the schedule: %v", f.db, err)
	}
	return nil
}
