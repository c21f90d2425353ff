// Package store defines the storage seam of dagflow: the Store interface that
// persists workflow runs, and the records it keeps.
//
// The engine (package dagflow and its state machine, internal/flow) holds
// every rule of a run: dependency counting, claims, retries, compensation
// order, map items, timers, events. A Store only keeps records and gives the
// engine serializable read-write transactions over them, plus a few indexes
// (runs by creation time, steps and webhooks by due time, steps by the event
// they wait for). That split keeps a store small enough for an application
// to write its own; the conformance suite in store/storetest says exactly
// what a Store must guarantee, and store/memory is its reference
// implementation.
//
// This package imports nothing of dagflow's root package nor of any database,
// in the way database/sql/driver stands apart from the drivers.
//
// # Transactions
//
// Update runs a function in a read-write transaction. Changes made through
// the Tx become visible to other transactions all at once when the function
// returns nil, and are durable when Update returns nil. When the function
// returns an error, none of its changes are kept. Concurrent Updates must be
// serializable with respect to the records they read and write. A store may
// run the function more than once (to group several callers' functions into
// one commit, or to retry after a deadlock); the engine writes its functions
// so that this is safe.
//
// # Leases
//
// A step is claimed by one engine at a time. The claim is recorded on the step
// itself (Step.Owner, Step.Token, Step.LeaseUntil) and the engine checks the
// token inside every transaction that reports the step's outcome, so an
// outcome reported under a lease that another engine has since taken over is
// refused with ErrLeaseLost. Because that check runs inside a serializable
// transaction, any Store that honours the transaction contract enforces
// fencing. Stores that only one engine can use at a time say so through
// [Exclusive]; the engine then takes over every lease left by a previous
// process at once instead of waiting for it to expire. A store shared by
// several processes must not implement Exclusive (or must report false).
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
// such as a bbolt file (locked by its process) or an in-memory store. For
// them a lease held by an earlier engine is over the moment a new engine
// opens the store, and the engine neither renews nor waits out leases. A
// store of your own that one process uses at a time should implement it, so
// that a restart resumes interrupted steps at once rather than after a lease.
type Exclusive interface {
	Store
	// Exclusive reports whether the store is used by one engine at a time.
	Exclusive() bool
}

// Watcher is implemented by stores shared by several engine processes that can
// tell an engine when another process changed something (PostgreSQL's
// LISTEN/NOTIFY, say). Engines fall back to a slow poll when a store is not a
// Watcher.
type Watcher interface {
	Store
	// Watch delivers changes until ctx is done, then closes the channel.
	// Changes may be coalesced or dropped when the receiver is slow; an
	// engine treats every change as a hint to look at the store again.
	Watch(ctx context.Context) (<-chan Change, error)
	// Notify tells the other processes watching the store about c. It is
	// called after the transaction that made the change committed.
	Notify(ctx context.Context, c Change) error
}

// Change is a hint, delivered by a Watcher, that something changed.
type Change struct {
	// Kind says what changed.
	Kind ChangeKind
	// RunID names the run of a ChangeRun.
	RunID string
}

// ChangeKind says what a Change is about.
type ChangeKind uint8

// The kinds of Change.
const (
	// ChangeDue: steps or webhooks became due.
	ChangeDue ChangeKind = iota + 1
	// ChangeRun: a run changed state (stopped, ended, retried, deleted).
	ChangeRun
	// ChangeSchedules: a schedule was added, changed or removed.
	ChangeSchedules
)

// Tx is a transaction. Its methods are called by one goroutine at a time and
// only while the function given to Update or View runs.
//
// Records are passed by value: changing a record returned by a read changes
// nothing in the store until it is written back with a Put method. Callers
// treat the slices inside records (Result, Logs, SerialQueue, ...) as
// immutable once passed to a Put method or received from a read, so a store
// need not copy them.
//
// Reads that find nothing return ErrNotFound (one record) or an empty slice
// (a list). Writes of a record that belongs to a run (PutStep, PutSpec,
// PutAttempt, PutWebhook) return ErrNotFound when the run does not exist.
type Tx interface {
	// Run returns the run with the given id, or ErrNotFound.
	Run(id string) (Run, error)
	// PutRun inserts or replaces a run.
	PutRun(r Run) error
	// Runs lists runs newest first (by CreatedAt, then ID descending), as
	// RunQuery says.
	Runs(q RunQuery) ([]Run, error)
	// DeleteRun removes a run with its spec, steps, items, attempts and
	// webhooks. It returns ErrNotFound when there is no such run.
	DeleteRun(id string) error
	// Spec returns the workflow spec stored for a run, or ErrNotFound.
	Spec(runID string) (json.RawMessage, error)
	// PutSpec stores the workflow spec of a run. The spec is kept apart
	// from the Run record, which changes often, so that writing the run
	// stays cheap however large its workflow is.
	PutSpec(runID string, spec json.RawMessage) error

	// Step returns a step (item 0) or an item of a map step (item n+1 for
	// item n), or ErrNotFound.
	Step(runID string, index, item int) (Step, error)
	// PutStep inserts or replaces a step or an item, keeping the due index
	// in step with its DueAt and the event index with its Event, EventKey
	// and State.
	PutStep(s Step) error
	// Steps returns the steps of a run (item 0 only) ordered by Index.
	Steps(runID string) ([]Step, error)
	// Items returns the items of one map step of a run ordered by Item.
	Items(runID string, index int) ([]Step, error)
	// DueSteps returns up to max steps or items whose DueAt is set and not
	// after now, earliest DueAt first; max <= 0 returns none. Ties may come
	// in any order. Shared stores skip records locked by other
	// transactions (FOR UPDATE SKIP LOCKED), so that engines claiming at
	// once get different ones. The records are not changed: the caller
	// writes each back with a new DueAt (or none) in the same transaction.
	DueSteps(now time.Time, max int) ([]Step, error)
	// NextDue returns the earliest DueAt of any step, item or webhook, or
	// the zero time when nothing is due at any time.
	NextDue() (time.Time, error)
	// Waiting returns the steps and items in state StepWaiting whose Event
	// and EventKey are the given ones, in any order.
	Waiting(event, key string) ([]Step, error)

	// PutAttempt inserts or replaces an attempt, keyed by run, step index,
	// item, Compensation, Generation and Number.
	PutAttempt(a Attempt) error
	// Attempts returns the attempts of one step (with its items) of a run,
	// or of every step when index is negative, ordered by step index, item,
	// Compensation (false first), Generation and Number.
	Attempts(runID string, index int) ([]Attempt, error)

	// PutWebhook inserts or replaces a webhook, keeping the due index in
	// step with its DueAt.
	PutWebhook(w Webhook) error
	// Webhooks returns the webhooks of a run in ID order.
	Webhooks(runID string) ([]Webhook, error)
	// DueWebhooks returns up to max webhooks whose DueAt is set and not
	// after now, earliest first, like DueSteps.
	DueWebhooks(now time.Time, max int) ([]Webhook, error)

	// PutEvent inserts or replaces an event, keyed by Name, Key and ID.
	PutEvent(ev Event) error
	// Events returns the events with the given name and key sent at or
	// after since, oldest first (by SentAt, then ID).
	Events(name, key string, since time.Time) ([]Event, error)
	// DeleteEvents removes up to max events sent before the given time and
	// returns how many it removed.
	DeleteEvents(before time.Time, max int) (int, error)

	// Schedule returns a schedule by id, or ErrNotFound.
	Schedule(id string) (Schedule, error)
	// PutSchedule inserts or replaces a schedule.
	PutSchedule(s Schedule) error
	// DeleteSchedule removes a schedule, or returns ErrNotFound.
	DeleteSchedule(id string) error
	// Schedules returns every schedule, ordered by ID.
	Schedules() ([]Schedule, error)

	// Slots returns the concurrency slots of a key, or ErrNotFound when no
	// run holds or waits for one.
	Slots(key string) (Slots, error)
	// PutSlots inserts or replaces the slots of a key; a Slots with no
	// holder and no one waiting may be removed instead.
	PutSlots(s Slots) error
}

// RunQuery selects runs for Tx.Runs.
type RunQuery struct {
	// State, when set, keeps only runs in that state.
	State RunState
	// IDContains, when set, keeps only runs whose ID contains it.
	IDContains string
	// Parent, when set, keeps only the child runs of that run.
	Parent string
	// EndedBefore, when set, keeps only runs in a final state whose
	// CompletedAt is before it.
	EndedBefore time.Time
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

// The states of a run.
const (
	// RunPending: created, and no step has started yet (or waiting for a
	// concurrency slot).
	RunPending   RunState = "pending"
	RunRunning   RunState = "running"
	RunCompleted RunState = "completed"
	RunFailed    RunState = "failed"
	RunCancelled RunState = "cancelled"
)

// Final reports whether s is a final state.
func (s RunState) Final() bool {
	return s == RunCompleted || s == RunFailed || s == RunCancelled
}

// Active reports whether s is pending or running.
func (s RunState) Active() bool { return s == RunPending || s == RunRunning }

// Phase is where an active run is in its life.
type Phase string

// The phases of an active run.
const (
	// PhaseActive: steps are started as they become ready.
	PhaseActive Phase = ""
	// PhaseQueued: the run waits for a slot of its concurrency key.
	PhaseQueued Phase = "queued"
	// PhaseStopping: the run failed, timed out or was cancelled; no step
	// starts and the engine waits for running attempts to end.
	PhaseStopping Phase = "stopping"
	// PhaseCompensating: a saga run is rolling back, one compensation at a
	// time in reverse order of completion.
	PhaseCompensating Phase = "compensating"
)

// Cause says why a run stopped: a typed reason that code switches on, where
// Run.Error is for people.
type Cause string

// The causes a stopped run records.
const (
	// CauseNone: the run has not stopped (or completed).
	CauseNone Cause = ""
	// CauseFailed: a step (or map item, or child run) failed for good.
	CauseFailed Cause = "failed"
	// CauseTimeout: the workflow's timeout passed.
	CauseTimeout Cause = "timeout"
	// CauseCancelled: Cancel was called on the run.
	CauseCancelled Cause = "cancelled"
	// CauseParent: the run's parent stopped (cancelled or timed out) or
	// rolled back its step.
	CauseParent Cause = "parent"
)

// Ref names a step or an item of a run.
type Ref struct {
	Index int
	Item  int
}

// Run is the record of one workflow run.
type Run struct {
	ID string `json:"id,omitzero"`
	// State is pending, then running, until the run ends.
	State RunState `json:"st,omitzero"`
	// Phase says what an active run is doing.
	Phase Phase `json:"ph,omitzero"`
	// Outcome is the final state a stopping or compensating run will end
	// in (failed or cancelled).
	Outcome RunState `json:"out,omitzero"`
	// Cause says why a stopping, compensating, failed or cancelled run
	// stopped.
	Cause Cause `json:"cause,omitzero"`
	// Error says why a run failed or was cancelled.
	Error string `json:"err,omitzero"`

	CreatedAt time.Time `json:"ca,omitzero"`
	// StartedAt is when the run (or its latest retry) started; zero while
	// it waits for a concurrency slot.
	StartedAt   time.Time `json:"sa,omitzero"`
	CompletedAt time.Time `json:"co,omitzero"`
	// Deadline is when the run times out; zero until it starts.
	Deadline time.Time `json:"dl,omitzero"`
	// UpdatedAt is when the record was last written.
	UpdatedAt time.Time `json:"ua,omitzero"`
	// Generation counts the times the run was retried or rerun.
	Generation int `json:"gen,omitzero"`

	// Total is the number of steps; Done counts steps in a final state;
	// Running counts steps, items and compensations claimed by an engine;
	// Failed counts steps that failed.
	Total   int `json:"tot,omitzero"`
	Done    int `json:"done,omitzero"`
	Running int `json:"run,omitzero"`
	Failed  int `json:"fail,omitzero"`
	// Seq numbers completions of steps and items: it is the Seq of the
	// latest one.
	Seq int64 `json:"seq,omitzero"`
	// Serial is the index of the step that holds the run's serial slot
	// (steps not marked parallel run one at a time), or -1.
	Serial int `json:"ser,omitzero"`
	// SerialQueue holds the indexes of ready steps waiting for the serial
	// slot, in increasing order.
	SerialQueue []int `json:"sq,omitzero"`
	// CompQueue holds the steps and items still to compensate, next first.
	CompQueue []Ref `json:"cq,omitzero"`

	// Parent is the id of the run whose step created this one, or "";
	// ParentIndex and ParentItem name that step (or item).
	Parent      string `json:"par,omitzero"`
	ParentIndex int    `json:"pi,omitzero"`
	ParentItem  int    `json:"pit,omitzero"`

	// ConcurrencyKey is the value of the workflow's concurrency key, or ""
	// for none; Limit is its limit.
	ConcurrencyKey string `json:"ck,omitzero"`
	Limit          int    `json:"cl,omitzero"`

	// Trace is what the engine's observers keep with the run (the W3C
	// traceparent of the span that created it).
	Trace string `json:"tr,omitzero"`
}

// StepState is the state of a step or item record.
type StepState string

// The states of a step or item record.
const (
	StepPending   StepState = "pending"   // waiting for dependencies or for the serial slot
	StepReady     StepState = "ready"     // may start at DueAt (a retry waits for its backoff here)
	StepRunning   StepState = "running"   // claimed by an engine
	StepWaiting   StepState = "waiting"   // a timer, an event, a child run or map items: no engine holds it
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
	CompWaiting CompState = "waiting" // a child run rolls back
	CompDone    CompState = "compensated"
	CompFailed  CompState = "compensationFailed"
)

// Step is the record of one step of a run, or of one item of a map step.
type Step struct {
	RunID string `json:"r,omitzero"`
	// Index is the step's position in the workflow's steps.
	Index int `json:"i,omitzero"`
	// Item is 0 for the step itself, n+1 for item n of a map step.
	Item  int       `json:"it,omitzero"`
	ID    string    `json:"id,omitzero"`
	State StepState `json:"st,omitzero"`
	// Waiting counts dependencies not yet resolved.
	Waiting int `json:"w,omitzero"`
	// Attempts counts the attempts started in this generation, those cut
	// short by an interruption included; Interruptions counts those.
	Attempts      int `json:"a,omitzero"`
	Interruptions int `json:"int,omitzero"`
	// DueAt, when set, is when the record is due to be looked at: a ready
	// step or compensation to claim, a timer to fire, a lease to take over.
	// The store indexes it for DueSteps.
	DueAt       time.Time `json:"due,omitzero"`
	StartedAt   time.Time `json:"sa,omitzero"`
	CompletedAt time.Time `json:"co,omitzero"`
	// AttemptAt is when the attempt under way (of the step or of its
	// compensation) started.
	AttemptAt time.Time `json:"aa,omitzero"`
	// Input is a map item's value.
	Input json.RawMessage `json:"in,omitzero"`
	// Result is the JSON result of a completed step or item.
	Result json.RawMessage `json:"res,omitzero"`
	// Error is the last error, or why the step was skipped or cancelled.
	Error string `json:"err,omitzero"`
	// Seq numbers completed steps and items in order of completion within
	// the run.
	Seq int64 `json:"seq,omitzero"`

	// Owner names the engine holding the record's lease (or, once
	// completed, the engine that completed it); Token fences it;
	// LeaseUntil is when the lease runs out (zero: never, in exclusive
	// stores).
	Owner      string    `json:"own,omitzero"`
	Token      int64     `json:"tok,omitzero"`
	LeaseUntil time.Time `json:"lu,omitzero"`

	// Comp is the state of the step's compensation.
	Comp              CompState `json:"c,omitzero"`
	CompAttempts      int       `json:"ca,omitzero"`
	CompInterruptions int       `json:"ci,omitzero"`
	CompError         string    `json:"cerr,omitzero"`
	CompStartedAt     time.Time `json:"csa,omitzero"`
	CompEndedAt       time.Time `json:"cea,omitzero"`

	// Event and EventKey are what a waitForEvent step waits for; the store
	// indexes them while State is StepWaiting.
	Event    string `json:"ev,omitzero"`
	EventKey string `json:"ek,omitzero"`

	// The items of a map step (item 0 only): how many there are, how many
	// completed, failed and are under way, and the next one to start.
	Items        int `json:"n,omitzero"`
	ItemsDone    int `json:"nd,omitzero"`
	ItemsFailed  int `json:"nf,omitzero"`
	ItemsRunning int `json:"nr,omitzero"`
	ItemsNext    int `json:"nn,omitzero"`
}

// Attempt is the record of one attempt of a step, an item, or a compensation.
type Attempt struct {
	RunID        string    `json:"r,omitzero"`
	Index        int       `json:"i,omitzero"`
	Item         int       `json:"it,omitzero"`
	StepID       string    `json:"s,omitzero"`
	Compensation bool      `json:"c,omitzero"`
	Generation   int       `json:"g,omitzero"`
	Number       int       `json:"n,omitzero"`
	Owner        string    `json:"own,omitzero"`
	StartedAt    time.Time `json:"sa,omitzero"`
	EndedAt      time.Time `json:"ea,omitzero"`
	// Error is why the attempt failed; empty when it succeeded.
	Error string `json:"err,omitzero"`
	// Interrupted is set when the attempt ended because its engine
	// stopped or lost its lease.
	Interrupted bool `json:"intr,omitzero"`
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

// Event is something that happened outside the runs, sent with
// Engine.SendEvent, kept so that a step that starts waiting for it later
// still receives it.
type Event struct {
	Name    string          `json:"name,omitzero"`
	Key     string          `json:"key,omitzero"`
	ID      string          `json:"id,omitzero"`
	Payload json.RawMessage `json:"payload,omitzero"`
	SentAt  time.Time       `json:"sentAt,omitzero"`
}

// Schedule creates a run of its workflow at each tick of a cron expression.
type Schedule struct {
	ID       string `json:"id,omitzero"`
	Cron     string `json:"cron,omitzero"`
	Timezone string `json:"tz,omitzero"`
	// Workflow is the workflow JSON each run is made from (its id is the
	// schedule's and the tick's).
	Workflow json.RawMessage `json:"wf,omitzero"`
	// NextAt is the next tick; LastAt the latest tick a run was created
	// for.
	NextAt    time.Time `json:"next,omitzero"`
	LastAt    time.Time `json:"last,omitzero"`
	CreatedAt time.Time `json:"ca,omitzero"`
}

// Slots are the concurrency slots of one key: the runs holding one, and the
// runs waiting for one in the order they were created.
type Slots struct {
	Key     string   `json:"key,omitzero"`
	Holders []string `json:"h,omitzero"`
	Queue   []string `json:"q,omitzero"`
}
