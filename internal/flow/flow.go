package flow

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/dagflow/dagflow/store"
)

// Env is what the state machine needs from the engine running it.
type Env interface {
	// Plan returns the compiled plan of a run, reading its spec through tx
	// when the engine has not compiled it yet.
	Plan(tx store.Tx, runID string) (*Plan, error)
	// Owner names this engine in leases.
	Owner() string
	// Lease is how long a claim lasts before another engine may take it
	// over; zero means claims last until the engine's process ends (an
	// exclusive store).
	Lease() time.Duration
	// CanRun reports whether this engine can run the step (or its
	// compensation): whether it has the handler.
	CanRun(runID string, p *Plan, index int, comp bool) bool
	// Jitter returns a random duration in [0, d].
	Jitter(d time.Duration) time.Duration
	// Webhooks returns the webhook records to queue for a run that has
	// just ended, as it is in tx.
	Webhooks(tx store.Tx, r *store.Run, p *Plan, now time.Time) ([]store.Webhook, error)
}

// ParkDelay is how long a step waits before it is looked at again when the
// engine that claimed it has no handler for it.
const ParkDelay = 2 * time.Second

// Claim is a step (or compensation) this engine claimed and must now run.
type Claim struct {
	RunID      string
	Index      int
	StepID     string
	Comp       bool
	Attempt    int
	Generation int
	Token      int64
	// Seq is the run's completion counter when the claim was made: the
	// step sees the results of the steps completed up to it.
	Seq int64
	// Deadline is when the run times out.
	Deadline  time.Time
	StartedAt time.Time
	Plan      *Plan
	// Result is the compensated step's result, for compensations.
	Result json.RawMessage
	// FailedDeps names the dependencies that failed or were skipped, for a
	// step that allows failed dependencies.
	FailedDeps []string
}

// Completion is a step that completed in a transaction.
type Completion struct {
	RunID  string
	Index  int
	Seq    int64
	Result json.RawMessage
}

// Effects is what a transaction did that the engine must act on after it
// commits.
type Effects struct {
	Claimed   []Claim
	Completed []Completion
	// Finished lists runs that reached a final state.
	Finished []Finish
	// Stopped lists runs that stopped; Cancel tells whether their running
	// attempts should be cancelled (cancel, timeout) or left to finish
	// (a step failed).
	Stopped []Stop
	// Due is set when a step or webhook became due now; NextDue is the
	// earliest future due time written.
	Due     bool
	NextDue time.Time
	// Hooks is set when webhooks were queued.
	Hooks bool
	// Parked lists steps put off because this engine lacks their handler.
	Parked []Parked
}

// Finish is a run that reached a final state in a transaction.
type Finish struct {
	RunID string
	State store.RunState
	Error string
}

// Stop is a run that stopped in a transaction.
type Stop struct {
	RunID  string
	Cancel bool
	// Reason says why: the run's error ("cancelled", "workflow timed out
	// after 1m0s", a step's failure).
	Reason string
}

// Parked is a step put off for want of a handler.
type Parked struct {
	RunID   string
	Index   int
	Handler bool // the step itself, not its compensation
}

func (e *Effects) reset() { *e = Effects{Claimed: e.Claimed[:0], Completed: e.Completed[:0]} }

func (e *Effects) later(t time.Time) {
	if e.NextDue.IsZero() || t.Before(e.NextDue) {
		e.NextDue = t
	}
}

// Outcome is how an attempt ended.
type Outcome struct {
	Result json.RawMessage
	// Err is the failure, "" on success.
	Err string
	// Permanent marks a failure not worth retrying.
	Permanent bool
	// RetryAfter is the least wait the handler asked for.
	RetryAfter time.Duration
	StatusCode int
	Duration   time.Duration
	Logs       []store.LogLine
	LogsCut    bool
}

// Txn runs the state machine inside one transaction. Make one with Begin for
// each call of the transaction function (a store may call it again), and call
// Flush before the function returns nil.
type Txn struct {
	tx    store.Tx
	env   Env
	now   time.Time
	eff   *Effects
	runs  []*runState
	spare []*runState // runStates to reuse

	// fresh holds steps this transaction made ready and has not written
	// yet: Claim takes them directly when nothing older is due, so that a
	// step unblocked and claimed in one transaction is written once and
	// never goes through the store's due index.
	fresh    []freshStep
	freshIdx map[freshKey]int // index in fresh, once fresh is long
	// freshLo and freshHi bound the indexes of the steps in fresh, so
	// that most steps a large transaction writes are known not to be
	// held without a look.
	freshLo, freshHi int

	stack []resolveItem // resolve's, reused
}

// resolveItem is a dependent resolve has yet to tell of a finished step.
type resolveItem struct {
	index int32
	ok    bool
	cause int32
}

type freshStep struct {
	st   store.Step
	done bool // written or claimed
}

type freshKey struct {
	run   string
	index int
}

type runState struct {
	rec  store.Run
	plan *Plan
}

// Begin starts a Txn over tx. It resets eff, which collects the effects.
func Begin(tx store.Tx, env Env, now time.Time, eff *Effects) *Txn {
	x := &Txn{}
	x.Reset(tx, env, now, eff)
	return x
}

// Reset makes x a new Txn over tx, reusing what it allocated before: an
// engine keeps one Txn per worker so that the transactions of its hot path
// allocate nothing of their own. It resets eff.
func (x *Txn) Reset(tx store.Tx, env Env, now time.Time, eff *Effects) *Txn {
	eff.reset()
	for _, rs := range x.runs {
		*rs = runState{}
		x.spare = append(x.spare, rs)
	}
	x.tx, x.env, x.now, x.eff, x.runs = tx, env, now, eff, x.runs[:0]
	clear(x.fresh)
	x.fresh = x.fresh[:0]
	clear(x.freshIdx)
	if len(x.spare) > 64 {
		x.spare = nil // runStates of one large transaction
	}
	return x
}

// Flush writes back the runs and steps the Txn changed.
func (x *Txn) Flush() error {
	if err := x.flushFresh(); err != nil {
		return err
	}
	for _, rs := range x.runs {
		rs.rec.UpdatedAt = x.now
		if err := x.tx.PutRun(rs.rec); err != nil {
			return err
		}
	}
	return nil
}

// run reads a run and its plan once per transaction.
func (x *Txn) run(id string) (*runState, error) {
	for _, rs := range x.runs {
		if rs.rec.ID == id {
			return rs, nil
		}
	}
	r, err := x.tx.Run(id)
	if err != nil {
		return nil, err
	}
	p, err := x.env.Plan(x.tx, id)
	if err != nil {
		return nil, err
	}
	if len(p.Steps) != r.Total {
		return nil, fmt.Errorf("run %q: its spec has %d steps but the run has %d", id, len(p.Steps), r.Total)
	}
	rs := x.newRunState()
	rs.rec, rs.plan = r, p
	x.runs = append(x.runs, rs)
	return rs, nil
}

func (x *Txn) newRunState() *runState {
	if n := len(x.spare); n > 0 {
		rs := x.spare[n-1]
		x.spare = x.spare[:n-1]
		return rs
	}
	return &runState{}
}

// maxHeld bounds the steps a transaction holds: a claim takes no more than
// an engine's free slots, and a step that would not fit is simply written.
const maxHeld = 256

// hold keeps a step made ready by this transaction (or queued for its run's
// serial slot, which is about to be freed) to be claimed or written later in
// it, and reports whether it did; the caller writes a step it did not hold.
// Only ready steps held are claimed.
func (x *Txn) hold(st store.Step) bool {
	if len(x.fresh) >= maxHeld {
		return false
	}
	if len(x.fresh) == 0 || st.Index < x.freshLo {
		x.freshLo = st.Index
	}
	if len(x.fresh) == 0 || st.Index > x.freshHi {
		x.freshHi = st.Index
	}
	x.fresh = append(x.fresh, freshStep{st: st})
	if x.freshIdx != nil || len(x.fresh) > 8 {
		if x.freshIdx == nil {
			x.freshIdx = make(map[freshKey]int)
		}
		for i := len(x.freshIdx); i < len(x.fresh); i++ {
			x.freshIdx[freshKey{x.fresh[i].st.RunID, x.fresh[i].st.Index}] = i
		}
	}
	return true
}

// held returns the held copy of a step, if any.
func (x *Txn) held(runID string, index int) *freshStep {
	if len(x.fresh) == 0 || index < x.freshLo || index > x.freshHi {
		return nil
	}
	if x.freshIdx != nil {
		if i, ok := x.freshIdx[freshKey{runID, index}]; ok && !x.fresh[i].done {
			return &x.fresh[i]
		}
		return nil
	}
	for i := range x.fresh {
		f := &x.fresh[i]
		if !f.done && f.st.Index == index && f.st.RunID == runID {
			return f
		}
	}
	return nil
}

// put writes a step, dropping any held copy of it.
func (x *Txn) put(st store.Step) error {
	if f := x.held(st.RunID, st.Index); f != nil {
		f.done = true
	}
	return x.tx.PutStep(st)
}

// flushFresh writes the held steps that were not claimed.
func (x *Txn) flushFresh() error {
	for i := range x.fresh {
		if f := &x.fresh[i]; !f.done {
			f.done = true
			if err := x.tx.PutStep(f.st); err != nil {
				return err
			}
		}
	}
	return nil
}

// steps returns every step of a run, writing held steps first.
func (x *Txn) steps(runID string) ([]store.Step, error) {
	if err := x.flushFresh(); err != nil {
		return nil, err
	}
	return x.tx.Steps(runID)
}

func (x *Txn) step(rs *runState, i int) (store.Step, error) {
	if f := x.held(rs.rec.ID, i); f != nil {
		return f.st, nil
	}
	st, err := x.tx.Step(rs.rec.ID, i)
	if err != nil {
		return st, fmt.Errorf("run %q step %d: %w", rs.rec.ID, i, err)
	}
	return st, nil
}

// Create writes a new run, its spec and its steps, and makes the steps that
// depend on nothing ready.
func (x *Txn) Create(r store.Run, spec json.RawMessage, p *Plan) error {
	r.Total, r.Serial = len(p.Steps), -1
	r.State, r.Phase = store.RunRunning, store.PhaseActive
	if err := x.tx.PutRun(r); err != nil {
		return err
	}
	if err := x.tx.PutSpec(r.ID, spec); err != nil {
		return err
	}
	rs := x.newRunState()
	rs.rec, rs.plan = r, p
	x.runs = append(x.runs, rs)
	for i := range p.Steps {
		st := store.Step{RunID: r.ID, Index: i, ID: p.Steps[i].ID, State: store.StepPending, Waiting: len(p.Steps[i].Deps)}
		if st.Waiting == 0 {
			x.makeReady(rs, &st)
		}
		if err := x.put(st); err != nil {
			return err
		}
	}
	return nil
}

// makeReady moves a step whose dependencies are resolved to ready, or queues
// it for the run's serial slot when it is not parallel and the slot is taken.
// The caller writes st.
func (x *Txn) makeReady(rs *runState, st *store.Step) {
	r := &rs.rec
	if !rs.plan.Steps[st.Index].Parallel {
		if r.Serial >= 0 && r.Serial != st.Index {
			i, _ := slices.BinarySearch(r.SerialQueue, st.Index)
			r.SerialQueue = slices.Insert(slices.Clip(r.SerialQueue), i, st.Index)
			return
		}
		r.Serial = st.Index
	}
	st.State = store.StepReady
	st.DueAt = x.now
	x.eff.Due = true
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
	st, err := x.step(rs, next)
	if err != nil {
		return err
	}
	x.makeReady(rs, &st)
	if st.State == store.StepReady {
		// resolve may hold the step already, queued: it is still to be
		// written, as it is now.
		if f := x.held(rs.rec.ID, next); f != nil {
			f.st = st
			return nil
		}
		if x.hold(st) {
			return nil
		}
	}
	return x.put(st)
}

// resolve tells the dependents of a finished step that it completed (ok) or
// failed. A dependent of a failed step is skipped, and so on downstream,
// unless it allows failed dependencies.
func (x *Txn) resolve(rs *runState, from int, ok bool) error {
	stack := x.stack[:0]
	defer func() {
		if cap(stack) <= 4096 { // not the stack of a large fan-out
			x.stack = stack[:0]
		}
	}()
	for _, d := range rs.plan.Steps[from].Dependents {
		stack = append(stack, resolveItem{d, ok, int32(from)})
	}
	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		st, err := x.step(rs, int(it.index))
		if err != nil {
			return err
		}
		if st.State != store.StepPending {
			continue
		}
		sp := &rs.plan.Steps[it.index]
		if !it.ok && !sp.AllowFailedDeps {
			st.State = store.StepSkipped
			st.Error = fmt.Sprintf("skipped: dependency %q did not complete", rs.plan.Steps[it.cause].ID)
			st.CompletedAt = x.now
			rs.rec.Done++
			for _, d := range sp.Dependents {
				stack = append(stack, resolveItem{d, false, it.index})
			}
		} else {
			st.Waiting--
			if st.Waiting == 0 {
				x.makeReady(rs, &st)
				if st.State == store.StepReady && x.hold(st) {
					continue
				}
				// Queued for the run's serial slot, which the step that
				// finished holds and gives up next (releaseSerial): held,
				// it is written once, ready, rather than queued and again
				// ready.
				if st.State == store.StepPending && rs.rec.Serial == from && x.hold(st) {
					continue
				}
			}
		}
		if err := x.put(st); err != nil {
			return err
		}
	}
	return nil
}

// Claim claims up to max due steps and compensations for this engine, taking
// over the ones whose lease expired, timing out runs past their deadline, and
// putting off the ones this engine has no handler for.
func (x *Txn) Claim(max int) error {
	if max <= 0 {
		return x.flushFresh()
	}
	claimed := len(x.eff.Claimed)
	if len(x.fresh) > 0 && x.env.Lease() == 0 {
		// Steps this transaction made ready are claimed at once, unless
		// something that was due earlier waits: that goes first. (On a
		// shared store, asking what is due costs a round trip of its own,
		// and DueSteps, which skips what other engines hold, is as cheap.)
		next, err := x.tx.NextDue()
		if err != nil {
			return err
		}
		if next.IsZero() || next.After(x.now) {
			if err := x.claimFresh(max); err != nil {
				return err
			}
		}
	}
	if err := x.flushFresh(); err != nil {
		return err
	}
	left := max - (len(x.eff.Claimed) - claimed)
	if left <= 0 {
		return nil
	}
	due, err := x.tx.DueSteps(x.now, left)
	if err != nil {
		return err
	}
	for _, st := range due {
		if err := x.claimOne(st); err != nil {
			return err
		}
	}
	return nil
}

// Continue is Claim for the transaction that recorded an attempt's outcome,
// made by the worker that ran the attempt with its slot in hand: a step
// that the outcome made ready is claimed first, ahead of steps due earlier,
// so that the worker goes on with the run it was running, as a goroutine
// running that workflow would; the max-1 other slots are claimed as Claim
// claims. Steps due earlier get the slots that free up when a worker's run
// has nothing ready for it next.
func (x *Txn) Continue(max int) error {
	claimed := len(x.eff.Claimed)
	if max > 0 {
		if err := x.claimFresh(1); err != nil {
			return err
		}
	}
	return x.Claim(max - (len(x.eff.Claimed) - claimed))
}

// claimFresh claims up to max of the ready steps this transaction holds, in
// the order they became ready.
func (x *Txn) claimFresh(max int) error {
	claimed := len(x.eff.Claimed)
	for i := 0; i < len(x.fresh) && len(x.eff.Claimed)-claimed < max; i++ {
		f := &x.fresh[i]
		if f.done || f.st.State != store.StepReady {
			continue
		}
		f.done = true
		if err := x.claimOne(f.st); err != nil {
			return err
		}
	}
	return nil
}

func (x *Txn) claimOne(st store.Step) error {
	rs, err := x.run(st.RunID)
	if err != nil {
		return err
	}
	r := &rs.rec
	if st.State == store.StepRunning || st.Comp == store.CompRunning {
		// The lease ran out (or the engine that held it is gone): the
		// attempt under way is over, and the step may start again.
		if err := x.interrupt(rs, &st); err != nil {
			return err
		}
		if err := x.maybeEnd(rs); err != nil {
			return err
		}
		if st.DueAt.IsZero() || st.DueAt.After(x.now) {
			return nil // interrupt wrote it; it waits for its backoff
		}
	}
	if r.Phase == store.PhaseActive && !r.Deadline.IsZero() && !x.now.Before(r.Deadline) {
		if err := x.put(st); err != nil {
			return err
		}
		return x.stop(rs, store.RunFailed, fmt.Sprintf("workflow timed out after %s", rs.plan.Timeout), true)
	}
	comp := false
	switch {
	case st.State == store.StepReady && r.Phase == store.PhaseActive && r.State == store.RunRunning:
	case st.Comp == store.CompReady && r.Phase == store.PhaseCompensating:
		comp = true
	default:
		// Nothing to run (the run stopped since): drop it from the index.
		st.DueAt = time.Time{}
		return x.put(st)
	}
	if !x.env.CanRun(r.ID, rs.plan, st.Index, comp) {
		st.DueAt = x.now.Add(ParkDelay)
		x.eff.later(st.DueAt)
		x.eff.Parked = append(x.eff.Parked, Parked{RunID: r.ID, Index: st.Index, Handler: !comp})
		return x.put(st)
	}
	st.Owner, st.Token = x.env.Owner(), st.Token+1
	st.DueAt, st.LeaseUntil = time.Time{}, time.Time{}
	if lease := x.env.Lease(); lease > 0 {
		st.LeaseUntil = x.now.Add(lease)
		st.DueAt = st.LeaseUntil
	}
	c := Claim{RunID: r.ID, Index: st.Index, StepID: st.ID, Comp: comp, Generation: r.Generation, Token: st.Token,
		Seq: r.Seq, Deadline: r.Deadline, StartedAt: x.now, Plan: rs.plan}
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
		if sp := &rs.plan.Steps[st.Index]; sp.AllowFailedDeps {
			for _, d := range sp.Deps {
				dst, err := x.step(rs, int(d))
				if err != nil {
					return err
				}
				if dst.State != store.StepCompleted {
					c.FailedDeps = append(c.FailedDeps, dst.ID)
				}
			}
		}
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
// its lease, as a failed attempt that may be retried after its backoff, and
// writes st.
func (x *Txn) interrupt(rs *runState, st *store.Step) error {
	comp := st.Comp == store.CompRunning
	n := st.Attempts
	if comp {
		n = st.CompAttempts
	}
	msg := fmt.Sprintf("attempt %d was interrupted: the engine running it stopped or lost its lease", n)
	if err := x.tx.PutAttempt(store.Attempt{RunID: rs.rec.ID, Index: st.Index, StepID: st.ID, Compensation: comp,
		Generation: rs.rec.Generation, Number: n, Owner: st.Owner, StartedAt: st.AttemptAt, EndedAt: x.now, Error: msg}); err != nil {
		return err
	}
	st.AttemptAt = time.Time{}
	rs.rec.Running--
	st.Owner, st.LeaseUntil, st.DueAt = "", time.Time{}, time.Time{}
	if comp {
		return x.compFailed(rs, st, Outcome{Err: msg}, 0)
	}
	return x.stepFailed(rs, st, Outcome{Err: msg}, false)
}

// Finish records how a claimed attempt ended and does what follows from it:
// dependents become ready, the run stops or ends, the next compensation is
// scheduled. It returns store.ErrLeaseLost when the claim is no longer held.
func (x *Txn) Finish(c *Claim, o Outcome) error {
	rs, err := x.run(c.RunID)
	if err != nil {
		return err
	}
	st, err := x.step(rs, c.Index)
	if err != nil {
		return err
	}
	running := st.State == store.StepRunning
	if c.Comp {
		running = st.Comp == store.CompRunning
	}
	if st.Token != c.Token || st.Owner != x.env.Owner() || !running || rs.rec.Generation != c.Generation {
		return fmt.Errorf("%w: step %q of run %q (claim %d, now %d held by %q)", store.ErrLeaseLost, st.ID, c.RunID, c.Token, st.Token, st.Owner)
	}
	// A first attempt that completed with nothing more to tell (no logs,
	// no HTTP reply) needs no record of its own: the step's StartedAt,
	// CompletedAt and Owner are that record (see Engine.Attempts).
	plain := !c.Comp && o.Err == "" && c.Attempt == 1 && c.Generation == 0 && len(o.Logs) == 0 && !o.LogsCut && o.StatusCode == 0
	if !plain {
		a := store.Attempt{RunID: c.RunID, Index: c.Index, StepID: st.ID, Compensation: c.Comp, Generation: c.Generation,
			Number: c.Attempt, Owner: st.Owner, StartedAt: c.StartedAt, EndedAt: x.now, Error: o.Err,
			StatusCode: o.StatusCode, Duration: o.Duration, Logs: o.Logs, LogsCut: o.LogsCut}
		if err := x.tx.PutAttempt(a); err != nil {
			return err
		}
	}
	rs.rec.Running--
	owner := st.Owner
	st.Owner, st.LeaseUntil, st.DueAt, st.AttemptAt = "", time.Time{}, time.Time{}, time.Time{}
	if c.Comp {
		if o.Err == "" {
			st.Comp, st.CompEndedAt, st.CompError = store.CompDone, x.now, ""
			if err := x.put(st); err != nil {
				return err
			}
			return x.nextComp(rs)
		}
		return x.compFailed(rs, &st, o, o.RetryAfter)
	}
	if o.Err != "" {
		if err := x.stepFailed(rs, &st, o, o.Permanent); err != nil {
			return err
		}
		return x.maybeEnd(rs)
	}
	r := &rs.rec
	r.Seq++
	st.State, st.Result, st.Error, st.Seq, st.CompletedAt = store.StepCompleted, o.Result, "", r.Seq, x.now
	st.Owner = owner // kept on a completed step: the engine that completed it
	r.Done++
	if err := x.put(st); err != nil {
		return err
	}
	x.eff.Completed = append(x.eff.Completed, Completion{RunID: r.ID, Index: st.Index, Seq: st.Seq, Result: st.Result})
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

// Release gives back a claim whose attempt was cut short because this engine
// is closing: the attempt does not count against the step's maxAttempts, and
// the step (or its compensation) is due again at once, for the next engine.
// A step of a run that has stopped meanwhile ends as if its attempt failed.
func (x *Txn) Release(c *Claim, reason string) error {
	rs, err := x.run(c.RunID)
	if err != nil {
		return err
	}
	st, err := x.step(rs, c.Index)
	if err != nil {
		return err
	}
	if st.Token != c.Token || st.Owner != x.env.Owner() || rs.rec.Generation != c.Generation {
		return store.ErrLeaseLost
	}
	if !c.Comp && rs.rec.Phase != store.PhaseActive {
		return x.Finish(c, Outcome{Err: reason, Permanent: true})
	}
	rs.rec.Running--
	st.Owner, st.LeaseUntil, st.AttemptAt, st.DueAt = "", time.Time{}, time.Time{}, x.now
	if c.Comp {
		st.Comp, st.CompAttempts = store.CompReady, st.CompAttempts-1
	} else {
		st.State, st.Attempts = store.StepReady, st.Attempts-1
	}
	x.eff.Due = true
	return x.put(st)
}

// stepFailed records a failed attempt of st (no longer running) and writes
// it: the step waits for its next attempt, or fails for good and the run
// stops (policy "fail") or skips its dependents (policy "continue").
func (x *Txn) stepFailed(rs *runState, st *store.Step, o Outcome, permanent bool) error {
	r := &rs.rec
	sp := &rs.plan.Steps[st.Index]
	st.Error = o.Err
	if !permanent && st.Attempts < sp.Retry.MaxAttempts && r.Phase == store.PhaseActive {
		wait := max(x.env.Jitter(sp.Retry.Interval(st.Attempts)), o.RetryAfter)
		st.State = store.StepReady
		st.DueAt = x.now.Add(wait)
		if !r.Deadline.IsZero() && st.DueAt.After(r.Deadline) {
			st.DueAt = r.Deadline
		}
		if st.DueAt.After(x.now) {
			x.eff.later(st.DueAt)
		} else {
			x.eff.Due = true
		}
		return x.put(*st)
	}
	st.CompletedAt = x.now
	r.Done++
	if r.Phase != store.PhaseActive && r.Outcome == store.RunCancelled {
		st.State = store.StepCancelled
	} else {
		st.State = store.StepFailed
		r.Failed++
	}
	if err := x.put(*st); err != nil {
		return err
	}
	if r.Phase == store.PhaseActive && !r.Deadline.IsZero() && !x.now.Before(r.Deadline) {
		if err := x.stop(rs, store.RunFailed, fmt.Sprintf("workflow timed out after %s", rs.plan.Timeout), true); err != nil {
			return err
		}
	} else if r.Phase == store.PhaseActive {
		if !rs.plan.Continue {
			reason := fmt.Sprintf("step %q failed: %s", st.ID, o.Err)
			if st.Attempts > 1 {
				reason = fmt.Sprintf("step %q failed after %d attempts: %s", st.ID, st.Attempts, o.Err)
			}
			if err := x.stop(rs, store.RunFailed, reason, false); err != nil {
				return err
			}
		} else if err := x.resolve(rs, st.Index, false); err != nil {
			return err
		}
	}
	return x.releaseSerial(rs, st.Index)
}

// stop ends an active run's progress: no step starts any more, pending and
// ready steps are skipped (or cancelled), and the run waits for its running
// attempts before it ends (or compensates). cancel asks the engines running
// attempts to cancel them.
func (x *Txn) stop(rs *runState, outcome store.RunState, reason string, cancel bool) error {
	r := &rs.rec
	if r.Phase != store.PhaseActive || r.State != store.RunRunning {
		return nil
	}
	r.Phase, r.Outcome, r.Error = store.PhaseStopping, outcome, reason
	r.SerialQueue, r.Serial = nil, -1
	steps, err := x.steps(r.ID)
	if err != nil {
		return err
	}
	state := store.StepSkipped
	if outcome == store.RunCancelled || cancel {
		state = store.StepCancelled
	}
	for _, st := range steps {
		if st.State != store.StepPending && st.State != store.StepReady {
			continue
		}
		st.State, st.DueAt, st.CompletedAt = state, time.Time{}, x.now
		if st.Error == "" || st.Attempts == 0 {
			st.Error = "not run: " + reason
		}
		r.Done++
		if err := x.put(st); err != nil {
			return err
		}
	}
	x.eff.Stopped = append(x.eff.Stopped, Stop{RunID: r.ID, Cancel: cancel, Reason: reason})
	return x.maybeEnd(rs)
}

// maybeEnd ends the run, or starts compensating it, once nothing is left to
// run.
func (x *Txn) maybeEnd(rs *runState) error {
	r := &rs.rec
	if r.State != store.RunRunning {
		return nil
	}
	switch r.Phase {
	case store.PhaseActive:
		if r.Done < r.Total {
			return nil
		}
		if r.Failed > 0 {
			return x.wrapUp(rs, store.RunFailed, failedSummary(rs, x))
		}
		return x.end(rs, store.RunCompleted, "")
	case store.PhaseStopping:
		if r.Running > 0 {
			return nil
		}
		return x.wrapUp(rs, r.Outcome, r.Error)
	}
	return nil
}

func failedSummary(rs *runState, x *Txn) string {
	steps, err := x.steps(rs.rec.ID)
	if err != nil {
		return fmt.Sprintf("%d steps failed", rs.rec.Failed)
	}
	var names []string
	for _, st := range steps {
		if st.State == store.StepFailed {
			if rs.rec.Failed == 1 {
				// As the "fail" policy says it.
				return fmt.Sprintf("step %q failed: %s", st.ID, st.Error)
			}
			names = append(names, fmt.Sprintf("%q (%s)", st.ID, st.Error))
			if len(names) == 5 {
				break
			}
		}
	}
	more := ""
	if rs.rec.Failed > len(names) {
		more = fmt.Sprintf(" and %d more", rs.rec.Failed-len(names))
	}
	return fmt.Sprintf("%d steps failed: %s%s", rs.rec.Failed, strings.Join(names, ", "), more)
}

// wrapUp ends a run that failed or was cancelled, compensating it first when
// it is a saga with completed steps to undo.
func (x *Txn) wrapUp(rs *runState, outcome store.RunState, reason string) error {
	r := &rs.rec
	if rs.plan.Saga {
		steps, err := x.steps(r.ID)
		if err != nil {
			return err
		}
		var done []store.Step
		for _, st := range steps {
			if st.State == store.StepCompleted && rs.plan.Steps[st.Index].HasComp && st.Comp == store.CompNone {
				done = append(done, st)
			}
		}
		if len(done) > 0 {
			slices.SortFunc(done, func(a, b store.Step) int { return cmp.Compare(b.Seq, a.Seq) })
			r.CompQueue = make([]int, len(done))
			for i, st := range done {
				r.CompQueue[i] = st.Index
			}
			r.Phase, r.Outcome, r.Error = store.PhaseCompensating, outcome, reason
			return x.nextComp(rs)
		}
	}
	return x.end(rs, outcome, reason)
}

// nextComp schedules the next compensation of a compensating run, or ends
// the run when none is left.
func (x *Txn) nextComp(rs *runState) error {
	r := &rs.rec
	if len(r.CompQueue) == 0 {
		return x.end(rs, r.Outcome, r.Error)
	}
	i := r.CompQueue[0]
	r.CompQueue = slices.Clone(r.CompQueue[1:])
	st, err := x.step(rs, i)
	if err != nil {
		return err
	}
	st.Comp, st.CompAttempts, st.DueAt = store.CompReady, 0, x.now
	x.eff.Due = true
	return x.put(st)
}

// compFailed records a failed compensation attempt: it is tried again after
// a backoff, or fails for good and the rollback goes on with the next one.
func (x *Txn) compFailed(rs *runState, st *store.Step, o Outcome, retryAfter time.Duration) error {
	sp := &rs.plan.Steps[st.Index]
	st.CompError = o.Err
	if !o.Permanent && st.CompAttempts < sp.Retry.MaxAttempts {
		wait := max(x.env.Jitter(sp.Retry.Interval(st.CompAttempts)), retryAfter)
		st.Comp, st.DueAt = store.CompReady, x.now.Add(wait)
		if wait > 0 {
			x.eff.later(st.DueAt)
		} else {
			x.eff.Due = true
		}
		return x.put(*st)
	}
	st.Comp, st.CompEndedAt = store.CompFailed, x.now
	if err := x.put(*st); err != nil {
		return err
	}
	r := &rs.rec
	note := fmt.Sprintf("compensation of step %q failed: %s", st.ID, o.Err)
	if r.Error == "" {
		r.Error = note
	} else {
		r.Error += "; " + note
	}
	return x.nextComp(rs)
}

// end puts a run in its final state and queues its webhooks.
func (x *Txn) end(rs *runState, state store.RunState, reason string) error {
	r := &rs.rec
	r.State, r.Phase, r.Outcome, r.Error, r.CompletedAt = state, store.PhaseActive, "", reason, x.now
	r.SerialQueue, r.CompQueue, r.Serial = nil, nil, -1
	hooks, err := x.env.Webhooks(x.tx, r, rs.plan, x.now)
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
	return nil
}

// Stop stops a running run from outside (Cancel, or a timeout noticed by the
// engine). It returns the run as it was before, so that the caller can tell
// why nothing changed.
func (x *Txn) Stop(runID string, outcome store.RunState, reason string) (store.Run, error) {
	rs, err := x.run(runID)
	if err != nil {
		return store.Run{}, err
	}
	before := rs.rec
	return before, x.stop(rs, outcome, reason, true)
}

// Retry runs a failed or cancelled run again: its failed, skipped and
// cancelled steps start afresh with a new attempt budget, its completed steps
// keep their results. The caller checks that the run may be retried.
func (x *Txn) Retry(runID string) error {
	rs, err := x.run(runID)
	if err != nil {
		return err
	}
	r := &rs.rec
	steps, err := x.steps(runID)
	if err != nil {
		return err
	}
	completed := make([]bool, len(steps))
	for _, st := range steps {
		completed[st.Index] = st.State == store.StepCompleted
	}
	r.Generation++
	r.State, r.Phase, r.Outcome, r.Error = store.RunRunning, store.PhaseActive, "", ""
	r.CompletedAt = time.Time{}
	r.Deadline = x.now.Add(rs.plan.Timeout)
	r.Done, r.Running, r.Failed = 0, 0, 0
	r.Serial, r.SerialQueue, r.CompQueue = -1, nil, nil
	for _, st := range steps {
		if st.State == store.StepCompleted {
			r.Done++
			continue
		}
		st.State, st.Attempts, st.Error, st.DueAt = store.StepPending, 0, "", time.Time{}
		st.CompletedAt, st.Owner, st.LeaseUntil = time.Time{}, "", time.Time{}
		st.Waiting = 0
		for _, d := range rs.plan.Steps[st.Index].Deps {
			if !completed[d] {
				st.Waiting++
			}
		}
		if st.Waiting == 0 {
			x.makeReady(rs, &st)
		}
		if err := x.put(st); err != nil {
			return err
		}
	}
	return x.maybeEnd(rs)
}

// Recover takes over, at once, every claim that an earlier engine left on a
// running run of an exclusive store: the steps are made due now, and the next
// Claim ends their interrupted attempts and starts them again. Webhooks not
// yet delivered are made due now too (one that was being sent when the
// process died is sent again).
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
		steps, err := x.steps(r.ID)
		if err != nil {
			return err
		}
		for _, st := range steps {
			if st.State == store.StepRunning || st.Comp == store.CompRunning {
				st.DueAt = x.now
				x.eff.Due = true
				if err := x.put(st); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Renew extends the lease of a claim this engine holds. It returns
// store.ErrLeaseLost when the claim is no longer held.
func (x *Txn) Renew(c *Claim, lease time.Duration) error {
	st, err := x.tx.Step(c.RunID, c.Index)
	if err != nil {
		return err
	}
	if st.Token != c.Token || st.Owner != x.env.Owner() {
		return store.ErrLeaseLost
	}
	st.LeaseUntil = x.now.Add(lease)
	st.DueAt = st.LeaseUntil
	return x.put(st)
}
