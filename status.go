package dagflow

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/dagflow/dagflow/store"
)

// State is the state of a run or of a step, as Status reports it.
type State string

// The states of a run: pending (created, no step started yet), running,
// then one of completed, failed or cancelled. A step has them too; for a
// step, cancelled means it did not run, or was stopped, because its run
// was cancelled or timed out (a timed-out run ends failed).
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// The states a step has besides those of a run.
const (
	// StateSkipped: the step did not run because a dependency failed, or
	// a step failed and the run stopped before it could start (a run
	// cancelled or timed out leaves its steps cancelled instead).
	StateSkipped State = "skipped"
	// StateCompensated: the step completed and a saga undid it.
	StateCompensated State = "compensated"
	// StateCompensationFailed: the step completed and undoing it failed.
	StateCompensationFailed State = "compensationFailed"
)

// Final reports whether s is a state a run ends in.
func (s State) Final() bool {
	return s == StateCompleted || s == StateFailed || s == StateCancelled
}

// Status is the state of a run with every step's, the shape returned by
// Engine.Status, POSTed to webhooks and printed by `dagflow status`.
type Status struct {
	// ID is the run's (the workflow's) id.
	ID string `json:"id"`
	// State is pending until a step starts, then running until the run
	// ends completed, failed or cancelled.
	State State `json:"state"`
	// StartedAt is when the run was created; CompletedAt when it ended,
	// zero until then.
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// CurrentStep is the step running now (the one started last when
	// several are), or "".
	CurrentStep string `json:"currentStep,omitempty"`
	// CompletedSteps lists completed steps in the order they completed.
	CompletedSteps []string `json:"completedSteps"`
	// FailedSteps lists the steps that failed for good.
	FailedSteps []string `json:"failedSteps"`
	// CompensatedSteps lists the steps a saga undid, in the order it undid
	// them.
	CompensatedSteps []string `json:"compensatedSteps"`
	// Context is the workflow's context.
	Context json.RawMessage `json:"context"`
	// Results maps each completed step's id to its result.
	Results map[string]json.RawMessage `json:"results"`
	// Error says why the run failed or was cancelled.
	Error string `json:"error,omitempty"`
	// Phase, while the run is running, says "stopping" (waiting for
	// running attempts after a failure, timeout or cancel) or
	// "compensating"; it is empty otherwise.
	Phase string `json:"phase,omitempty"`
	// Generation counts the times the run was retried with Engine.Retry.
	Generation int `json:"generation,omitempty"`
	// Steps is every step in the order declared.
	Steps []StepStatus `json:"steps"`
}

// StepStatus is the state of one step of a run.
type StepStatus struct {
	// ID is the step's id.
	ID string `json:"id"`
	// State is where the step is: pending, running, completed, failed,
	// skipped or cancelled; in a saga that rolled back, compensated or
	// compensationFailed.
	State State `json:"state"`
	// StartedAt is when the step's first attempt (of this generation)
	// started; CompletedAt when it completed or failed for good.
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Attempts counts the attempts started since the run was created or
	// last retried.
	Attempts int `json:"attempts"`
	// Result is the step's result, once it completed.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is the last attempt's error; for a skipped or cancelled step,
	// why it did not run.
	Error string `json:"error,omitempty"`
	// NextAttemptAt is when a step waiting to be retried starts again.
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	// Compensation describes the step's compensation in a saga.
	Compensation *CompensationStatus `json:"compensation,omitempty"`
}

// CompensationStatus is the state of a step's compensation.
type CompensationStatus struct {
	// State is "pending", "running", "compensated" or "compensationFailed".
	State string `json:"state"`
	// Attempts counts the compensation's attempts.
	Attempts int `json:"attempts"`
	// StartedAt is when the compensation's first attempt started;
	// CompletedAt when it succeeded or failed for good.
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Error is the last attempt's error.
	Error string `json:"error,omitempty"`
}

// newStatus is the status of a run just created: nothing has started.
// steps is pendingSteps(w).
func newStatus(r *store.Run, w *Workflow, steps []StepStatus) *Status {
	return &Status{
		ID: r.ID, State: StatePending, StartedAt: r.StartedAt, Context: w.Context,
		CompletedSteps: []string{}, FailedSteps: []string{}, CompensatedSteps: []string{},
		Results: map[string]json.RawMessage{}, Steps: steps,
	}
}

// pendingSteps is the status of every step of w before any has started.
func pendingSteps(w *Workflow) []StepStatus {
	steps := make([]StepStatus, len(w.Steps))
	for i := range w.Steps {
		steps[i] = StepStatus{ID: w.Steps[i].ID, State: StatePending}
	}
	return steps
}

// statusOf reads a run's status through tx, without copying its steps when
// the store can show them in place.
func statusOf(tx store.Tx, r *store.Run, wfContext json.RawMessage) (*Status, error) {
	if rg, ok := tx.(store.StepRanger); ok {
		var err error
		st := buildStatusFrom(r, wfContext, r.Total, func(yield func(*store.Step) bool) {
			err = rg.RangeSteps(r.ID, yield)
		})
		return st, err
	}
	steps, err := tx.Steps(r.ID)
	if err != nil {
		return nil, err
	}
	return buildStatus(r, wfContext, steps), nil
}

// buildStatus makes a Status from a run's records.
func buildStatus(r *store.Run, wfContext json.RawMessage, steps []store.Step) *Status {
	return buildStatusFrom(r, wfContext, len(steps), func(yield func(*store.Step) bool) {
		for i := range steps {
			if !yield(&steps[i]) {
				return
			}
		}
	})
}

// buildStatusFrom makes a Status from a run's records, the steps coming from
// each (about n of them), which may hand out one variable every time.
func buildStatusFrom(r *store.Run, wfContext json.RawMessage, n int, each func(yield func(*store.Step) bool)) *Status {
	b := &statusBuilder{s: &Status{
		ID: r.ID, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt, Context: wfContext, Error: r.Error,
		Phase: string(r.Phase), Generation: r.Generation,
		CompletedSteps: []string{}, FailedSteps: []string{}, CompensatedSteps: []string{},
		Results: make(map[string]json.RawMessage, int(r.Seq)), Steps: make([]StepStatus, 0, n),
	}}
	if len(b.s.Context) == 0 {
		b.s.Context = json.RawMessage(`{}`)
	}
	b.completed = make([]seqID, 0, max(0, min(r.Seq, int64(n))))
	if r.Seq < parallelResults {
		each(b.add)
		return b.finish(r)
	}
	// Many results: another goroutine puts them in the map (a third of
	// the work, in cache misses on a large map) while the steps are read,
	// a chunk at a time.
	b.chunks = make(chan []StepStatus, 4)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m := b.s.Results
		for chunk := range b.chunks {
			for i := range chunk {
				if ss := &chunk[i]; ss.Result != nil {
					m[ss.ID] = ss.Result
				}
			}
		}
	}()
	func() {
		defer func() { close(b.chunks); <-done }() // even if each panics
		each(b.add)
		b.chunks <- b.s.Steps[b.sent:]
	}()
	return b.finish(r)
}

// parallelResults is the number of results from which a status is built
// by two goroutines (a variable for the test that compares the two ways).
var parallelResults int64 = 4096

// resultsChunk is how many steps a status builder hands to the goroutine
// that fills its Results at a time.
const resultsChunk = 1024

// seqID is a step by its completion number.
type seqID struct {
	seq int64
	id  string
}

// statusBuilder makes a Status one step record at a time. (One value
// rather than the locals of a loop over each, which would each be moved to
// the heap.)
type statusBuilder struct {
	s           *Status
	started     bool
	curID       string
	curAt       time.Time
	completed   []seqID
	compensated []seqID
	null        json.RawMessage
	// chunks, when set, takes the steps whose results another goroutine
	// puts in Results: add then leaves Results alone. sent counts the
	// steps handed over.
	chunks chan []StepStatus
	sent   int
}

// add adds one step; st may be a variable handed out again for the next
// step, so only copies of it are kept.
func (b *statusBuilder) add(st *store.Step) bool {
	s := b.s
	ss := StepStatus{ID: st.ID, StartedAt: st.StartedAt, CompletedAt: st.CompletedAt, Attempts: st.Attempts, Error: st.Error}
	if !st.StartedAt.IsZero() {
		b.started = true
	}
	switch st.State {
	case store.StepPending:
		ss.State = StatePending
	case store.StepReady:
		ss.State = StatePending
		if st.Attempts > 0 {
			ss.NextAttemptAt = st.DueAt
		}
	case store.StepRunning:
		ss.State = StateRunning
		if b.curID == "" || st.AttemptAt.After(b.curAt) {
			b.curID, b.curAt = st.ID, st.AttemptAt
		}
	case store.StepCompleted:
		ss.State = StateCompleted
		ss.Result = st.Result
		if ss.Result == nil {
			if b.null == nil {
				b.null = json.RawMessage("null")
			}
			ss.Result = b.null // one per Status, for every step that returned nothing
		}
		if b.chunks == nil {
			s.Results[st.ID] = ss.Result
		}
		b.completed = append(b.completed, seqID{st.Seq, st.ID})
	case store.StepFailed:
		ss.State = StateFailed
		s.FailedSteps = append(s.FailedSteps, st.ID)
	case store.StepSkipped:
		ss.State = StateSkipped
	case store.StepCancelled:
		ss.State = StateCancelled
	}
	if st.Comp != store.CompNone {
		cs := &CompensationStatus{State: string(st.Comp), Attempts: st.CompAttempts,
			StartedAt: st.CompStartedAt, CompletedAt: st.CompEndedAt, Error: st.CompError}
		switch st.Comp {
		case store.CompReady:
			cs.State = "pending"
		case store.CompRunning:
			cs.State = "running"
			if b.curID == "" || st.AttemptAt.After(b.curAt) {
				b.curID, b.curAt = st.ID, st.AttemptAt
			}
		case store.CompDone:
			ss.State = StateCompensated
			b.compensated = append(b.compensated, seqID{st.Seq, st.ID})
		case store.CompFailed:
			ss.State = StateCompensationFailed
		}
		ss.Compensation = cs
	}
	s.Steps = append(s.Steps, ss)
	if b.chunks != nil && len(s.Steps)-b.sent == resultsChunk {
		// The chunk is not written again (a later append that grows
		// s.Steps copies it), so the other goroutine may read it.
		b.chunks <- s.Steps[b.sent:len(s.Steps):len(s.Steps)]
		b.sent = len(s.Steps)
	}
	return true
}

// finish orders the completed and compensated steps and sets the run's
// state.
func (b *statusBuilder) finish(r *store.Run) *Status {
	s, completed, compensated := b.s, b.completed, b.compensated
	// Completions are numbered 1..r.Seq without gaps: place each by its
	// number rather than sort.
	if int64(len(completed)) == r.Seq && len(completed) > 0 {
		byseq := make([]string, len(completed))
		for _, c := range completed {
			if c.seq < 1 || c.seq > r.Seq || byseq[c.seq-1] != "" {
				byseq = nil
				break
			}
			byseq[c.seq-1] = c.id
		}
		if byseq != nil {
			s.CompletedSteps = byseq
		}
	}
	if len(s.CompletedSteps) != len(completed) {
		slices.SortFunc(completed, func(a, b seqID) int { return cmp.Compare(a.seq, b.seq) })
		for _, c := range completed {
			s.CompletedSteps = append(s.CompletedSteps, c.id)
		}
	}
	// Compensations run in reverse order of completion.
	slices.SortFunc(compensated, func(a, b seqID) int { return cmp.Compare(b.seq, a.seq) })
	for _, c := range compensated {
		s.CompensatedSteps = append(s.CompensatedSteps, c.id)
	}
	s.CurrentStep = b.curID
	switch r.State {
	case store.RunCompleted:
		s.State = StateCompleted
	case store.RunFailed:
		s.State = StateFailed
	case store.RunCancelled:
		s.State = StateCancelled
	default:
		s.State = StateRunning
		if !b.started && r.Phase == store.PhaseActive && r.Generation == 0 {
			s.State = StatePending
		}
	}
	return s
}
