package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
)

// waitPoll is how often waitRun looks whether a run can only go on with an
// event.
const waitPoll = 250 * time.Millisecond

// eventWait is a step of a run (or of one of its child runs) waiting for
// an event.
type eventWait struct {
	run, step string
	event     dagflow.EventWait
}

// waitRun waits for run id to end, as Engine.Wait does, unless it comes to
// a point where it can only go on with an event: no step under way or ready,
// and at least one waiting for an event. Nothing can send that event while
// the command holds the database, so waiting on would last until the wait
// times out; waitRun returns the run's status then, with the steps that
// wait for an event.
func (c *cli) waitRun(ctx context.Context, eng *engine, id string) (*dagflow.Status, []eventWait, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, waitPoll)
		st, err := eng.Wait(wctx, id)
		cancel()
		if err == nil || ctx.Err() != nil || !errors.Is(err, context.DeadlineExceeded) {
			return st, nil, err
		}
		if st, waits, err := eventBlocked(ctx, eng.Engine, id); err != nil || len(waits) > 0 {
			return st, waits, err
		}
	}
}

// eventBlocked returns the status of run id and, when the run can only go
// on with an event, the steps that wait for one (in its child runs too).
func eventBlocked(ctx context.Context, eng *dagflow.Engine, id string) (*dagflow.Status, []eventWait, error) {
	st, err := eng.Status(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	if st.State.Final() || st.Phase != "" {
		return st, nil, nil
	}
	wf, err := eng.Workflow(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	spec := make(map[string]*dagflow.Step, len(wf.Steps))
	for i := range wf.Steps {
		spec[wf.Steps[i].ID] = &wf.Steps[i]
	}
	state := make(map[string]dagflow.State, len(st.Steps))
	// A step not marked parallel that runs or waits holds the run's serial
	// slot: the other such steps wait for it to end.
	serialHeld := false
	for _, s := range st.Steps {
		state[s.ID] = s.State
		if sp := spec[s.ID]; (s.State == dagflow.StateWaiting || s.State == dagflow.StateRunning) && sp != nil && !sp.Parallel {
			serialHeld = true
		}
	}
	var waits []eventWait
	for _, s := range st.Steps {
		switch s.State {
		case dagflow.StateRunning, dagflow.StateWaiting:
			switch {
			case s.Event != nil && s.State == dagflow.StateWaiting:
				waits = append(waits, eventWait{run: id, step: s.ID, event: *s.Event})
			case s.Run != "":
				// A sub-workflow (shown running while its child run is
				// under way): blocked when its child run is.
				_, child, err := eventBlocked(ctx, eng, s.Run)
				if err != nil || len(child) == 0 {
					return st, nil, err
				}
				waits = append(waits, child...)
			default:
				// An attempt under way, a sleep, a map step's items:
				// they end by themselves.
				return st, nil, nil
			}
		case dagflow.StatePending:
			sp := spec[s.ID]
			if sp == nil {
				return st, nil, nil
			}
			ready := sp.Parallel || !serialHeld
			for _, d := range sp.DependsOn {
				ready = ready && state[d] != dagflow.StatePending && state[d] != dagflow.StateRunning && state[d] != dagflow.StateWaiting
			}
			if ready {
				return st, nil, nil // about to start, or waiting to be retried
			}
		}
	}
	return st, waits, nil
}

// noteEventWaits says on stderr which events the runs of a command wait
// for, and how to send them.
func (c *cli) noteEventWaits(db string, id string, waits []eventWait) {
	for _, w := range waits {
		where := fmt.Sprintf("its step %q", w.step)
		if w.run != id {
			where = fmt.Sprintf("step %q of its child run %q", w.step, w.run)
		}
		c.note(db, "run %q waits for event %q with key %q (%s), which nothing can send while this command holds the database; send it with 'dagflow send-event%s %s %s [PAYLOAD.json]', then finish the run with 'dagflow resume%s'",
			id, w.event.Name, w.event.Key, where, dbArg(db), shellQuote(w.event.Name), shellQuote(w.event.Key), dbArg(db))
	}
}

var shellSafe = regexp.MustCompile(`^[A-Za-z0-9_.,:/@%+=-]+$`)

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if shellSafe.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
