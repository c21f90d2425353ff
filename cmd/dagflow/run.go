package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
)

const runHelp = `Usage: dagflow run [--db FILE] [--base-url URL] [-v] FILE.json

Run reads a workflow file ("-" reads stdin), creates a run of it in the
database, waits for the run to end, and prints its final status as indented
JSON on stdout. Steps are HTTP job handlers ("url"); relative URLs resolve
against --base-url as links in a web page do: "jobs/x" against
http://h/api is http://h/jobs/x, against http://h/api/ it is
http://h/api/jobs/x. Requests are signed with $DAGFLOW_SECRET when it is set.

When the workflow has an onComplete or onError webhook, run also waits for its
first delivery (with quick retries); one that failed is kept in the database
and sent again by the next engine that opens it, as a note on stderr says.

A run whose id is already in the database is not created again: when its
workflow is the same, run waits for it (or prints it, if it has ended); when
it differs, that is an error. Give each run a new id.

Opening the database resumes the other runs left unfinished in it too. When
this run has ended, run lets the attempts of theirs that it started finish
(a note on stderr says so after a second) and leaves their next steps to the
next command ('dagflow resume' finishes them).

SIGINT (Ctrl-C) or SIGTERM cancels nothing: the engine closes, the run stays
unfinished in the database, and 'dagflow resume' finishes it. The attempts it
cut short run again, as the same attempt.

A run that comes to a point where it can only go on with an event (a
"waitForEvent" step waiting, no other step under way or ready) is not waited
for: nothing can send the event while this command holds the database. Run
prints its status, says on stderr which event it waits for, and exits 1; send
the event with 'dagflow send-event', then finish the run with 'dagflow resume'.
A "sleep" step is waited for.

Exit status: 0 completed, 1 failed, cancelled or waiting for an event, 2 bad
input (unreadable or invalid file, "handler" steps, an id taken by another
workflow), 3 the database is in use or cannot be opened, 130 SIGINT (143
SIGTERM).
`

const retryHelp = `Usage: dagflow retry [--db FILE] [--base-url URL] [-v] ID

Retry runs the failed, skipped and cancelled steps of a failed or cancelled
run again, keeping every completed step's result, waits for the run to end and
prints its final status as indented JSON on stdout. Interrupting it, and a run
that waits for an event, work as for 'dagflow run'.

Exit status: 0 completed, 1 failed, cancelled or waiting for an event, 2 unknown
id or a run that cannot be retried (running, completed, or a saga that rolled
back), 3 the database is in use or cannot be opened, 130 SIGINT (143 SIGTERM).
`

const cancelHelp = `Usage: dagflow cancel [--db FILE] [--base-url URL] [-v] ID

Cancel cancels an unfinished run (one a stopped process left running; a run
that a live process holds is out of reach, since its database is in use),
waits for it to end (a saga compensates its completed steps first) and prints
its final status as indented JSON on stdout.

Exit status: as for run, the run's final state: 1 when it ended cancelled.
2 unknown id or a run that has ended, 3 the database is in use or cannot be
opened, 130 SIGINT (143 SIGTERM).
`

const resumeHelp = `Usage: dagflow resume [--db FILE] [--base-url URL] [-v]

Resume opens the database, which resumes the runs a stopped process left
unfinished, or created and did not start (steps that completed are not run
again; a step whose attempt was under way when its process died runs again as
the next attempt, which does not count against its maxAttempts), waits for all
of them to end and prints their final statuses as an indented JSON array on
stdout, oldest run first ([] when there are none). Child runs (of sub-workflow
steps) are waited for through their parent, and not printed.

A run with Go "handler" steps still to run cannot finish from the command line,
nor can a run that can only go on with an event ('dagflow send-event' sends it
once resume has exited): each is reported on stderr, not waited for, and
printed as it is.

Exit status: 0 every run completed, 1 some run failed, was cancelled or could
not be finished, 2 no such database, 3 the database is in use or cannot be
opened, 130 SIGINT (143 SIGTERM).
`

func (c *cli) cmdRun(ctx context.Context, args []string) error {
	fs := c.newFlagSet("run", runHelp)
	var f runFlags
	f.register(c, fs)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	file := displayName(pos[0])
	wf, err := c.readWorkflow(pos[0])
	if err != nil {
		return err
	}
	hopts, err := c.httpOptions(&f)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(f.db)
	made := errors.Is(statErr, os.ErrNotExist) // by this command
	eng, err := c.open(&f.dbFlags, openCreate, dagflow.WithHTTP(hopts))
	if err != nil {
		return err
	}
	defer c.close(eng)
	before, _ := eng.Status(ctx, wf.ID)
	if _, err := eng.Create(ctx, wf); err != nil {
		var ve *dagflow.ValidationError
		switch {
		case errors.As(err, &ve):
			err = problemsError(file, err)
		case errors.Is(err, dagflow.ErrConflict):
			err = inputError("%s: a run with id %q exists in %s with a different workflow; give this run a new id", file, wf.ID, f.db)
		default:
			err = opError("%s: %v", file, err)
		}
		if made {
			// Nothing is in the file this command made: leave no file.
			c.close(eng)
			os.Remove(f.db)
		}
		return err
	}
	if before != nil {
		c.note(f.db, "run %q is already in the database (%s); not creating it again", wf.ID, before.State)
	}
	return c.finish(ctx, eng, wf.ID)
}

func (c *cli) cmdRetry(ctx context.Context, args []string) error {
	return c.changeAndWait(ctx, "retry", retryHelp, args, (*dagflow.Engine).Retry)
}

func (c *cli) cmdCancel(ctx context.Context, args []string) error {
	return c.changeAndWait(ctx, "cancel", cancelHelp, args, (*dagflow.Engine).Cancel)
}

// changeAndWait is retry and cancel: do op on the run, then wait for it.
func (c *cli) changeAndWait(ctx context.Context, name, help string, args []string,
	op func(*dagflow.Engine, context.Context, string) (*dagflow.Status, error)) error {
	fs := c.newFlagSet(name, help)
	var f runFlags
	f.register(c, fs)
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	id := pos[0]
	hopts, err := c.httpOptions(&f)
	if err != nil {
		return err
	}
	eng, err := c.open(&f.dbFlags, openExisting, dagflow.WithHTTP(hopts))
	if err != nil {
		return err
	}
	defer c.close(eng)
	if _, err := op(eng.Engine, ctx, id); err != nil {
		return c.runError(f.db, id, err)
	}
	return c.finish(ctx, eng, id)
}

// runError classifies an error about run id: bad input when the run is
// unknown or in the wrong state.
func (c *cli) runError(db, id string, err error) error {
	var se *dagflow.StateError
	switch {
	case errors.Is(err, dagflow.ErrNotFound):
		return inputError("%s: no run with id %q", db, id)
	case errors.As(err, &se):
		return inputError("%s", strings.TrimPrefix(se.Error(), "dagflow: "))
	}
	return opError("run %q: %v", id, err)
}

// finish waits for run id to end, prints its final status and returns the
// exit error its state means.
func (c *cli) finish(ctx context.Context, eng *engine, id string) error {
	st, waits, err := c.waitRun(ctx, eng, id)
	if err != nil {
		if ctx.Err() != nil {
			return c.interruptedRun(eng, []string{id})
		}
		return c.runError(eng.path, id, err)
	}
	if len(waits) > 0 {
		c.noteEventWaits(eng.path, id, waits)
	} else if err := c.awaitWebhooks(ctx, eng, id, nil); err != nil {
		return err
	}
	if err := c.printJSON(st); err != nil {
		return err
	}
	if err := c.drain(ctx, eng); err != nil {
		return err
	}
	if st.State != dagflow.StateCompleted {
		return errExit(exitFailed)
	}
	return nil
}

// drainNote is how long drain waits before it says on stderr what it waits
// for.
const drainNote = time.Second

// drain shuts the engine down gracefully before the command exits: an
// engine resumes every unfinished run of the file as it opens, so the
// command may have started attempts of other runs, and closing would cut
// them short (and send them again, to the same job handlers, as the next
// command opens the file). It lets them finish and records them; the steps
// they make ready wait for the next command. A signal stops the wait.
func (c *cli) drain(ctx context.Context, eng *engine) error {
	done := make(chan error, 1)
	go func() { done <- eng.Engine.Shutdown(ctx) }()
	var err error
	select {
	case err = <-done:
	case <-time.After(drainNote):
		c.note(eng.path, "waiting for the attempts of other runs under way to finish (interrupt to stop them now; they run again later)")
		err = <-done
	}
	if err != nil && ctx.Err() != nil {
		return c.interrupted(fmt.Sprintf("stopped the attempts of other runs still under way; they run again when a command next opens %s", eng.path))
	}
	if err != nil && !errors.Is(err, dagflow.ErrClosed) {
		return opError("closing the engine: %v", err)
	}
	return nil
}

// webhookWait bounds how long a command waits for the first delivery of a
// run's webhook once the run has ended.
const webhookWait = 2 * time.Minute

// hookKey tells the webhooks of a run apart (one per event and retry of
// the run, each made when the run ended).
type hookKey struct {
	event   string
	created int64
}

// pendingWebhooks returns, by run id, the attempts made so far of each
// webhook not delivered yet and not given up on.
func pendingWebhooks(ctx context.Context, s store.Store) (map[string]map[hookKey]int, error) {
	pending := map[string]map[hookKey]int{}
	err := s.View(ctx, func(tx store.Tx) error {
		hooks, err := tx.DueWebhooks(time.Now().AddDate(100, 0, 0), math.MaxInt32)
		for _, h := range hooks {
			if pending[h.RunID] == nil {
				pending[h.RunID] = map[hookKey]int{}
			}
			pending[h.RunID][hookKey{h.Event, h.CreatedAt.UnixNano()}] = h.Attempts
		}
		return err
	})
	return pending, err
}

// awaitWebhooks waits until each onComplete or onError webhook of run id
// has been sent once (with the client's quick retries) since the command
// started, before was opened (before gives the attempts each had made
// then; nil for a run the command ran), so that a command does not exit,
// and close the engine, before the webhooks of the run it waited for went
// out. One that failed stays in the database, due again later: a note on
// stderr says so. A signal stops the wait.
func (c *cli) awaitWebhooks(ctx context.Context, eng *engine, id string, before map[hookKey]int) error {
	deadline := time.Now().Add(webhookWait)
	for {
		hooks, err := eng.Webhooks(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return c.interruptedHooks(eng, id)
			}
			return c.runError(eng.path, id, err)
		}
		sending := false
		for _, h := range hooks {
			// Not delivered nor given up on, and either not tried since
			// the command started, or being sent (an engine clears the
			// error of the try before when it sends one).
			pending := h.DeliveredAt.IsZero() && !h.NextAt.IsZero()
			tried := h.Attempts > before[hookKey{h.Event, h.CreatedAt.UnixNano()}]
			sending = sending || pending && (!tried || h.LastError == "")
		}
		if !sending || time.Now().After(deadline) {
			for _, h := range hooks {
				switch {
				case !h.DeliveredAt.IsZero():
				case h.NextAt.IsZero():
					c.note(eng.path, "run %q: gave up on the %s webhook to %s after %d attempts: %s", id, h.Event, h.URL, h.Attempts, h.LastError)
				default:
					why := cmp.Or(h.LastError, "still being sent")
					c.note(eng.path, "run %q: the %s webhook to %s is not delivered yet (%s); it stays in the database, and the next engine to open it sends it again ('dagflow resume')",
						id, h.Event, h.URL, why)
				}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return c.interruptedHooks(eng, id)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// interruptedHooks closes the engine of a command stopped by a signal while
// it waited for a webhook.
func (c *cli) interruptedHooks(eng *engine, id string) error {
	if err := eng.Close(); err != nil {
		return opError("closing the engine: %v", err)
	}
	return c.interrupted(fmt.Sprintf("stopped; run %q has ended, but its webhook may not have gone out: the next engine to open %s sends it", id, eng.path))
}

// interruptedRun closes the engine of a command stopped by a signal; the
// runs stay unfinished in the database.
func (c *cli) interruptedRun(eng *engine, ids []string) error {
	if err := eng.Close(); err != nil {
		return opError("closing the engine: %v", err)
	}
	what := "the runs are"
	if len(ids) == 1 {
		what = fmt.Sprintf("run %q is", ids[0])
	}
	resume := "dagflow resume"
	if eng.path != defaultDB {
		resume += " --db " + eng.path
	}
	return c.interrupted(fmt.Sprintf("stopped; %s left unfinished in %s: finish with '%s'", what, eng.path, resume))
}

func (c *cli) cmdResume(ctx context.Context, args []string) error {
	fs := c.newFlagSet("resume", resumeHelp)
	var f runFlags
	f.register(c, fs)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	hopts, err := c.httpOptions(&f)
	if err != nil {
		return err
	}
	s, err := c.openStore(&f.dbFlags, openExisting)
	if err != nil {
		return err
	}
	// The webhooks left undelivered, read before the engine, which sends
	// them at once, opens the store.
	hooks, err := pendingWebhooks(ctx, s)
	if err != nil {
		s.Close()
		return opError("%s: reading the webhooks: %v", f.db, err)
	}
	eng, err := c.openEngine(&f.dbFlags, s, openExisting, dagflow.WithHTTP(hopts))
	if err != nil {
		return err
	}
	defer c.close(eng)
	// The runs under way, and those created but not started (a process
	// that stopped as it created them, a tick of a schedule, a run waiting
	// for a concurrency slot). A child run is waited for through its
	// parent.
	var runs []dagflow.RunSummary
	for _, state := range []dagflow.State{dagflow.StateRunning, dagflow.StatePending} {
		for o := (dagflow.ListOptions{State: state, Limit: 1000}); ; {
			page, err := eng.List(ctx, o)
			if err != nil {
				return opError("%s: listing runs: %v", f.db, err)
			}
			for _, r := range page.Runs {
				if r.Parent == "" {
					runs = append(runs, r)
				}
			}
			if page.Next == "" {
				break
			}
			o.After = page.Next
		}
	}
	slices.SortStableFunc(runs, func(a, b dagflow.RunSummary) int { return a.CreatedAt.Compare(b.CreatedAt) }) // oldest first
	ids := make([]string, len(runs))
	for i, r := range runs {
		ids[i] = r.ID
	}
	out := make([]*dagflow.Status, 0, len(ids))
	code := exitOK
	for _, id := range ids {
		var st *dagflow.Status
		wf, err := eng.Workflow(ctx, id)
		if err == nil {
			st, err = eng.Status(ctx, id)
		}
		if err == nil {
			if steps := needsHandlers(wf, st); len(steps) > 0 && !st.State.Final() {
				c.note(f.db, "run %q cannot finish here: its steps %q run Go handlers, which only the program that registers them can run", id, steps)
				out = append(out, st)
				code = exitFailed
				continue
			}
			var waits []eventWait
			st, waits, err = c.waitRun(ctx, eng, id)
			if err == nil && len(waits) > 0 {
				c.noteEventWaits(f.db, id, waits)
				out = append(out, st)
				code = exitFailed
				continue
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return c.interruptedRun(eng, ids)
			}
			return c.runError(f.db, id, err)
		}
		if err := c.awaitWebhooks(ctx, eng, id, hooks[id]); err != nil {
			return err
		}
		delete(hooks, id)
		if st.State != dagflow.StateCompleted {
			code = exitFailed
		}
		out = append(out, st)
	}
	// The webhooks of runs that had ended: sent again, now.
	for _, id := range slices.Sorted(maps.Keys(hooks)) {
		if err := c.awaitWebhooks(ctx, eng, id, hooks[id]); err != nil {
			return err
		}
	}
	if err := c.printJSON(out); err != nil {
		return err
	}
	if err := c.drain(ctx, eng); err != nil {
		return err
	}
	if code != exitOK {
		return errExit(code)
	}
	return nil
}

// needsHandlers returns the ids of the Go handler steps of a run that may
// still have to run: those not completed, and in a saga those that may be
// compensated; and those of its sub-workflow steps whose sub-workflows have
// Go handler steps.
func needsHandlers(wf *dagflow.Workflow, st *dagflow.Status) []string {
	state := make(map[string]dagflow.State, len(st.Steps))
	for _, s := range st.Steps {
		state[s.ID] = s.State
	}
	var ids []string
	for _, s := range wf.Steps {
		if s.Handler == "" && (s.Workflow == nil || !hasHandlers(s.Workflow)) {
			continue
		}
		switch state[s.ID] {
		case dagflow.StateCompleted:
			if wf.Saga && s.Compensation != "" {
				ids = append(ids, s.ID)
			}
		case dagflow.StateFailed, dagflow.StateSkipped, dagflow.StateCancelled,
			dagflow.StateCompensated, dagflow.StateCompensationFailed:
		default:
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// hasHandlers reports whether a workflow or one of its sub-workflows has a
// Go handler step.
func hasHandlers(wf *dagflow.Workflow) bool {
	for _, s := range wf.Steps {
		if s.Handler != "" || s.Workflow != nil && hasHandlers(s.Workflow) {
			return true
		}
	}
	return false
}

// printJSON prints v as indented JSON on stdout.
func (c *cli) printJSON(v any) error {
	enc := json.NewEncoder(c.stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return opError("writing the output: %v", err)
	}
	return nil
}

// marshalNoEscape encodes v as one line of JSON, "<>&" left as they are.
func marshalNoEscape(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	err := enc.Encode(v)
	return b.Bytes(), err
}

// note prints an informational message about file on stderr.
func (c *cli) note(file, format string, args ...any) {
	fmt.Fprintf(c.stderr, "dagflow: %s: %s\n", file, fmt.Sprintf(format, args...))
}
