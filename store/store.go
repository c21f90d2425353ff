// Package store defines the storage seam of dagflow: the Store interface that
// persists workflow runs, and the records it keeps.
//
// The engine (package dagflow) holds every rule of a run: dependency counting,
// claims, retries, compensation order. A Store only keeps records and gives the
// engine serializable read-write transactions over them, plus two indexes
// (runs by creation time, and steps and webhooks by due time). That split keeps a
// store small enough for an application to write its own; the conformance suite
// in store/storetest says exactly what a Store must guarantee, and store/memory
// is its reference implementation.
//
// This package imports nothing of dagflow's root package nor of any database, in
// the way database/sql/driver stands apart from the drivers.
//
// # Transactions
//
// Update runs a function in a read-write transaction. Changes made through the
// Tx become visible to other transactions all at once when the function returns
// nil, and are durable when Update returns nil. When the function returns an
// error, none of its changes are kept. Concurrent Updates must be serializable
// with respect to the records they read and write. A store may run the function
// more than once (to group several callers' functions into one commit, or to
// retry after a deadlock); the engine writes its functions so that this is safe.
//
// # Leases
//
// A step is claimed by one engine at a time. The claim is recorded on the step
// itself (Step.Owner, Step.Token, Step.LeaseUntil) and the engine checks the
// token inside every transaction that reports the step's outcome, so an outcome
// reported under a lease that another engine has since taken over is refused
// with ErrLeaseLost. Because that check runs inside a serializable transaction,
// any Store that honours the transaction contract enforces fencing. Stores that
// only one engine can use at a time report it through [Exclusive]; the engine
// then takes over every lease left by a previous process at once instead of
// waiting for it to expire.
package store

import (
	"context"
	"encoding/json"
	"time"
)

// Store persists workflow runs. Implementations must be safe for concurrent
// use by multiple goroutines.
type Store interface {
	// Update runs fn in a read-write transaction and commits it when fn
	// returns nil. It returns fn's error unchanged (and keeps none of fn's
	// changes) when fn fails, an error wrapping the cause when the commit
	// fails, ctx.Err() when ctx is done before fn runs, and ErrClosed after
	// Close. Update blocks until the changes are durable. fn may be called
	// more than once; it must not keep the Tx after it returns.
	Update(ctx context.Context, fn func(Tx) error) error

	// View runs fn in a read-only transaction that sees one consistent
	// state. Write methods of its Tx return ErrReadOnly.
	View(ctx context.Context, fn func(Tx) error) error

	// Close releases the store's resources. Calls after Close return
	// ErrClosed. Close waits for transactions under way to finish.
	Close() error
}

// Exclusive is implemented by stores that only one engine can use at a time,
// such as a bbolt file (locked by its process) or an in-memory store. For them
// a lease held by an earlier engine is over the moment a new engine opens the
// store, and the engine neither renews nor waits out leases.
type Exclusive interface {
	Store
	// Exclusive reports whether the store is used by one engine at a time.
	Exclusive() bool
}

// Serial is implemented by stores whose Update holds the whole store while fn
// runs, one transaction after another in the callers' goroutines, so that
// callers who wait their turn gain nothing by it: an in-memory store. An engine
// on a serial store lets only a few Create calls wait for the store at once,
// so that the transactions that record steps' outcomes and start the next
// steps do not queue behind a burst of new runs. A store that groups the
// transactions of concurrent callers into one commit, as the bbolt store
// does, gains from many callers and is not serial.
type Serial interface {
	Store
	// Serial reports whether Update runs one transaction at a time, each in
	// its caller's goroutine, without grouping them.
	Serial() bool
}

// Watcher is implemented by stores shared by several engine processes that can
// tell an engine when another process changed something (PostgreSQL's
// LISTEN/NOTIFY, say). Engines fall back to a slow poll when a store is not a
// Watcher.
type Watcher interface {
	Store
	// Watch delivers events until ctx is done, then closes the channel.
	// Events may be coalesced or dropped when the receiver is slow; an engine
	// treats every event as a hint to look at the store again.
	Watch(ctx context.Context) (<-chan Event, error)
	// Notify tells the other processes watching the store about ev. It is
	// called after the transaction that caused the event committed.
	Notify(ctx context.Context, ev Event) error
}

// Event is a hint, delivered by a Watcher, that something changed.
type Event struct {
	// Kind is EventDue when steps or webhooks became due, EventRun when a
	// run changed state (stopped, finished, retried).
	Kind EventKind
	// RunID names the run of an EventRun event.
	RunID string
}

// EventKind says what an Event is about.
type EventKind uint8

// The kinds of Event.
const (
	EventDue EventKind = iota + 1
	EventRun
)

// Tx is a transaction. Its methods are called by one goroutine at a time and
// only while the function given to Update or View runs.
//
// Records are passed by value: changing a record returned by a read changes
// nothing in the store until it is written back with a Put method. A store
// need not copy the slices inside records (Result, Logs, SerialQueue, ...):
// callers treat a slice as immutable once they have passed it to a Put method
// or received it from a read.
type Tx interface {
	// Run returns the run with the given id, or ErrNotFound.
	Run(id string) (Run, error)
	// PutRun inserts or replaces a run.
	PutRun(r Run) error
	// Runs lists runs newest first (by CreatedAt, then ID descending), as
	// RunQuery says. It returns an empty slice, not ErrNotFound, when no
	// run matches.
	Runs(q RunQuery) ([]Run, error)
	// DeleteRun removes a run with its spec, steps, attempts and webhooks.
	// It returns ErrNotFound when there is no such run.
	DeleteRun(id string) error
	// Spec returns the workflow spec stored for a run, or ErrNotFound.
	Spec(runID string) (json.RawMessage, error)
	// PutSpec stores the workflow spec of a run. The spec is kept apart
	// from the Run record, which changes on every step, so that writing
	// the run stays cheap however large its workflow is.
	PutSpec(runID string, spec json.RawMessage) error

	// Step returns step number index (its position in the workflow's steps)
	// of a run, or ErrNotFound.
	Step(runID string, index int) (Step, error)
	// PutStep inserts or replaces a step, keeping the due index in step with
	// its DueAt. It returns ErrNotFound when the step's run does not exist;
	// PutAttempt, PutSpec and PutWebhook do the same.
	PutStep(s Step) error
	// Steps returns every step of a run ordered by Index; an empty slice
	// when the run has none.
	Steps(runID string) ([]Step, error)
	// CompletedAfter returns the steps of a run whose Seq is greater than
	// seq, ordered by Seq. Seq is set when a step completes, so these are
	// the steps completed after the one numbered seq.
	CompletedAfter(runID string, seq int64) ([]Step, error)
	// DueSteps returns up to max steps whose DueAt is set and not after
	// now, earliest DueAt first. Ties may come in any order. Shared stores
	// skip steps locked by other transactions (FOR UPDATE SKIP LOCKED), so
	// that engines claiming at once get different steps. The steps are not
	// changed: the caller writes each back with a new DueAt (or none) in
	// the same transaction. The caller may use the slice only until the
	// transaction ends: a store may reuse it.
	DueSteps(now time.Time, max int) ([]Step, error)
	// NextDue returns the earliest DueAt of any step or webhook, or the
	// zero time when nothing is due at any time.
	NextDue() (time.Time, error)

	// PutAttempt inserts or replaces an attempt, keyed by run, step index,
	// Compensation, Generation and Number.
	PutAttempt(a Attempt) error
	// Attempts returns the attempts of one step of a run, or of every step
	// when index is negative, ordered by step index, Compensation (false
	// first), Generation and Number.
	Attempts(runID string, index int) ([]Attempt, error)

	// PutWebhook inserts or replaces a webhook, keeping the due index in
	// step with its DueAt.
	PutWebhook(w Webhook) error
	// Webhooks returns the webhooks of a run in ID order.
	Webhooks(runID string) ([]Webhook, error)
	// DueWebhooks returns up to max webhooks whose DueAt is set and not
	// after now, earliest first, like DueSteps.
	DueWebhooks(now time.Time, max int) ([]Webhook, error)
}

// StepRanger is implemented by a Tx that can show a run's steps one at a
// time, without a slice of them all (the memory store shows its own, bolt
// decodes each into one variable). The engine uses it, when a store's Tx has
// it, to build a run's status cheaply. storetest checks that it shows what
// Steps shows.
type StepRanger interface {
	// RangeSteps calls fn with each step of a run in index order until fn
	// returns false. fn must neither keep nor change the step it is given.
	RangeSteps(runID string, fn func(*Step) bool) error
}

// RunQuery selects runs for Tx.Runs.
type RunQuery struct {
	// State, when set, keeps only runs in that state.
	State RunState
	// IDContains, when set, keeps only runs whose ID contains it.
	IDContains string
	// Before, when set, keeps only runs that come after it in the listing
	// order (CreatedAt, then ID, descending): pass the last run of a page
	// to get the next page.
	Before *Cursor
	// Limit caps the number of runs returned; 0 means no limit.
	Limit int
}

// Cursor marks a position in the listing of runs.
type Cursor struct {
	CreatedAt time.Time
	ID        string
}

// RunState is the state of a run.
type RunState string

// The states of a run. A run is running from its creation until it ends in
// one of the three final states.
const (
	RunRunning   RunState = "running"
	RunCompleted RunState = "completed"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
)

// Final reports whether s is a final state.
func (s RunState) Final() bool {
	return s == RunCompleted || s == RunFailed || s == RunCancelled
}

// Phase is where a running run is in its life.
type Phase string

// The phases of a running run.
const (
	// PhaseActive: steps are started as they become ready.
	PhaseActive Phase = ""
	// PhaseStopping: the run failed, timed out or was cancelled; no step
	// starts and the engine waits for running attempts to end.
	PhaseStopping Phase = "stopping"
	// PhaseCompensating: a saga run is rolling back, one compensation at a
	// time in reverse order of completion.
	PhaseCompensating Phase = "compensating"
)

// Run is the record of one workflow run.
type Run struct {
	ID string `json:"id,omitzero"`
	// State is running until the run ends.
	State RunState `json:"st,omitzero"`
	// Phase says what a running run is doing.
	Phase Phase `json:"ph,omitzero"`
	// Outcome is the final state a stopping or compensating run will end
	// in (failed or cancelled).
	Outcome RunState `json:"out,omitzero"`
	// Error says why a run failed or was cancelled.
	Error string `json:"err,omitzero"`

	CreatedAt   time.Time `json:"ca,omitzero"`
	StartedAt   time.Time `json:"sa,omitzero"`
	CompletedAt time.Time `json:"co,omitzero"`
	// Deadline is when the run times out.
	Deadline time.Time `json:"dl,omitzero"`
	// UpdatedAt is when the record was last written.
	UpdatedAt time.Time `json:"ua,omitzero"`
	// Generation counts the times the run was retried.
	Generation int `json:"gen,omitzero"`

	// Total is the number of steps; Done counts steps in a final state;
	// Running counts steps (or compensations) claimed by an engine; Failed
	// counts steps that failed.
	Total   int `json:"tot,omitzero"`
	Done    int `json:"done,omitzero"`
	Running int `json:"run,omitzero"`
	Failed  int `json:"fail,omitzero"`
	// Seq numbers completions: it is the Seq of the latest completed step.
	Seq int64 `json:"seq,omitzero"`
	// Serial is the index of the step that holds the run's serial slot
	// (steps not marked parallel run one at a time), or -1.
	Serial int `json:"ser,omitzero"`
	// SerialQueue holds the indexes of ready steps waiting for the serial
	// slot, in increasing order.
	SerialQueue []int `json:"sq,omitzero"`
	// CompQueue holds the indexes of steps still to compensate, next first.
	CompQueue []int `json:"cq,omitzero"`
}

// StepState is the state of a step record.
type StepState string

// The states of a step record.
const (
	StepPending   StepState = "pending"   // waiting for dependencies or for the serial slot
	StepReady     StepState = "ready"     // may start at DueAt (a retry waits for its backoff here)
	StepRunning   StepState = "running"   // claimed by an engine
	StepCompleted StepState = "completed" // finished with a result
	StepFailed    StepState = "failed"    // failed for good
	StepSkipped   StepState = "skipped"   // not run: a dependency failed, or the run failed first
	StepCancelled StepState = "cancelled" // not run or stopped: the run was cancelled or timed out
)

// Final reports whether s is a final state.
func (s StepState) Final() bool {
	switch s {
	case StepCompleted, StepFailed, StepSkipped, StepCancelled:
		return true
	}
	return false
}

// CompState is the state of a step's compensation.
type CompState string

// The states of a compensation. The zero value means none was scheduled.
const (
	CompNone    CompState = ""
	CompReady   CompState = "ready"
	CompRunning CompState = "running"
	CompDone    CompState = "compensated"
	CompFailed  CompState = "compensationFailed"
)

// Step is the record of one step of a run.
type Step struct {
	RunID string `json:"r,omitzero"`
	// Index is the step's position in the workflow's steps.
	Index int       `json:"i,omitzero"`
	ID    string    `json:"id,omitzero"`
	State StepState `json:"st,omitzero"`
	// Waiting counts dependencies not yet resolved.
	Waiting int `json:"w,omitzero"`
	// Attempts counts the attempts started in this generation.
	Attempts int `json:"a,omitzero"`
	// DueAt, when set, is when the step (or its compensation, or the
	// takeover of an expired lease) is due to be claimed. The store indexes
	// it for DueSteps.
	DueAt       time.Time `json:"due,omitzero"`
	StartedAt   time.Time `json:"sa,omitzero"`
	CompletedAt time.Time `json:"co,omitzero"`
	// AttemptAt is when the attempt under way (of the step or of its
	// compensation) started. The attempt's record is written when it ends;
	// until then the step's Attempts (or CompAttempts) and AttemptAt are
	// its record.
	AttemptAt time.Time `json:"aa,omitzero"`
	// Result is the JSON result of a completed step.
	Result json.RawMessage `json:"res,omitzero"`
	// Error is the last error, or why the step was skipped or cancelled.
	Error string `json:"err,omitzero"`
	// Seq numbers completed steps in order of completion within the run.
	Seq int64 `json:"seq,omitzero"`

	// Owner names the engine holding the step's lease, Token fences it,
	// LeaseUntil is when the lease runs out (zero: never, in exclusive
	// stores).
	Owner      string    `json:"own,omitzero"`
	Token      int64     `json:"tok,omitzero"`
	LeaseUntil time.Time `json:"lu,omitzero"`

	// Comp is the state of the step's compensation.
	Comp          CompState `json:"c,omitzero"`
	CompAttempts  int       `json:"ca,omitzero"`
	CompError     string    `json:"cerr,omitzero"`
	CompStartedAt time.Time `json:"csa,omitzero"`
	CompEndedAt   time.Time `json:"cea,omitzero"`
}

// Attempt is the record of one attempt of a step or of its compensation.
type Attempt struct {
	RunID        string    `json:"r,omitzero"`
	Index        int       `json:"i,omitzero"`
	StepID       string    `json:"s,omitzero"`
	Compensation bool      `json:"c,omitzero"`
	Generation   int       `json:"g,omitzero"`
	Number       int       `json:"n,omitzero"`
	Owner        string    `json:"own,omitzero"`
	StartedAt    time.Time `json:"sa,omitzero"`
	EndedAt      time.Time `json:"ea,omitzero"`
	// Error is why the attempt failed; empty when it succeeded or is under
	// way.
	Error string `json:"err,omitzero"`
	// StatusCode and Duration describe the HTTP reply of an HTTP step.
	StatusCode int           `json:"code,omitzero"`
	Duration   time.Duration `json:"dur,omitzero"`
	// Logs are the lines the handler wrote through its logger, cut after a
	// limit (LogsCut says so).
	Logs    []LogLine `json:"logs,omitzero"`
	LogsCut bool      `json:"cut,omitzero"`
}

// LogLine is one line a step's handler logged.
type LogLine struct {
	Time    time.Time `json:"t,omitzero"`
	Level   string    `json:"l,omitzero"`
	Message string    `json:"m,omitzero"`
	// Attrs holds the line's attributes as key=value text.
	Attrs string `json:"a,omitzero"`
}

// Webhook is an onComplete or onError call that is recorded before it is
// sent, so that it survives a crash.
type Webhook struct {
	// ID is unique per run: "<event>/<generation>".
	ID    string `json:"id,omitzero"`
	RunID string `json:"r,omitzero"`
	URL   string `json:"url,omitzero"`
	// Event is "complete" or "error".
	Event string          `json:"ev,omitzero"`
	Body  json.RawMessage `json:"body,omitzero"`
	// Attempts counts delivery attempts.
	Attempts int `json:"a,omitzero"`
	// DueAt, when set, is when the next delivery is due.
	DueAt       time.Time `json:"due,omitzero"`
	CreatedAt   time.Time `json:"ca,omitzero"`
	DeliveredAt time.Time `json:"da,omitzero"`
	LastError   string    `json:"err,omitzero"`
}
