package dagflow

import (
	"cmp"
	"encoding/json"
	"slices"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// State is the state of a run or of a step, as Status reports it.
type State string

// The states of a run: pending (created, no step started yet, or waiting for
// a concurrency slot), running, then one of completed, failed or cancelled.
// A step has them too.
const (
	StatePending   State = "pending"
	StateRunning   State = "running"
	StateCompleted State = "completed"
	StateFailed    State = "failed"
	StateCancelled State = "cancelled"
)

// The states a step has besides those of a run. One rule holds for both
// ways a run stops early: a step that a cancelled or timed-out run stopped,
// or never started, is cancelled; a step that never started, or whose wait
// was cut short, because another step failed is skipped.
const (
	// StateWaiting: a sleep, or a wait for an event; no worker holds it,
	// and nothing goes on until the time or the event comes. (A
	// sub-workflow step whose child run is under way, or a map step whose
	// items are, is running: work goes on in them.)
	StateWaiting State = "waiting"
	// StateSkipped: the step did not run because a dependency failed, or
	// a step failed and the run stopped before it could start.
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

// Cause says why a run stopped, for code to switch on (Status.Error is for
// people).
type Cause string

// The causes of a run's end.
const (
	// CauseFailed: a step (or map item, or child run) failed for good.
	CauseFailed Cause = "failed"
	// CauseTimeout: the workflow's timeout passed.
	CauseTimeout Cause = "timeout"
	// CauseCancelled: Cancel was called on the run.
	CauseCancelled Cause = "cancelled"
	// CauseParent: the run's parent stopped, or rolled it back.
	CauseParent Cause = "parent"
)

// Status is the state of a run with every step's, the shape returned by
// Engine.Status, POSTed to webhooks and printed by `dagflow status`.
type Status struct {
	// ID is the run's (the workflow's) id.
	ID string `json:"id"`
	// State is pending until a step starts, then running until the run
	// ends completed, failed or cancelled.
	State State `json:"state"`
	// StartedAt is when the run (or its latest retry) started;
	// CompletedAt when it ended, zero until then.
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
	// Cause says why a failed or cancelled run stopped: "failed",
	// "timeout", "cancelled" or "parent".
	Cause Cause `json:"cause,omitempty"`
	// Phase, while the run is running, says "stopping" (waiting for
	// running attempts after a failure, timeout or cancel),
	// "compensating", or "queued" (waiting for a concurrency slot); it is
	// empty otherwise.
	Phase string `json:"phase,omitempty"`
	// Generation counts the times the run was retried or rerun.
	Generation int `json:"generation,omitempty"`
	// Parent is the id of the run whose step created this one, or "".
	Parent string `json:"parent,omitempty"`
	// WaitingFor says what keeps an active run from going on that the
	// steps' states do not tell, such as a handler this engine has not
	// registered.
	WaitingFor string `json:"waitingFor,omitempty"`
	// Steps is every step in the order declared.
	Steps []StepStatus `json:"steps"`
}

// StepStatus is the state of one step of a run.
type StepStatus struct {
	// ID is the step's id.
	ID string `json:"id"`
	// State is where the step is: pending, running, waiting, completed,
	// failed, skipped or cancelled; in a saga that rolled back,
	// compensated or compensationFailed.
	State State `json:"state"`
	// StartedAt is when the step's first attempt (of this round) started;
	// CompletedAt when it completed or failed for good.
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Attempts counts the attempts started in this round, those cut short
	// by an interruption included; Interruptions counts those (see
	// WithMaxInterruptions).
	Attempts      int `json:"attempts"`
	Interruptions int `json:"interruptions"`
	// Result is the step's result, once it completed.
	Result json.RawMessage `json:"result,omitempty"`
	// Error is the last attempt's error; for a skipped or cancelled step,
	// why it did not run.
	Error string `json:"error,omitempty"`
	// NextAttemptAt is when a step waiting to be retried starts again.
	NextAttemptAt time.Time `json:"nextAttemptAt,omitzero"`
	// Kind is what the step does: "handler", "http", "workflow", "sleep"
	// or "waitForEvent".
	Kind string `json:"kind"`
	// Items counts a map step's items.
	Items *ItemCounts `json:"items,omitempty"`
	// Event is what a waiting waitForEvent step waits for.
	Event *EventWait `json:"event,omitempty"`
	// Until is when a waiting sleep step ends.
	Until time.Time `json:"until,omitzero"`
	// Run is the id of the child run of a workflow step (not a map).
	Run string `json:"run,omitempty"`
	// Compensation describes the step's compensation in a saga.
	Compensation *CompensationStatus `json:"compensation,omitempty"`
}

// ItemCounts counts the items of a map step.
type ItemCounts struct {
	Total     int `json:"total"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	Running   int `json:"running"`
}

// EventWait is the event a step waits for.
type EventWait struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// statusOf reads a run's status through tx.
func (e *Engine) statusOf(tx store.Tx, r *store.Run) (*Status, error) {
	ri, err := e.runs.load(tx, r.ID)
	if err != nil {
		return nil, err
	}
	steps, err := tx.Steps(r.ID)
	if err != nil {
		return nil, err
	}
	var mapItems map[int][]store.Step
	if ri.wf.Saga {
		// A map step's compensation is its items': read them.
		for _, st := range steps {
			if st.Items > 0 && st.Comp == store.CompNone && st.State == store.StepCompleted {
				if mapItems == nil {
					mapItems = map[int][]store.Step{}
				}
				if mapItems[st.Index], err = tx.Items(r.ID, st.Index); err != nil {
					return nil, err
				}
			}
		}
	}
	return buildStatus(r, ri, steps, mapItems), nil
}

// buildStatus makes a Status from a run's records.
func buildStatus(r *store.Run, ri *runInfo, steps []store.Step, mapItems map[int][]store.Step) *Status {
	s := &Status{
		ID: r.ID, StartedAt: r.StartedAt, CompletedAt: r.CompletedAt, Context: ri.wf.Context, Error: r.Error,
		Cause: Cause(r.Cause), Phase: string(r.Phase), Generation: r.Generation, Parent: r.Parent,
		CompletedSteps: []string{}, FailedSteps: []string{}, CompensatedSteps: []string{},
		Results: map[string]json.RawMessage{}, Steps: make([]StepStatus, 0, len(steps)),
	}
	if r.State == store.RunCompleted {
		s.Cause = ""
	}
	type seqID struct {
		seq int64
		id  string
	}
	var completed, compensated []seqID
	var curAt time.Time
	for i := range steps {
		st := &steps[i]
		sp := &ri.plan.Steps[st.Index]
		ss := StepStatus{ID: st.ID, StartedAt: st.StartedAt, CompletedAt: st.CompletedAt, Attempts: st.Attempts,
			Interruptions: st.Interruptions, Error: st.Error, Kind: kindName(sp)}
		if sp.Map != nil && (st.Items > 0 || st.State == store.StepWaiting) {
			ss.Items = &ItemCounts{Total: st.Items, Completed: st.ItemsDone, Failed: st.ItemsFailed, Running: st.ItemsRunning}
		}
		if sp.Kind == flow.Child && sp.Map == nil && !st.StartedAt.IsZero() {
			ss.Run = flow.ChildID(r.ID, st.ID, 0)
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
			if s.CurrentStep == "" || st.AttemptAt.After(curAt) {
				s.CurrentStep, curAt = st.ID, st.AttemptAt
			}
		case store.StepWaiting:
			ss.State = StateRunning
			switch sp.Kind {
			case flow.Sleep:
				ss.State = StateWaiting
				var until struct {
					T time.Time `json:"sleptUntil"`
				}
				if json.Unmarshal(st.Input, &until) == nil {
					ss.Until = until.T
				}
			case flow.Event:
				ss.State = StateWaiting
				ss.Event = &EventWait{Name: st.Event, Key: st.EventKey}
			}
			if sp.Map != nil {
				ss.State = StateRunning
			}
		case store.StepCompleted:
			ss.State = StateCompleted
			ss.Result = st.Result
			if ss.Result == nil {
				ss.Result = json.RawMessage("null")
			}
			s.Results[st.ID] = ss.Result
			completed = append(completed, seqID{st.Seq, st.ID})
		case store.StepFailed:
			ss.State = StateFailed
			s.FailedSteps = append(s.FailedSteps, st.ID)
		case store.StepSkipped:
			ss.State = StateSkipped
		case store.StepCancelled:
			ss.State = StateCancelled
		}
		comp := compOf(st, mapItems[st.Index])
		if comp != nil {
			switch comp.State {
			case "running":
				if s.CurrentStep == "" || st.AttemptAt.After(curAt) {
					s.CurrentStep, curAt = st.ID, st.AttemptAt
				}
			case string(store.CompDone):
				ss.State = StateCompensated
				compensated = append(compensated, seqID{st.Seq, st.ID})
			case string(store.CompFailed):
				ss.State = StateCompensationFailed
			}
			ss.Compensation = comp
		}
		s.Steps = append(s.Steps, ss)
	}
	slices.SortFunc(completed, func(a, b seqID) int { return cmp.Compare(a.seq, b.seq) })
	for _, c := range completed {
		s.CompletedSteps = append(s.CompletedSteps, c.id)
	}
	// Compensations run in reverse order of completion.
	slices.SortFunc(compensated, func(a, b seqID) int { return cmp.Compare(b.seq, a.seq) })
	for _, c := range compensated {
		s.CompensatedSteps = append(s.CompensatedSteps, c.id)
	}
	switch r.State {
	case store.RunPending:
		s.State = StatePending
	case store.RunRunning:
		s.State = StateRunning
	default:
		s.State = State(r.State)
	}
	return s
}

// kindName names what a step does, as StepStatus.Kind says it.
func kindName(sp *flow.StepPlan) string {
	switch {
	case sp.Kind == flow.Sleep:
		return "sleep"
	case sp.Kind == flow.Event:
		return "waitForEvent"
	case sp.Kind == flow.Child:
		return "workflow"
	case sp.Handler != "":
		return "handler"
	}
	return "http"
}
