package flow

import (
	"fmt"
	"slices"
	"time"

	"github.com/dagflow/dagflow/store"
)

// This file holds what happens when a step becomes ready and when an
// attempt's outcome is recorded: dependency counting, the serial slot,
// retries with backoff, and what a step that ends does to its dependents.

// makeReady begins a step whose dependencies are resolved, or queues it for
// the run's serial slot when it is not parallel and the slot is taken. It
// writes st.
func (x *Txn) makeReady(rs *runState, st *store.Step) error {
	r := &rs.rec
	if !rs.plan.Steps[st.Index].Parallel {
		if r.Serial >= 0 && r.Serial != st.Index {
			i, found := slices.BinarySearch(r.SerialQueue, st.Index)
			if !found {
				r.SerialQueue = slices.Insert(slices.Clip(r.SerialQueue), i, st.Index)
			}
			return x.put(st)
		}
		r.Serial = st.Index
	}
	return x.begin(rs, st)
}

// begin starts a step that may run now, by its kind: a task becomes ready
// for a worker; a sleep, a wait for an event, a child run and the items of
// a map step start at once, in this transaction.
func (x *Txn) begin(rs *runState, st *store.Step) error {
	sp := &rs.plan.Steps[st.Index]
	if sp.Map != nil {
		return x.beginMap(rs, st)
	}
	switch sp.Kind {
	case Sleep:
		return x.beginSleep(rs, st)
	case Event:
		return x.beginWait(rs, st)
	case Child:
		if st.StartedAt.IsZero() {
			st.StartedAt = x.now
		}
		return x.beginChild(rs, st)
	}
	st.State, st.DueAt = store.StepReady, x.now
	x.readied = append(x.readied, store.Ref{Index: st.Index, Item: st.Item})
	x.readiedRuns = append(x.readiedRuns, rs)
	return x.put(st)
}

// releaseSerial frees the serial slot held by step i and hands it to the
// first queued step.
func (x *Txn) releaseSerial(rs *runState, i int) error {
	r := &rs.rec
	if r.Serial != i {
		return nil
	}
	r.Serial = -1
	if len(r.SerialQueue) == 0 || r.Phase != store.PhaseActive {
		return nil
	}
	next := r.SerialQueue[0]
	r.SerialQueue = slices.Clone(r.SerialQueue[1:])
	st, err := x.step(rs, next, 0)
	if err != nil {
		return err
	}
	return x.makeReady(rs, &st)
}

// resolve tells the dependents of a step that ended that it completed (ok)
// or not. A dependent of a step that did not complete is skipped, and so on
// downstream, unless it allows failed dependencies.
func (x *Txn) resolve(rs *runState, from int, ok bool) error {
	type item struct {
		index int32
		ok    bool
		cause int32
	}
	var stack []item
	for _, d := range rs.plan.Steps[from].Dependents {
		stack = append(stack, item{d, ok, int32(from)})
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		st, err := x.step(rs, int(it.index), 0)
		if err != nil {
			return err
		}
		if st.State != store.StepPending || rs.rec.Phase != store.PhaseActive {
			continue
		}
		sp := &rs.plan.Steps[it.index]
		if !it.ok && !sp.AllowFailedDeps {
			st.State = store.StepSkipped
			st.Error = fmt.Sprintf("skipped: dependency %q did not complete", rs.plan.Steps[it.cause].ID)
			st.CompletedAt = x.now
			rs.rec.Done++
			for _, d := range sp.Dependents {
				stack = append(stack, item{d, false, it.index})
			}
			if err := x.put(&st); err != nil {
				return err
			}
			continue
		}
		st.Waiting--
		if st.Waiting > 0 {
			if err := x.put(&st); err != nil {
				return err
			}
			continue
		}
		if err := x.makeReady(rs, &st); err != nil {
			return err
		}
	}
	return nil
}

// Finish records how a claimed attempt ended and does what follows from it:
// dependents become ready, the run stops or ends, the next compensation is
// scheduled. It returns store.ErrLeaseLost when the claim is no longer held.
func (x *Txn) Finish(c *Claim, o Outcome) error {
	rs, err := x.run(c.RunID)
	if err != nil {
		return err
	}
	st, err := x.step(rs, c.Index, c.Item)
	if err != nil {
		return err
	}
	running := st.State == store.StepRunning
	if c.Comp {
		running = st.Comp == store.CompRunning
	}
	if st.Token != c.Token || st.Owner != x.lim.Owner || !running || rs.rec.Generation != c.Generation {
		return fmt.Errorf("%w: step %q of run %q (claim %d, now %d held by %q)", store.ErrLeaseLost, st.ID, c.RunID, c.Token, st.Token, st.Owner)
	}
	// A first attempt of a step that completed with nothing more to tell
	// (no logs, no HTTP reply) needs no attempt record: the step's
	// StartedAt, CompletedAt and Owner are that record.
	plain := !c.Comp && c.Item == 0 && o.Err == "" && c.Attempt == 1 && c.Generation == 0 && len(o.Logs) == 0 && !o.LogsCut && o.StatusCode == 0
	if !plain {
		a := store.Attempt{RunID: c.RunID, Index: c.Index, Item: c.Item, StepID: st.ID, Compensation: c.Comp, Generation: c.Generation,
			Number: c.Attempt, Owner: st.Owner, StartedAt: c.StartedAt, EndedAt: x.now, Error: o.Err,
			StatusCode: o.StatusCode, Duration: o.Duration, Logs: o.Logs, LogsCut: o.LogsCut}
		if err := x.tx.PutAttempt(a); err != nil {
			return err
		}
	}
	rs.rec.Running--
	owner := st.Owner
	st.Owner, st.LeaseUntil, st.DueAt, st.AttemptAt = "", time.Time{}, time.Time{}, time.Time{}
	switch {
	case c.Comp && o.Err == "":
		return x.compDone(rs, &st)
	case c.Comp:
		return x.compFailed(rs, &st, o)
	case o.Err != "":
		return x.attemptFailed(rs, &st, o)
	}
	st.Owner = owner // kept on a completed step: the engine that completed it
	if c.Item > 0 {
		return x.itemCompleted(rs, &st, o.Result)
	}
	return x.stepCompleted(rs, &st, o.Result)
}

// stepCompleted records that a step (item 0) completed with result, and
// writes it.
func (x *Txn) stepCompleted(rs *runState, st *store.Step, result []byte) error {
	r := &rs.rec
	r.Seq++
	st.State, st.Result, st.Error, st.Seq, st.CompletedAt = store.StepCompleted, result, "", r.Seq, x.now
	st.DueAt = time.Time{}
	r.Done++
	if err := x.put(st); err != nil {
		return err
	}
	if r.Phase == store.PhaseActive {
		if err := x.resolve(rs, st.Index, true); err != nil {
			return err
		}
	}
	if err := x.releaseSerial(rs, st.Index); err != nil {
		return err
	}
	return x.maybeEnd(rs)
}

// attemptFailed records a failed attempt of a step or item (no longer
// running) and writes it: it waits for its next attempt, or fails for good.
func (x *Txn) attemptFailed(rs *runState, st *store.Step, o Outcome) error {
	r := &rs.rec
	sp := &rs.plan.Steps[st.Index]
	st.Error = o.Err
	if o.Timeout && r.Phase == store.PhaseActive {
		// The run's deadline passed during the attempt: the run stops,
		// and the step, cut short by it, ends cancelled as its other
		// attempts under way do.
		if err := x.stopping(rs, store.RunFailed, store.CauseTimeout, timeoutReason(rs)); err != nil {
			return err
		}
		return x.giveUp(rs, st, o.Err)
	}
	budget := st.Attempts - st.Interruptions
	if !o.Permanent && budget < sp.Retry.MaxAttempts && r.Phase == store.PhaseActive {
		wait := max(x.env.Jitter(sp.Retry.Interval(budget)), o.RetryAfter)
		st.State = store.StepReady
		st.DueAt = x.now.Add(wait).Truncate(time.Microsecond)
		if !r.Deadline.IsZero() && st.DueAt.After(r.Deadline) {
			st.DueAt = r.Deadline
		}
		x.eff.due(x.now, st.DueAt)
		return x.put(st)
	}
	return x.giveUp(rs, st, st.Error)
}

// giveUp ends a step or item that failed for good (an attempt, a path that
// led nowhere, a map past its tolerance, a child run that failed, a wait that
// timed out), writes it, and does what follows: the run stops (policy
// "fail") or the step's dependents are skipped (policy "continue").
func (x *Txn) giveUp(rs *runState, st *store.Step, msg string) error {
	if st.Item > 0 {
		return x.itemFailed(rs, st, msg)
	}
	r := &rs.rec
	st.Error, st.CompletedAt, st.DueAt = msg, x.now, time.Time{}
	st.Owner, st.LeaseUntil, st.AttemptAt = "", time.Time{}, time.Time{}
	r.Done++
	if r.Phase != store.PhaseActive && (r.Cause == store.CauseCancelled || r.Cause == store.CauseTimeout || r.Cause == store.CauseParent) {
		st.State = store.StepCancelled
	} else {
		st.State = store.StepFailed
		r.Failed++
	}
	if err := x.put(st); err != nil {
		return err
	}
	if r.Phase == store.PhaseActive {
		if !r.Deadline.IsZero() && !x.now.Before(r.Deadline) {
			if err := x.timedOut(rs); err != nil {
				return err
			}
		} else if !rs.plan.Continue {
			reason := fmt.Sprintf("step %q failed: %s", st.ID, msg)
			if n := st.Attempts - st.Interruptions; n > 1 {
				reason = fmt.Sprintf("step %q failed after %d attempts: %s", st.ID, n, msg)
			}
			if err := x.stop(rs, store.RunFailed, store.CauseFailed, reason); err != nil {
				return err
			}
		} else if err := x.resolve(rs, st.Index, false); err != nil {
			return err
		}
	}
	if err := x.releaseSerial(rs, st.Index); err != nil {
		return err
	}
	return x.maybeEnd(rs)
}

// Release gives back a claim whose attempt was cut short because this engine
// is closing: the attempt does not count, and the step (or item, or
// compensation) is due again at once, for the next engine. A step of a run
// that has stopped meanwhile ends as if its attempt failed.
func (x *Txn) Release(c *Claim, reason string) error {
	rs, err := x.run(c.RunID)
	if err != nil {
		return err
	}
	st, err := x.step(rs, c.Index, c.Item)
	if err != nil {
		return err
	}
	if st.Token != c.Token || st.Owner != x.lim.Owner || rs.rec.Generation != c.Generation {
		return store.ErrLeaseLost
	}
	if !c.Comp && rs.rec.Phase != store.PhaseActive {
		return x.Finish(c, Outcome{Err: reason, Permanent: true})
	}
	rs.rec.Running--
	st.Owner, st.LeaseUntil, st.AttemptAt, st.DueAt = "", time.Time{}, time.Time{}, x.now
	// A step (or compensation) whose only attempt is given back has not
	// started.
	if c.Comp {
		st.Comp, st.CompAttempts = store.CompReady, st.CompAttempts-1
		if st.CompAttempts == 0 {
			st.CompStartedAt = time.Time{}
		}
	} else {
		st.State, st.Attempts = store.StepReady, st.Attempts-1
		if st.Attempts == 0 {
			st.StartedAt = time.Time{}
		}
	}
	x.eff.Due = true
	return x.put(&st)
}
