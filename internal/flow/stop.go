package flow

import (
	"fmt"
	"strings"
	"time"

	"github.com/dagflow/dagflow/store"
)

// This file holds how a run stops and ends. A run stops when a step fails for
// good (policy "fail"), when its deadline passes, or when it is cancelled: no
// step starts any more, the steps that had not started end skipped (after a
// failure) or cancelled (after a timeout or a cancel), sleeps, waits and
// child runs end at once (children are cancelled), and attempts under way
// finish (after a failure) or are cancelled. Once nothing runs, the run ends,
// or first compensates (saga.go).

// stoppedState is the state of a step that a stopped run ends without
// running it to its end.
func stoppedState(r *store.Run) store.StepState {
	if r.Cause == store.CauseFailed {
		return store.StepSkipped
	}
	return store.StepCancelled
}

// stop stops an active run, and ends it if nothing runs any more.
func (x *Txn) stop(rs *runState, outcome store.RunState, cause store.Cause, reason string) error {
	if err := x.stopping(rs, outcome, cause, reason); err != nil {
		return err
	}
	return x.maybeEnd(rs)
}

// stopping stops an active run, without ending it.
func (x *Txn) stopping(rs *runState, outcome store.RunState, cause store.Cause, reason string) error {
	r := &rs.rec
	if r.Phase != store.PhaseActive || !r.State.Active() {
		return nil
	}
	r.Phase, r.Outcome, r.Cause, r.Error = store.PhaseStopping, outcome, cause, reason
	r.SerialQueue, r.Serial = nil, -1
	steps, err := x.tx.Steps(r.ID)
	if err != nil {
		return err
	}
	for _, st := range steps {
		switch st.State {
		case store.StepPending, store.StepReady:
			st.State, st.DueAt, st.CompletedAt = stoppedState(r), time.Time{}, x.now
			if st.Error == "" || st.Attempts == 0 {
				st.Error = "not run: " + reason
			}
			r.Done++
			if err := x.put(&st); err != nil {
				return err
			}
		case store.StepWaiting:
			if err := x.stopStep(rs, &st); err != nil {
				return err
			}
		}
	}
	x.eff.Stopped = append(x.eff.Stopped, Stop{RunID: r.ID, Cancel: cause != store.CauseFailed, Cause: cause, Reason: reason})
	return nil
}

// timedOut stops a run whose deadline passed.
func (x *Txn) timedOut(rs *runState) error {
	return x.stop(rs, store.RunFailed, store.CauseTimeout, timeoutReason(rs))
}

func timeoutReason(rs *runState) string {
	return fmt.Sprintf("workflow timed out after %s", rs.plan.Timeout)
}

// stopStep ends a waiting step of a stopped run: a sleep or a wait at once, a
// child run cancelled, a map step's items not under way. A map step whose
// items are still running (claimed by workers) ends when they do. It writes
// st.
func (x *Txn) stopStep(rs *runState, st *store.Step) error {
	r := &rs.rec
	sp := &rs.plan.Steps[st.Index]
	state := stoppedState(r)
	why := "stopped: " + r.Error
	if sp.Map != nil {
		items, err := x.tx.Items(r.ID, st.Index)
		if err != nil {
			return err
		}
		for _, it := range items {
			if it.Item > st.ItemsNext || (it.State != store.StepReady && it.State != store.StepWaiting) {
				continue
			}
			if it.State == store.StepWaiting {
				if err := x.stopChild(ChildID(r.ID, it.ID, it.Item), why); err != nil {
					return err
				}
			}
			it.State, it.Error, it.CompletedAt, it.DueAt = state, why, x.now, time.Time{}
			st.ItemsFailed++
			st.ItemsRunning--
			if err := x.put(&it); err != nil {
				return err
			}
		}
		if err := x.endItems(rs, st, state, "not run: "+r.Error); err != nil {
			return err
		}
		if st.ItemsRunning > 0 {
			return x.put(st)
		}
	} else if sp.Kind == Child {
		if err := x.stopChild(ChildID(r.ID, st.ID, 0), why); err != nil {
			return err
		}
	}
	st.State, st.Error, st.CompletedAt, st.DueAt = state, why, x.now, time.Time{}
	st.Event, st.EventKey = "", ""
	r.Done++
	if err := x.put(st); err != nil {
		return err
	}
	return x.releaseSerial(rs, st.Index)
}

// stopChild cancels a child run that is under way.
func (x *Txn) stopChild(id, why string) error {
	crs, err := x.run(id)
	if err != nil {
		return nil // never created, or deleted
	}
	if !crs.rec.State.Active() {
		return nil
	}
	return x.cancel(crs, store.CauseParent, "cancelled: its parent run "+why)
}

// maybeEnd ends the run, or starts compensating it, once nothing is left to
// run.
func (x *Txn) maybeEnd(rs *runState) error {
	r := &rs.rec
	if !r.State.Active() {
		return nil
	}
	switch r.Phase {
	case store.PhaseActive:
		if r.Done < r.Total {
			return nil
		}
		if r.Failed > 0 {
			return x.wrapUp(rs, store.RunFailed, store.CauseFailed, x.failedSummary(rs))
		}
		return x.end(rs, store.RunCompleted, "")
	case store.PhaseStopping:
		if r.Running > 0 {
			return nil
		}
		return x.wrapUp(rs, r.Outcome, r.Cause, r.Error)
	}
	return nil
}

// failedSummary says which steps failed, for a run of policy "continue".
func (x *Txn) failedSummary(rs *runState) string {
	steps, err := x.tx.Steps(rs.rec.ID)
	if err != nil {
		return fmt.Sprintf("%d steps failed", rs.rec.Failed)
	}
	var names []string
	for _, st := range steps {
		if st.State != store.StepFailed {
			continue
		}
		if rs.rec.Failed == 1 {
			return fmt.Sprintf("step %q failed: %s", st.ID, st.Error)
		}
		names = append(names, fmt.Sprintf("%q (%s)", st.ID, st.Error))
		if len(names) == 5 {
			break
		}
	}
	more := ""
	if rs.rec.Failed > len(names) {
		more = fmt.Sprintf(" and %d more", rs.rec.Failed-len(names))
	}
	return fmt.Sprintf("%d steps failed: %s%s", rs.rec.Failed, strings.Join(names, ", "), more)
}

// end puts a run in its final state: it gives up its concurrency slot, queues
// its webhooks and tells its parent.
func (x *Txn) end(rs *runState, state store.RunState, reason string) error {
	r := &rs.rec
	r.State, r.Phase, r.Outcome, r.Error, r.CompletedAt = state, store.PhaseActive, "", reason, x.now
	if state == store.RunCompleted {
		r.Cause = store.CauseNone
	}
	r.SerialQueue, r.CompQueue, r.Serial = nil, nil, -1
	hooks, err := x.env.Webhooks(x.tx, r, rs.plan)
	if err != nil {
		return err
	}
	for _, h := range hooks {
		if err := x.tx.PutWebhook(h); err != nil {
			return err
		}
		x.eff.Hooks = true
	}
	x.eff.Finished = append(x.eff.Finished, Finish{RunID: r.ID, State: r.State, Error: r.Error})
	if r.ConcurrencyKey != "" {
		if err := x.releaseSlot(rs); err != nil {
			return err
		}
	}
	if r.Parent != "" {
		return x.childEnded(r)
	}
	return nil
}

// Cancel cancels an active run from outside (Engine.Cancel). It returns the
// run as it was before, so that the caller can tell why nothing changed.
func (x *Txn) Cancel(runID, reason string) (store.Run, error) {
	rs, err := x.run(runID)
	if err != nil {
		return store.Run{}, err
	}
	before := rs.rec
	return before, x.cancel(rs, store.CauseCancelled, reason)
}

func (x *Txn) cancel(rs *runState, cause store.Cause, reason string) error {
	if rs.rec.Phase == store.PhaseQueued {
		rs.rec.Cause = cause
		if err := x.stopQueued(rs, reason); err != nil {
			return err
		}
		return nil
	}
	return x.stop(rs, store.RunCancelled, cause, reason)
}

// stopQueued ends a run that waited for a concurrency slot: none of its steps
// ran.
func (x *Txn) stopQueued(rs *runState, reason string) error {
	steps, err := x.tx.Steps(rs.rec.ID)
	if err != nil {
		return err
	}
	for _, st := range steps {
		st.State, st.Error, st.CompletedAt = store.StepCancelled, "not run: "+reason, x.now
		if err := x.put(&st); err != nil {
			return err
		}
	}
	rs.rec.Done = rs.rec.Total
	x.eff.Stopped = append(x.eff.Stopped, Stop{RunID: rs.rec.ID, Cancel: true, Cause: rs.rec.Cause, Reason: reason})
	return x.end(rs, store.RunCancelled, reason)
}
