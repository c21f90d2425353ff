package flow

import (
	"errors"
	"fmt"
	"time"

	"github.com/dagflow/dagflow/store"
)

// This file holds the rules of running a run again. Retry runs a failed or
// cancelled run's steps that did not complete (failed, skipped, cancelled),
// and every step downstream of them, which may have used what those steps
// left; completed steps upstream keep their results. A map step runs only its
// items that did not complete, when its list is the same; a child run that
// failed is retried. A saga whose rollback did not finish compensates again
// the units whose compensation failed. Rerun runs one step and everything
// downstream of it again. Each is a new generation: attempts count from 1
// again and the workflow's timeout starts again.

// ErrRolledBack is returned by Retry for a saga that compensated its
// completed steps: there is nothing left to retry.
var ErrRolledBack = errors.New("its saga compensated every completed step that has a compensation; create a new run instead")

// ErrNotEnded is returned by Retry and Rerun for a run that is still active.
var ErrNotEnded = errors.New("the run has not ended")

// DepsError is returned by Rerun for a step whose dependencies did not all
// complete: it could not run again (Retry runs them too).
type DepsError struct{ Step, Dep string }

func (e *DepsError) Error() string {
	return fmt.Sprintf("step %q cannot run again: its dependency %q did not complete (Retry runs both again)", e.Step, e.Dep)
}

// Retry runs a failed or cancelled run again (see the file's comment).
func (x *Txn) Retry(runID string) error {
	rs, err := x.run(runID)
	if err != nil {
		return err
	}
	return x.retry(rs)
}

func (x *Txn) retry(rs *runState) error {
	r := &rs.rec
	if r.State.Active() {
		return ErrNotEnded
	}
	if rs.plan.Saga {
		failed, err := x.toCompensate(rs, func(st *store.Step) bool { return st.Comp == store.CompFailed })
		if err != nil {
			return err
		}
		if len(failed) > 0 {
			return x.finishRollback(rs)
		}
		done, err := x.toCompensate(rs, func(st *store.Step) bool { return st.Comp == store.CompDone })
		if err != nil {
			return err
		}
		if len(done) > 0 {
			return ErrRolledBack
		}
	}
	steps, err := x.tx.Steps(r.ID)
	if err != nil {
		return err
	}
	marked := make([]bool, len(rs.plan.Steps))
	for _, st := range steps {
		marked[st.Index] = st.State != store.StepCompleted
	}
	return x.redrive(rs, steps, marked)
}

// Rerun runs step index of an ended run again, with every step downstream of
// it; index -1 runs every step again.
func (x *Txn) Rerun(runID string, index int) error {
	rs, err := x.run(runID)
	if err != nil {
		return err
	}
	if rs.rec.State.Active() {
		return ErrNotEnded
	}
	if rs.plan.Saga {
		rolled, err := x.toCompensate(rs, func(st *store.Step) bool { return st.Comp != store.CompNone })
		if err != nil {
			return err
		}
		if len(rolled) > 0 {
			return ErrRolledBack
		}
	}
	steps, err := x.tx.Steps(runID)
	if err != nil {
		return err
	}
	if index >= 0 {
		for _, d := range rs.plan.Steps[index].Deps {
			if steps[d].State != store.StepCompleted {
				return &DepsError{Step: rs.plan.Steps[index].ID, Dep: rs.plan.Steps[d].ID}
			}
		}
	}
	marked := make([]bool, len(rs.plan.Steps))
	for i := range marked {
		marked[i] = index < 0 || i == index
	}
	if index >= 0 {
		rs.plan.Descendants(marked)
	}
	// Items of a map step run again in a rerun: the map begins afresh.
	for _, st := range steps {
		if marked[st.Index] && st.Items > 0 && st.State == store.StepCompleted {
			items, err := x.tx.Items(runID, st.Index)
			if err != nil {
				return err
			}
			for _, it := range items {
				it.State, it.Result = store.StepPending, nil
				if err := x.put(&it); err != nil {
					return err
				}
			}
		}
	}
	return x.redrive(rs, steps, marked)
}

// redrive starts a new generation of a run in which the marked steps (and,
// marked by the callers, those downstream) run again.
func (x *Txn) redrive(rs *runState, steps []store.Step, marked []bool) error {
	rs.plan.Descendants(marked)
	r := &rs.rec
	completed := make([]bool, len(rs.plan.Steps))
	r.Generation++
	r.State, r.Phase, r.Outcome, r.Cause, r.Error = store.RunRunning, store.PhaseActive, "", store.CauseNone, ""
	r.CompletedAt = time.Time{}
	r.Done, r.Running, r.Failed = 0, 0, 0
	r.Serial, r.SerialQueue, r.CompQueue = -1, nil, nil
	for _, st := range steps {
		if !marked[st.Index] {
			completed[st.Index] = st.State == store.StepCompleted
			if completed[st.Index] {
				r.Done++
			}
		}
	}
	if r.Done == 0 {
		r.State = store.RunPending
	}
	for _, st := range steps {
		if !marked[st.Index] {
			continue
		}
		st.State, st.Attempts, st.Interruptions, st.Error = store.StepPending, 0, 0, ""
		st.DueAt, st.StartedAt, st.CompletedAt, st.AttemptAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		st.Owner, st.LeaseUntil, st.Result, st.Seq = "", time.Time{}, nil, 0
		st.Comp, st.CompAttempts, st.CompInterruptions, st.CompError = store.CompNone, 0, 0, ""
		st.CompStartedAt, st.CompEndedAt = time.Time{}, time.Time{}
		st.Event, st.EventKey, st.Input = "", "", nil
		st.Waiting = 0
		for _, d := range rs.plan.Steps[st.Index].Deps {
			if !completed[d] {
				st.Waiting++
			}
		}
		if err := x.put(&st); err != nil {
			return err
		}
	}
	x.eff.Redriven = append(x.eff.Redriven, r.ID)
	if r.ConcurrencyKey != "" {
		return x.admit(rs)
	}
	return x.start(rs)
}
