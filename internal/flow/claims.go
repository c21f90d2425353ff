package flow

import (
	"fmt"
	"math"
	"time"

	"github.com/dagflow/dagflow/store"
)

// This file holds how due records are taken up: a ready step, item or
// compensation is claimed for a worker under a lease; a timer that fired
// (a sleep's end, a wait's timeout, the run's deadline) is acted on at once;
// an attempt whose lease ran out is ended as interrupted.

// Claim takes up the records due now, in the order they fell due: it claims
// up to max ready steps, items and compensations for this engine, and acts on
// every timer and expired lease it meets on the way.
func (x *Txn) Claim(max int) error {
	claimed := len(x.eff.Claimed)
	for range 64 { // each round changes every record it reads
		left := max - (len(x.eff.Claimed) - claimed)
		if left <= 0 {
			return nil
		}
		due, err := x.tx.DueSteps(x.now, left)
		if err != nil {
			return err
		}
		for i := range due {
			if len(x.eff.Claimed)-claimed >= max {
				return nil
			}
			if err := x.take(&due[i]); err != nil {
				return err
			}
		}
		if len(due) < left {
			return nil
		}
	}
	return nil
}

// take acts on one due record.
func (x *Txn) take(st *store.Step) error {
	rs, err := x.run(st.RunID)
	if err != nil {
		return err
	}
	// Read again: an earlier record of this round may have changed it.
	cur, err := x.step(rs, st.Index, st.Item)
	if err != nil {
		return err
	}
	if cur.DueAt.IsZero() || cur.DueAt.After(x.now) {
		return nil
	}
	*st = cur
	r := &rs.rec
	if st.State == store.StepRunning || st.Comp == store.CompRunning {
		// The lease ran out (or the engine that held it is gone): the
		// attempt under way is over.
		if err := x.interrupt(rs, st); err != nil {
			return err
		}
		if st.DueAt.IsZero() || st.DueAt.After(x.now) {
			return nil
		}
	}
	if st.Comp == store.CompWaiting {
		return x.fireComp(rs, st)
	}
	if st.State == store.StepWaiting {
		return x.fire(rs, st)
	}
	comp := false
	switch {
	case st.State == store.StepReady && r.Phase == store.PhaseActive && r.State.Active():
		if !r.Deadline.IsZero() && !x.now.Before(r.Deadline) {
			st.DueAt = time.Time{}
			if err := x.put(st); err != nil {
				return err
			}
			return x.timedOut(rs)
		}
	case st.Comp == store.CompReady && r.Phase == store.PhaseCompensating:
		comp = true
	default:
		// Nothing to run (the run stopped since): drop it from the index.
		st.DueAt = time.Time{}
		return x.put(st)
	}
	if !x.env.CanRun(rs.plan, st.Index, comp) {
		st.DueAt = x.now.Add(ParkDelay)
		x.eff.later(st.DueAt)
		sp := &rs.plan.Steps[st.Index]
		name := sp.Handler
		if comp {
			name = sp.CompHandler
		}
		x.eff.Parked = append(x.eff.Parked, Parked{RunID: r.ID, Index: st.Index, StepID: st.ID, Handler: name})
		return x.put(st)
	}
	return x.claim(rs, st, comp)
}

// claim claims a ready record for this engine.
func (x *Txn) claim(rs *runState, st *store.Step, comp bool) error {
	r := &rs.rec
	st.Owner, st.Token = x.lim.Owner, st.Token+1
	st.DueAt, st.LeaseUntil = time.Time{}, time.Time{}
	if x.lim.Lease > 0 {
		st.LeaseUntil = x.now.Add(x.lim.Lease)
		st.DueAt = st.LeaseUntil
	}
	c := Claim{RunID: r.ID, Index: st.Index, Item: st.Item, StepID: st.ID, Comp: comp, Generation: r.Generation,
		Token: st.Token, Seq: r.Seq, Deadline: r.Deadline, StartedAt: x.now, Plan: rs.plan, Input: st.Input, Trace: r.Trace}
	if comp {
		st.Comp = store.CompRunning
		st.CompAttempts++
		if st.CompStartedAt.IsZero() {
			st.CompStartedAt = x.now
		}
		c.Attempt, c.Result = st.CompAttempts, st.Result
	} else {
		st.State = store.StepRunning
		st.Attempts++
		if st.StartedAt.IsZero() {
			st.StartedAt = x.now
		}
		c.Attempt = st.Attempts
		if sp := &rs.plan.Steps[st.Index]; sp.AllowFailedDeps && st.Item == 0 {
			for _, d := range sp.Deps {
				dst, err := x.step(rs, int(d), 0)
				if err != nil {
					return err
				}
				if dst.State != store.StepCompleted {
					c.FailedDeps = append(c.FailedDeps, dst.ID)
				}
			}
		}
	}
	if r.State == store.RunPending {
		r.State = store.RunRunning
	}
	st.AttemptAt = x.now
	r.Running++
	if err := x.put(st); err != nil {
		return err
	}
	x.eff.Claimed = append(x.eff.Claimed, c)
	return nil
}

// interrupt ends the attempt under way on st, whose engine stopped or lost
// its lease. An interruption is not the step's failure: the step runs again
// as the next attempt, whatever its retry policy, unless its attempts were
// interrupted more often than the engine allows. It writes st.
func (x *Txn) interrupt(rs *runState, st *store.Step) error {
	comp := st.Comp == store.CompRunning
	n := st.Attempts
	if comp {
		n = st.CompAttempts
	}
	msg := fmt.Sprintf("attempt %d was interrupted: the engine running it stopped or lost its lease", n)
	if err := x.tx.PutAttempt(store.Attempt{RunID: rs.rec.ID, Index: st.Index, Item: st.Item, StepID: st.ID, Compensation: comp,
		Generation: rs.rec.Generation, Number: n, Owner: st.Owner, StartedAt: st.AttemptAt, EndedAt: x.now,
		Error: msg, Interrupted: true}); err != nil {
		return err
	}
	st.AttemptAt = time.Time{}
	rs.rec.Running--
	st.Owner, st.LeaseUntil, st.DueAt = "", time.Time{}, time.Time{}
	count := &st.Interruptions
	if comp {
		count = &st.CompInterruptions
	}
	*count++
	if *count >= x.lim.MaxInterruptions {
		msg = fmt.Sprintf("its attempts were interrupted %d times (the engine running each stopped or lost its lease); the limit is %d", *count, x.lim.MaxInterruptions)
		if comp {
			return x.compGaveUp(rs, st, msg)
		}
		return x.giveUp(rs, st, msg)
	}
	st.DueAt = x.now
	x.eff.Due = true
	if comp {
		st.Comp = store.CompReady
		return x.put(st)
	}
	st.State = store.StepReady
	if rs.rec.Phase != store.PhaseActive {
		return x.giveUp(rs, st, msg)
	}
	return x.put(st)
}

// Continue is Claim for the transaction that recorded an attempt's outcome,
// made by the worker that ran the attempt with its slot in hand: a step that
// the outcome made ready is claimed first, ahead of steps due earlier, so that
// the worker goes on with the run it was running, as a goroutine running that
// workflow would. Only when the outcome made nothing ready does it claim the
// steps due longest; steps due earlier otherwise wait for the scheduler, to
// which the slots this transaction does not fill go back.
func (x *Txn) Continue(max int) error {
	claimed := len(x.eff.Claimed)
	for i, ref := range x.readied {
		if len(x.eff.Claimed)-claimed >= max {
			return nil
		}
		st, err := x.step(x.readiedRuns[i], ref.Index, ref.Item)
		if err != nil {
			return err
		}
		if st.State == store.StepReady && !st.DueAt.IsZero() && !st.DueAt.After(x.now) {
			n := len(x.eff.Claimed)
			if err := x.take(&st); err != nil {
				return err
			}
			x.taken += len(x.eff.Claimed) - n
		}
	}
	if len(x.eff.Claimed) > claimed {
		// The worker goes on with its run. Other due steps are the
		// scheduler's: asking the store for them here would cost every
		// completion a read (a round trip on a database server).
		return nil
	}
	return x.Claim(max)
}

// Recover takes over, at once, every claim that an earlier engine left in an
// exclusive store: the records are made due now, and the next Claim ends
// their interrupted attempts and starts them again. Webhooks not yet
// delivered are made due now too (one that was being sent when the process
// died is sent again).
func (x *Txn) Recover() error {
	hooks, err := x.tx.DueWebhooks(x.now.AddDate(100, 0, 0), math.MaxInt32)
	if err != nil {
		return err
	}
	for _, w := range hooks {
		if w.DueAt.After(x.now) {
			w.DueAt = x.now
			if err := x.tx.PutWebhook(w); err != nil {
				return err
			}
		}
	}
	runs, err := x.tx.Runs(store.RunQuery{State: store.RunRunning})
	if err != nil {
		return err
	}
	for _, r := range runs {
		if r.Running == 0 {
			continue
		}
		steps, err := x.tx.Steps(r.ID)
		if err != nil {
			return err
		}
		for _, st := range steps {
			if err := x.recover(st); err != nil {
				return err
			}
			if st.Items == 0 {
				continue
			}
			items, err := x.tx.Items(r.ID, st.Index)
			if err != nil {
				return err
			}
			for _, it := range items {
				if err := x.recover(it); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (x *Txn) recover(st store.Step) error {
	if st.State != store.StepRunning && st.Comp != store.CompRunning {
		return nil
	}
	st.DueAt = x.now
	x.eff.Due = true
	return x.put(&st)
}

// Renew extends the lease of a claim this engine holds. It returns
// store.ErrLeaseLost when the claim is no longer held.
func (x *Txn) Renew(c *Claim) error {
	st, err := x.tx.Step(c.RunID, c.Index, c.Item)
	if err != nil {
		return err
	}
	if st.Token != c.Token || st.Owner != x.lim.Owner {
		return store.ErrLeaseLost
	}
	st.LeaseUntil = x.now.Add(x.lim.Lease)
	st.DueAt = st.LeaseUntil
	return x.put(&st)
}
