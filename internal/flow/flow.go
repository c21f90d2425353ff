// Package flow is the state machine of a workflow run. Its functions run
// inside a store transaction and move the records of runs, steps, items,
// attempts and webhooks from one consistent state to the next, and say in
// Effects what the engine must do once the transaction has committed. Every
// rule of a run lives here, and only rules: dependency counting and the
// serial slot (outcomes.go), claims under leases, timers and interruptions
// (claims.go), map items (items.go), sleeps, events and child runs
// (waits.go), stopping and ending (stop.go), compensation (saga.go), retry and
// rerun (redrive.go), and concurrency keys (admit.go). Because the rules run
// inside serializable transactions, the same code is correct whether one
// engine owns the store or several engine processes share it.
package flow

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dagflow/dagflow/store"
)

// Env is what the state machine needs from the engine running it.
type Env interface {
	// Plan returns the compiled plan of a run, reading its spec through tx
	// when the engine has not compiled it yet.
	Plan(tx store.Tx, runID string) (*Plan, error)
	// Context returns the context of a run.
	Context(tx store.Tx, runID string) (json.RawMessage, error)
	// Child returns the spec and plan of the child run that step index of
	// run parent starts (for item > 0, with that item's value).
	Child(tx store.Tx, parent *store.Run, index, item int, value json.RawMessage) (json.RawMessage, *Plan, error)
	// Webhooks returns the webhook records to queue for a run that has
	// just ended, as it is in tx.
	Webhooks(tx store.Tx, r *store.Run, p *Plan) ([]store.Webhook, error)
	// CanRun reports whether this engine can run the step (or its
	// compensation): whether it has the handler.
	CanRun(p *Plan, index int, comp bool) bool
	// Jitter returns a random duration in [0, d].
	Jitter(d time.Duration) time.Duration
	// Limits returns the engine's settings the rules need.
	Limits() Limits
}

// Limits are the engine's settings the rules need.
type Limits struct {
	// Owner names this engine in leases.
	Owner string
	// Lease is how long a claim lasts before another engine may take it
	// over; zero means claims last until the engine's process ends (an
	// exclusive store).
	Lease time.Duration
	// MaxInterruptions bounds the attempts of one step cut short by their
	// engine stopping.
	MaxInterruptions int
	// MaxMapItems bounds the items of a map step.
	MaxMapItems int
}

// ParkDelay is how long a step waits before it is looked at again when the
// engine that claimed it has no handler for it.
const ParkDelay = 2 * time.Second

// Claim is a step, item or compensation this engine claimed and must now run.
type Claim struct {
	RunID string
	Index int
	// Item is 0 for a step, n+1 for item n of a map step.
	Item       int
	StepID     string
	Comp       bool
	Attempt    int
	Generation int
	Token      int64
	// Seq is the run's completion counter when the claim was made.
	Seq int64
	// Deadline is when the run times out.
	Deadline  time.Time
	StartedAt time.Time
	Plan      *Plan
	// Input is a map item's value.
	Input json.RawMessage
	// Result is the compensated step's result, for compensations.
	Result json.RawMessage
	// FailedDeps names the dependencies that failed or were skipped, for a
	// step that allows failed dependencies.
	FailedDeps []string
	// Trace is what the engine's observers keep with the run.
	Trace string
}

// Effects is what a transaction did that the engine must act on after it
// commits.
type Effects struct {
	Claimed []Claim
	// Finished lists runs that reached a final state.
	Finished []Finish
	// Stopped lists runs that stopped; Cancel tells whether their running
	// attempts should be cancelled (cancel, timeout) or left to finish
	// (a step failed).
	Stopped []Stop
	// Redriven lists runs retried or rerun: what the engine knows of their
	// results is stale.
	Redriven []string
	// Due is set when a step became due now and this transaction did not
	// claim it; NextDue is the earliest future due time written.
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
	Cause  store.Cause
	Reason string
}

// Parked is a step put off for want of a handler.
type Parked struct {
	RunID   string
	Index   int
	StepID  string
	Handler string
}

func (e *Effects) later(t time.Time) {
	if e.NextDue.IsZero() || t.Before(e.NextDue) {
		e.NextDue = t
	}
}

// due notes that a record was made due at t.
func (e *Effects) due(now, t time.Time) {
	if t.After(now) {
		e.later(t)
	} else {
		e.Due = true
	}
}

// Outcome is how an attempt ended.
type Outcome struct {
	Result json.RawMessage
	// Err is the failure, "" on success.
	Err string
	// Permanent marks a failure not worth retrying.
	Permanent bool
	// Timeout marks a failure because the run's deadline passed.
	Timeout bool
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
	tx   store.Tx
	env  Env
	lim  Limits
	now  time.Time
	eff  *Effects
	runs []*runState // read in this transaction, written by Flush
	// readied are the steps and items this transaction made ready, in
	// order, with their runs (see Continue).
	readied     []store.Ref
	readiedRuns []*runState
	taken       int         // of readied, claimed by Continue
	spare       []*runState // kept by Reset for track
}

type runState struct {
	rec  store.Run
	plan *Plan
}

// Begin starts a Txn over tx; eff collects the effects.
func Begin(tx store.Tx, env Env, now time.Time, eff *Effects) *Txn {
	*eff = Effects{}
	return &Txn{tx: tx, env: env, lim: env.Limits(), now: now, eff: eff}
}

// Reset makes x a Txn over tx as Begin does, keeping the memory it used
// before: for a caller that runs one transaction after another.
func (x *Txn) Reset(tx store.Tx, env Env, now time.Time, eff *Effects) {
	clear(eff.Claimed)
	*eff = Effects{Claimed: eff.Claimed[:0]}
	spare := x.spare
	for _, rs := range x.runs {
		*rs = runState{}
		spare = append(spare, rs)
	}
	clear(x.readiedRuns)
	*x = Txn{tx: tx, env: env, lim: env.Limits(), now: now, eff: eff,
		runs: x.runs[:0], readied: x.readied[:0], readiedRuns: x.readiedRuns[:0], spare: spare}
}

// Flush writes back the runs the Txn changed.
func (x *Txn) Flush() error {
	if len(x.readied) > x.taken {
		x.eff.Due = true // made ready, and not claimed here
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
		return nil, fmt.Errorf("run %q: %w", id, err)
	}
	p, err := x.env.Plan(x.tx, id)
	if err != nil {
		return nil, err
	}
	if len(p.Steps) != r.Total {
		return nil, fmt.Errorf("run %q: its spec has %d steps but the run has %d", id, len(p.Steps), r.Total)
	}
	return x.track(r, p), nil
}

// Record returns the record of a run as this transaction has it, if it read
// or wrote the run.
func (x *Txn) Record(id string) (store.Run, bool) {
	for _, rs := range x.runs {
		if rs.rec.ID == id {
			return rs.rec, true
		}
	}
	return store.Run{}, false
}

// track makes a run part of the transaction, to be written by Flush.
func (x *Txn) track(r store.Run, p *Plan) *runState {
	var rs *runState
	if n := len(x.spare); n > 0 {
		rs, x.spare = x.spare[n-1], x.spare[:n-1]
		*rs = runState{rec: r, plan: p}
	} else {
		rs = &runState{rec: r, plan: p}
	}
	x.runs = append(x.runs, rs)
	return rs
}

func (x *Txn) step(rs *runState, index, item int) (store.Step, error) {
	st, err := x.tx.Step(rs.rec.ID, index, item)
	if err != nil {
		return st, fmt.Errorf("run %q step %d item %d: %w", rs.rec.ID, index, item, err)
	}
	return st, nil
}

func (x *Txn) put(st *store.Step) error { return x.tx.PutStep(*st) }

// Create writes a new run, its spec and its steps, and starts it: the steps
// that depend on nothing become ready, unless the run waits for a slot of its
// concurrency key. r carries the run's id, CreatedAt and, for a child, its
// parent; key is the value of the concurrency key ("" for none).
func (x *Txn) Create(r store.Run, spec json.RawMessage, p *Plan, key string) error {
	r.Total, r.Serial = len(p.Steps), -1
	r.State, r.Phase = store.RunPending, store.PhaseActive
	if key != "" {
		r.ConcurrencyKey, r.Limit = key, p.Concurrency.Limit
	}
	if err := x.tx.PutRun(r); err != nil {
		return err
	}
	if err := x.tx.PutSpec(r.ID, spec); err != nil {
		return err
	}
	rs := x.track(r, p)
	for i := range p.Steps {
		st := store.Step{RunID: r.ID, Index: i, ID: p.Steps[i].ID, State: store.StepPending, Waiting: len(p.Steps[i].Deps)}
		if err := x.put(&st); err != nil {
			return err
		}
	}
	if key != "" {
		return x.admit(rs)
	}
	return x.start(rs)
}

// start starts a run (or a retry of it): the workflow's timeout runs from
// now, and the steps whose dependencies are resolved begin.
func (x *Txn) start(rs *runState) error {
	r := &rs.rec
	r.Phase, r.StartedAt, r.Deadline = store.PhaseActive, x.now, x.now.Add(rs.plan.Timeout)
	for i := range rs.plan.Steps {
		if len(rs.plan.Steps[i].Deps) > 0 && r.Generation == 0 {
			continue // only roots can be ready in a new run
		}
		st, err := x.step(rs, i, 0)
		if err != nil {
			return err
		}
		if st.State == store.StepPending && st.Waiting == 0 {
			if err := x.makeReady(rs, &st); err != nil {
				return err
			}
		}
	}
	return x.maybeEnd(rs)
}
