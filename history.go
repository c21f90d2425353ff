package dagflow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dagflow/dagflow/internal/flow"

	"github.com/dagflow/dagflow/store"
)

// Attempt is one attempt of a step or of its compensation, with the lines
// its handler logged: the history the console draws as a timeline.
type Attempt struct {
	// StepID names the step.
	StepID string `json:"stepId"`
	// Item is the index of the map item the attempt ran, or -1.
	Item int `json:"item"`
	// Compensation is true for an attempt of the step's compensation.
	Compensation bool `json:"compensation,omitempty"`
	// Generation is the run's Generation when the attempt ran: 0 before
	// the first Engine.Retry, 1 after it, and so on.
	Generation int `json:"generation,omitempty"`
	// Number is the attempt's number within its generation, from 1: the
	// Input.Attempt its handler got.
	Number int `json:"number"`
	// Engine names the engine that ran it (host, process id and a random
	// part), when the store keeps it.
	Engine string `json:"engine,omitempty"`
	// StartedAt is when the engine claimed the attempt; EndedAt when its
	// outcome was recorded, zero while it is under way.
	StartedAt time.Time `json:"startedAt"`
	EndedAt   time.Time `json:"endedAt,omitzero"`
	// Error is why the attempt failed; "" when it succeeded or is under
	// way.
	Error string `json:"error,omitempty"`
	// Interrupted is set when the attempt was cut short because its
	// engine stopped or lost its lease: it did not count against the
	// step's maxAttempts.
	Interrupted bool `json:"interrupted,omitempty"`
	// StatusCode and Duration describe the reply of an HTTP step.
	StatusCode int           `json:"statusCode,omitempty"`
	Duration   time.Duration `json:"duration,omitempty"`
	// Logs are the lines the handler logged through Input.Logger, and the
	// stack of a handler that panicked.
	Logs []LogLine `json:"logs,omitempty"`
	// LogsCut says lines were dropped past the engine's limit.
	LogsCut bool `json:"logsCut,omitempty"`
}

// LogLine is a line a handler logged through Input.Logger.
type LogLine struct {
	// Time is when the line was logged.
	Time time.Time `json:"time"`
	// Level is slog's name of its level: "DEBUG", "INFO", "WARN", "ERROR".
	Level string `json:"level"`
	// Message is the log message.
	Message string `json:"message"`
	// Attrs holds the line's attributes as space-separated key=value text.
	Attrs string `json:"attrs,omitempty"`
}

// Webhook is an onComplete or onError call of a run and how its delivery
// went.
type Webhook struct {
	// Event is "complete" (onComplete) or "error" (onError).
	Event string `json:"event"`
	// URL is where it is POSTed, without any password it holds.
	URL string `json:"url"`
	// Attempts counts the deliveries tried, the one under way included.
	Attempts int `json:"attempts"`
	// CreatedAt is when the run ended and the webhook was recorded.
	CreatedAt time.Time `json:"createdAt"`
	// DeliveredAt is when a delivery succeeded; zero until one has.
	DeliveredAt time.Time `json:"deliveredAt,omitzero"`
	// NextAt is when the next delivery is due (while one is under way,
	// when it is given up for lost); zero once delivered or given up on.
	NextAt time.Time `json:"nextAt,omitzero"`
	// LastError is why the last delivery failed; "" while one is under
	// way or after one succeeded.
	LastError string `json:"lastError,omitempty"`
}

// Attempts returns every attempt of every step of a run (map items' and
// compensations' included), ordered by step (as declared), then item, with
// compensations after the step's own attempts, then by round and number. It
// returns an error matching ErrNotFound for an unknown run.
func (e *Engine) Attempts(ctx context.Context, runID string) ([]Attempt, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var out []Attempt
	err := e.store.View(ctx, func(tx store.Tx) error {
		if _, err := tx.Run(runID); err != nil {
			return err
		}
		atts, err := tx.Attempts(runID, -1)
		if err != nil {
			return err
		}
		// An attempt under way has no record yet, and a first attempt of a
		// step that completed plainly has none at all: their steps (and
		// items) tell of them.
		steps, err := tx.Steps(runID)
		if err != nil {
			return err
		}
		recorded := make(map[[2]int]bool, len(atts))
		for _, a := range atts {
			if !a.Compensation {
				recorded[[2]int{a.Index, a.Item}] = true
			}
		}
		var records []store.Step
		for _, st := range steps {
			records = append(records, st)
			if st.Items > 0 {
				items, err := tx.Items(runID, st.Index)
				if err != nil {
					return err
				}
				records = append(records, items...)
			}
		}
		for _, st := range records {
			if st.State == store.StepCompleted && !recorded[[2]int{st.Index, st.Item}] && !st.StartedAt.IsZero() && st.Attempts > 0 {
				atts = append(atts, store.Attempt{RunID: runID, Index: st.Index, Item: st.Item, StepID: st.ID, Number: 1, Owner: st.Owner,
					StartedAt: st.StartedAt, EndedAt: st.CompletedAt})
			}
			if st.AttemptAt.IsZero() {
				continue
			}
			a := store.Attempt{RunID: runID, Index: st.Index, Item: st.Item, StepID: st.ID, Number: st.Attempts, Owner: st.Owner, StartedAt: st.AttemptAt}
			if st.Comp == store.CompRunning {
				a.Compensation, a.Number = true, st.CompAttempts
			}
			atts = append(atts, a)
		}
		slices.SortStableFunc(atts, func(a, b store.Attempt) int {
			return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Item, b.Item), cmpBool(a.Compensation, b.Compensation),
				cmp.Compare(a.Generation, b.Generation), cmp.Compare(a.Number, b.Number))
		})
		out = make([]Attempt, 0, len(atts))
		for _, a := range atts {
			x := Attempt{StepID: a.StepID, Item: a.Item - 1, Compensation: a.Compensation, Generation: a.Generation, Number: a.Number,
				Engine: a.Owner, StartedAt: a.StartedAt, EndedAt: a.EndedAt, Error: a.Error, Interrupted: a.Interrupted,
				StatusCode: a.StatusCode, Duration: a.Duration, LogsCut: a.LogsCut}
			for _, l := range a.Logs {
				x.Logs = append(x.Logs, LogLine(l))
			}
			out = append(out, x)
		}
		return nil
	})
	if err != nil {
		return nil, runErr("Attempts", runID, err)
	}
	return out, nil
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// Item is one item of a map step, as Engine.Items shows it.
type Item struct {
	// Index is the item's place in the list, from 0.
	Index int `json:"index"`
	// Value is the item.
	Value json.RawMessage `json:"value"`
	// State is pending, running, completed, failed, skipped or cancelled
	// (or compensated, compensationFailed).
	State State `json:"state"`
	// Attempts counts its attempts in this round; Interruptions those cut
	// short by their engine stopping.
	Attempts      int `json:"attempts"`
	Interruptions int `json:"interruptions"`
	// StartedAt and CompletedAt are when it started and ended.
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Result is its result, once it completed; Error why it failed.
	Result json.RawMessage `json:"result,omitempty"`
	Error  string          `json:"error,omitempty"`
	// Run is the id of its child run, for a map of sub-workflows.
	Run string `json:"run,omitempty"`
}

// Items returns the items of a map step of a run, in list order. It returns
// an error matching ErrNotFound for an unknown run or step, and an empty
// list for a step that is not a map or has not started.
func (e *Engine) Items(ctx context.Context, runID, stepID string) ([]Item, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var out []Item
	err := e.store.View(ctx, func(tx store.Tx) error {
		if _, err := tx.Run(runID); err != nil {
			return err
		}
		ri, err := e.runs.load(tx, runID)
		if err != nil {
			return err
		}
		i := ri.index(stepID)
		if i < 0 {
			return fmt.Errorf("run %q has no step %q: %w", runID, stepID, ErrNotFound)
		}
		st, err := tx.Step(runID, i, 0)
		if err != nil {
			return err
		}
		items, err := tx.Items(runID, i)
		if err != nil {
			return err
		}
		child := ri.plan.Steps[i].Kind == flow.Child
		out = make([]Item, 0, len(items))
		for _, it := range items {
			if it.Item > st.Items {
				break
			}
			x := Item{Index: it.Item - 1, Value: it.Input, Attempts: it.Attempts, Interruptions: it.Interruptions,
				StartedAt: it.StartedAt, CompletedAt: it.CompletedAt, Error: it.Error}
			switch it.State {
			case store.StepReady:
				x.State = StatePending
			case store.StepWaiting:
				x.State = StateRunning
			case store.StepCompleted:
				x.State, x.Result = StateCompleted, it.Result
			default:
				x.State = State(it.State)
			}
			switch it.Comp {
			case store.CompDone:
				x.State = StateCompensated
			case store.CompFailed:
				x.State = StateCompensationFailed
			}
			if child && !it.StartedAt.IsZero() {
				x.Run = flow.ChildID(runID, st.ID, it.Item)
			}
			out = append(out, x)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) && strings.Contains(err.Error(), "has no step") {
			return nil, fmt.Errorf("dagflow: %w", err)
		}
		return nil, runErr("Items", runID, err)
	}
	return out, nil
}

// Webhooks returns the webhooks of a run (at most one per end of the run)
// and how their delivery went.
func (e *Engine) Webhooks(ctx context.Context, runID string) ([]Webhook, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var out []Webhook
	err := e.store.View(ctx, func(tx store.Tx) error {
		if _, err := tx.Run(runID); err != nil {
			return err
		}
		hooks, err := tx.Webhooks(runID)
		if err != nil {
			return err
		}
		for _, w := range hooks {
			out = append(out, Webhook{Event: w.Event, URL: redactURL(w.URL), Attempts: w.Attempts, CreatedAt: w.CreatedAt,
				DeliveredAt: w.DeliveredAt, NextAt: w.DueAt, LastError: w.LastError})
		}
		return nil
	})
	if err != nil {
		return nil, runErr("Webhooks", runID, err)
	}
	return out, nil
}
