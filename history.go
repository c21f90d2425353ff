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
	StepID       string    `json:"stepId"`
	Compensation bool      `json:"compensation,omitempty"`
	Generation   int       `json:"generation,omitempty"`
	Number       int       `json:"number"`
	Engine       string    `json:"engine,omitempty"`
	StartedAt    time.Time `json:"startedAt"`
	EndedAt      time.Time `json:"endedAt,omitzero"`
	// Error is why the attempt failed; "" when it succeeded or is under
	// way.
	Error string `json:"error,omitempty"`
	// StatusCode and Duration describe the reply of an HTTP step.
	StatusCode int           `json:"statusCode,omitempty"`
	Duration   time.Duration `json:"duration,omitempty"`
	Logs       []LogLine     `json:"logs,omitempty"`
	// LogsCut says lines were dropped past the engine's limit.
	LogsCut bool `json:"logsCut,omitempty"`
}

// LogLine is a line a handler logged through Input.Logger.
type LogLine struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	Attrs   string    `json:"attrs,omitempty"`
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
	Event       string    `json:"event"`
	URL         string    `json:"url"`
	Attempts    int       `json:"attempts"`
	CreatedAt   time.Time `json:"createdAt"`
	DeliveredAt time.Time `json:"deliveredAt,omitzero"`
	NextAt      time.Time `json:"nextAt,omitzero"`
	LastError   string    `json:"lastError,omitempty"`
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
