package flow

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dagflow/dagflow/store"
)

// This file holds the rules of sagas. When a saga run fails, times out or is
// cancelled, every unit of work that completed and has a compensation is
// compensated, one at a time, in reverse order of completion: a step with a
// compensation handler or URL, each completed item of a map step (whether or
// not the map step as a whole completed), and a child run that completed,
// which rolls itself back by its own saga. A compensation has the step's
// retry policy; one that fails for good is recorded and the rollback goes on
// with the next. A step that never completed is not compensated.

// wrapUp ends a run that failed or was cancelled, compensating it first when
// it is a saga with completed work to undo.
func (x *Txn) wrapUp(rs *runState, outcome store.RunState, cause store.Cause, reason string) error {
	r := &rs.rec
	if rs.plan.Saga {
		queue, err := x.toCompensate(rs, func(st *store.Step) bool { return st.Comp == store.CompNone })
		if err != nil {
			return err
		}
		if len(queue) > 0 {
			r.CompQueue = queue
			r.Phase, r.Outcome, r.Cause, r.Error = store.PhaseCompensating, outcome, cause, reason
			return x.nextComp(rs)
		}
	}
	return x.end(rs, outcome, reason)
}

// toCompensate lists the completed units with a compensation that want
// says to compensate, in reverse order of completion.
func (x *Txn) toCompensate(rs *runState, want func(*store.Step) bool) ([]store.Ref, error) {
	steps, err := x.tx.Steps(rs.rec.ID)
	if err != nil {
		return nil, err
	}
	type unit struct {
		ref store.Ref
		seq int64
	}
	var units []unit
	for _, st := range steps {
		sp := &rs.plan.Steps[st.Index]
		if !sp.HasComp {
			continue
		}
		if sp.Map == nil {
			if st.State == store.StepCompleted && want(&st) {
				units = append(units, unit{store.Ref{Index: st.Index}, st.Seq})
			}
			continue
		}
		items, err := x.tx.Items(rs.rec.ID, st.Index)
		if err != nil {
			return nil, err
		}
		for _, it := range items {
			if it.State == store.StepCompleted && it.Item <= st.Items && want(&it) {
				units = append(units, unit{store.Ref{Index: it.Index, Item: it.Item}, it.Seq})
			}
		}
	}
	slices.SortFunc(units, func(a, b unit) int { return cmp.Compare(b.seq, a.seq) })
	refs := make([]store.Ref, len(units))
	for i, u := range units {
		refs[i] = u.ref
	}
	return refs, nil
}

// nextComp schedules the next compensation of a compensating run, or ends
// the run when none is left.
func (x *Txn) nextComp(rs *runState) error {
	r := &rs.rec
	if len(r.CompQueue) == 0 {
		return x.end(rs, r.Outcome, r.Error)
	}
	ref := r.CompQueue[0]
	r.CompQueue = slices.Clone(r.CompQueue[1:])
	st, err := x.step(rs, ref.Index, ref.Item)
	if err != nil {
		return err
	}
	st.CompAttempts, st.CompInterruptions, st.CompError = 0, 0, ""
	st.CompStartedAt, st.CompEndedAt = x.now, time.Time{}
	if rs.plan.Steps[ref.Index].Kind == Child {
		st.Comp = store.CompWaiting
		if err := x.put(&st); err != nil {
			return err
		}
		return x.rollback(ChildID(r.ID, st.ID, st.Item), r.ID)
	}
	st.Comp, st.DueAt = store.CompReady, x.now
	x.eff.Due = true
	return x.put(&st)
}

// rollback compensates a child run that completed, by its own saga, because
// its parent compensates the step that ran it. The child ends cancelled; its
// end makes the parent's step due (fireComp).
func (x *Txn) rollback(childID, parentID string) error {
	crs, err := x.run(childID)
	if err != nil {
		return err
	}
	c := &crs.rec
	if c.State != store.RunCompleted {
		return x.childEnded(c)
	}
	queue, err := x.toCompensate(crs, func(st *store.Step) bool { return st.Comp == store.CompNone })
	if err != nil {
		return err
	}
	c.State, c.CompletedAt = store.RunRunning, time.Time{}
	reason := fmt.Sprintf("rolled back: its parent run %q compensated the step that ran it", parentID)
	c.Phase, c.Outcome, c.Cause, c.Error, c.CompQueue = store.PhaseCompensating, store.RunCancelled, store.CauseParent, reason, queue
	x.eff.Redriven = append(x.eff.Redriven, childID)
	return x.nextComp(crs)
}

// fireComp acts on a compensation that waited for a child run's rollback.
func (x *Txn) fireComp(rs *runState, st *store.Step) error {
	st.DueAt = time.Time{}
	crs, err := x.run(ChildID(rs.rec.ID, st.ID, st.Item))
	if err != nil || !crs.rec.State.Final() {
		return x.put(st)
	}
	child := &crs.rec
	failed, err := x.tx.Steps(child.ID)
	if err != nil {
		return err
	}
	for _, c := range failed {
		if c.Comp == store.CompFailed {
			return x.compGaveUp(rs, st, fmt.Sprintf("the rollback of child run %q failed: %s", child.ID, child.Error))
		}
	}
	return x.compDone(rs, st)
}

// compDone records a compensation that succeeded, and goes on with the next.
func (x *Txn) compDone(rs *runState, st *store.Step) error {
	st.Comp, st.CompEndedAt, st.CompError, st.DueAt = store.CompDone, x.now, "", time.Time{}
	if err := x.put(st); err != nil {
		return err
	}
	return x.nextComp(rs)
}

// compFailed records a failed compensation attempt: it is tried again after
// a backoff, or fails for good and the rollback goes on with the next one.
func (x *Txn) compFailed(rs *runState, st *store.Step, o Outcome) error {
	sp := &rs.plan.Steps[st.Index]
	st.CompError = o.Err
	budget := st.CompAttempts - st.CompInterruptions
	if !o.Permanent && budget < sp.Retry.MaxAttempts {
		wait := max(x.env.Jitter(sp.Retry.Interval(budget)), o.RetryAfter)
		st.Comp, st.DueAt = store.CompReady, x.now.Add(wait).Truncate(time.Microsecond)
		x.eff.due(x.now, st.DueAt)
		return x.put(st)
	}
	return x.compGaveUp(rs, st, o.Err)
}

// compGaveUp records a compensation that failed for good.
func (x *Txn) compGaveUp(rs *runState, st *store.Step, msg string) error {
	st.Comp, st.CompEndedAt, st.CompError, st.DueAt = store.CompFailed, x.now, msg, time.Time{}
	st.Owner, st.LeaseUntil, st.AttemptAt = "", time.Time{}, time.Time{}
	if err := x.put(st); err != nil {
		return err
	}
	r := &rs.rec
	what := fmt.Sprintf("step %q", st.ID)
	if st.Item > 0 {
		what = fmt.Sprintf("item %d of step %q", st.Item-1, st.ID)
	}
	note := fmt.Sprintf("compensation of %s failed: %s", what, msg)
	if r.Error == "" {
		r.Error = note
	} else {
		r.Error += "; " + note
	}
	return x.nextComp(rs)
}

// compNote is what compGaveUp adds to a run's error; finishRollback takes it
// out again.
const compNote = "; compensation of "

// finishRollback compensates again the units whose compensation failed, for
// Retry of a saga whose rollback did not finish. The run ends as it ended
// before (failed or cancelled).
func (x *Txn) finishRollback(rs *runState) error {
	r := &rs.rec
	queue, err := x.toCompensate(rs, func(st *store.Step) bool { return st.Comp == store.CompFailed })
	if err != nil {
		return err
	}
	if i := strings.Index(r.Error, compNote); i >= 0 {
		r.Error = r.Error[:i]
	} else if strings.HasPrefix(r.Error, compNote[2:]) {
		r.Error = ""
	}
	r.Generation++
	r.Outcome, r.State, r.CompletedAt = r.State, store.RunRunning, time.Time{}
	r.Phase, r.CompQueue = store.PhaseCompensating, queue
	x.eff.Redriven = append(x.eff.Redriven, r.ID)
	return x.nextComp(rs)
}
