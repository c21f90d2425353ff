package dagflow

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/dagflow/dagflow/store"
)

// Attempt is one attempt of a step or of its compensation, with the lines
// its handler logged: the history the console draws as a timeline.
type Attempt struct {
	// StepID names the step.
	StepID string `json:"stepId"`
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

// cmpAttempt orders attempts as Tx.Attempts does.
func cmpAttempt(a, b store.Attempt) int {
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c
	}
	if a.Compensation != b.Compensation {
		if !a.Compensation {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.Generation, b.Generation); c != 0 {
		return c
	}
	return cmp.Compare(a.Number, b.Number)
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

// Attempts returns every attempt of every step of a run, ordered by step (as
// declared), compensations after the step's own attempts, then by number.
// It returns an error matching ErrNotFound for an unknown run.
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
		// An attempt under way has no record yet, and a first attempt that
		// completed plainly has none at all: their steps tell of them.
		steps, err := tx.Steps(runID)
		if err != nil {
			return err
		}
		recorded := make(map[int]bool, len(atts))
		for _, a := range atts {
			if !a.Compensation {
				recorded[a.Index] = true
			}
		}
		for _, st := range steps {
			if st.State == store.StepCompleted && !recorded[st.Index] && !st.StartedAt.IsZero() {
				a := store.Attempt{RunID: runID, Index: st.Index, StepID: st.ID, Number: 1, Owner: st.Owner,
					StartedAt: st.StartedAt, EndedAt: st.CompletedAt}
				i, _ := slices.BinarySearchFunc(atts, a, cmpAttempt)
				atts = slices.Insert(atts, i, a)
			}
			if st.AttemptAt.IsZero() {
				continue
			}
			a := store.Attempt{RunID: runID, Index: st.Index, StepID: st.ID, Number: st.Attempts, Owner: st.Owner, StartedAt: st.AttemptAt}
			if st.Comp == store.CompRunning {
				a.Compensation, a.Number = true, st.CompAttempts
			}
			i, _ := slices.BinarySearchFunc(atts, a, cmpAttempt)
			atts = slices.Insert(atts, i, a)
		}
		out = make([]Attempt, 0, len(atts))
		for _, a := range atts {
			x := Attempt{StepID: a.StepID, Compensation: a.Compensation, Generation: a.Generation, Number: a.Number,
				Engine: a.Owner, StartedAt: a.StartedAt, EndedAt: a.EndedAt, Error: a.Error,
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
