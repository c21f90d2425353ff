package dagflow

import (
	"errors"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// Sagas. A workflow with "saga": true that fails, times out or is cancelled
// is rolled back before it ends: each unit of work that completed and has a
// compensation is compensated, one at a time, in reverse order of
// completion. A unit is a step with a compensation (a handler name for a
// handler step, a URL for an HTTP step), each completed item of a map step
// with one (whether or not the map step as a whole completed: the items that
// completed did their work), or a step that ran a sub-workflow that is itself
// a saga, which rolls back by its own compensations and ends cancelled. A
// step that never completed is not compensated. A compensation gets the
// step's input with "compensation": true and the compensated step's (or
// item's) result, and has the step's retry policy; one that fails for good
// is recorded (state compensationFailed, and a note in the run's error) and
// the rollback goes on with the next.
//
// Retry of a saga whose rollback did not finish compensates again the units
// whose compensation failed, and the run ends as before; Retry of a saga
// that rolled back every unit is refused: there is nothing left to retry.
//
// The rules live in internal/flow (saga.go); this file holds what the
// engine shows of them.

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

// compOf is the compensation status of a step, or of a map step's items
// taken together.
func compOf(st *store.Step, items []store.Step) *CompensationStatus {
	if st.Items == 0 || st.Comp != store.CompNone {
		return compStatus(st)
	}
	// A map step: compensated when every item that completed is.
	var out *CompensationStatus
	for i := range items {
		c := compStatus(&items[i])
		if c == nil {
			continue
		}
		if out == nil {
			out = &CompensationStatus{State: string(store.CompDone)}
		}
		out.Attempts += c.Attempts
		if out.StartedAt.IsZero() || c.StartedAt.Before(out.StartedAt) {
			out.StartedAt = c.StartedAt
		}
		if c.CompletedAt.After(out.CompletedAt) {
			out.CompletedAt = c.CompletedAt
		}
		switch {
		case c.State == string(store.CompFailed):
			out.State, out.Error = c.State, c.Error
		case out.State == string(store.CompFailed):
		case c.State != string(store.CompDone):
			out.State = c.State
		}
	}
	return out
}

func compStatus(st *store.Step) *CompensationStatus {
	if st.Comp == store.CompNone {
		return nil
	}
	cs := &CompensationStatus{State: string(st.Comp), Attempts: st.CompAttempts,
		StartedAt: st.CompStartedAt, CompletedAt: st.CompEndedAt, Error: st.CompError}
	switch st.Comp {
	case store.CompReady:
		cs.State = "pending"
	case store.CompRunning, store.CompWaiting:
		cs.State = "running"
	}
	return cs
}

// redriveErr turns the state machine's refusals into *StateError.
func redriveErr(op string, r *store.Run, err error) error {
	switch {
	case errors.Is(err, flow.ErrNotEnded):
		return &StateError{Op: op, RunID: r.ID, State: string(r.State)}
	case errors.Is(err, flow.ErrRolledBack):
		return &StateError{Op: op, RunID: r.ID, State: string(r.State), Reason: flow.ErrRolledBack.Error()}
	}
	var de *flow.DepsError
	if errors.As(err, &de) {
		return &StateError{Op: op, RunID: r.ID, State: string(r.State), Reason: de.Error()}
	}
	return err
}
