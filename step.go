package dagflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
)

// HandlerFunc runs one attempt of a step. It returns the step's result, which
// must encode to JSON (nil is JSON null), or an error. ctx is done when the
// attempt times out, the run is cancelled or times out, or the engine closes;
// a handler must return soon after. Return Permanent(err) for an error that
// another attempt would not mend.
type HandlerFunc func(ctx context.Context, in Input) (any, error)

// Input is what a step receives: the same fields, in Go, that an HTTP job
// handler receives as JSON (see MarshalJSON).
type Input struct {
	// WorkflowID is the id of the run.
	WorkflowID string
	// StepID is the id of the step.
	StepID string
	// Attempt numbers the attempts of this step, from 1.
	Attempt int
	// Context is the workflow's context, a JSON object.
	Context json.RawMessage
	// PreviousSteps holds the results of every step of the run completed
	// before this attempt started.
	PreviousSteps Results
	// Compensation is true when this call undoes the step in a saga.
	Compensation bool
	// Result is, for a compensation, the result of the step it undoes.
	Result json.RawMessage
	// FailedDependencies names the dependencies that failed or were
	// skipped, for a step that runs despite them (allowFailedDeps).
	FailedDependencies []string

	att *attemptCtx // the attempt's context: its logger
}

// DecodeContext decodes the workflow's context into v.
func (in Input) DecodeContext(v any) error {
	if err := json.Unmarshal(in.Context, v); err != nil {
		return fmt.Errorf("dagflow: decoding the context of run %q: %w", in.WorkflowID, err)
	}
	return nil
}

// Logger returns a logger whose lines are kept with this attempt in the store
// (shown in the console and by Engine.Attempts) and passed on to the engine's
// logger. Lines past a limit per attempt are dropped, and the attempt notes
// that they were.
func (in Input) Logger() *slog.Logger {
	if in.att == nil || in.att.e == nil {
		return slog.New(discard{})
	}
	return in.att.logger(in.att.e, &in)
}

// IdempotencyKey returns the key that stays the same on every attempt of
// this step (or of its compensation): "<workflowId>/<stepId>", with
// "/compensation" added for compensations.
func (in Input) IdempotencyKey() string {
	if in.Compensation {
		return in.WorkflowID + "/" + in.StepID + "/compensation"
	}
	return in.WorkflowID + "/" + in.StepID
}

// MarshalJSON writes the input as the JSON body of the HTTP job protocol:
// workflowId, stepId, attempt, context, previousSteps (a map from step id to
// {"result": ...}), for compensations "compensation": true and result, and
// for a step that allows failed dependencies, failedDependencies.
func (in Input) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"workflowId":`)
	writeString(&b, in.WorkflowID)
	b.WriteString(`,"stepId":`)
	writeString(&b, in.StepID)
	b.WriteString(`,"attempt":`)
	b.WriteString(strconv.Itoa(in.Attempt))
	b.WriteString(`,"context":`)
	if len(in.Context) == 0 {
		b.WriteString("{}")
	} else {
		b.Write(in.Context)
	}
	b.WriteString(`,"previousSteps":`)
	prev, err := in.PreviousSteps.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b.Write(prev)
	if in.Compensation {
		b.WriteString(`,"compensation":true,"result":`)
		writeRaw(&b, in.Result)
	}
	if len(in.FailedDependencies) > 0 {
		b.WriteString(`,"failedDependencies":`)
		fd, _ := json.Marshal(in.FailedDependencies)
		b.Write(fd)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s)
	b.Write(enc)
}

func writeRaw(b *bytes.Buffer, r json.RawMessage) {
	if len(r) == 0 {
		b.WriteString("null")
		return
	}
	b.Write(r)
}

// Results is a read-only view of the results of the steps of a run that had
// completed when a step's attempt started. It costs nothing to pass around:
// it shares the engine's one copy of each result.
type Results struct {
	rc   *runCache
	upto int64
}

// Get returns the result of a completed step, and whether it had completed.
func (r Results) Get(stepID string) (json.RawMessage, bool) {
	if r.rc == nil {
		return nil, false
	}
	i, ok := r.rc.lookup(stepID)
	if !ok {
		return nil, false
	}
	return r.rc.result(i, r.upto)
}

// Decode decodes the result of a completed step into v. It returns an error
// when the step had not completed or its result does not fit v.
func (r Results) Decode(stepID string, v any) error {
	raw, ok := r.Get(stepID)
	if !ok {
		return fmt.Errorf("dagflow: step %q has no result (it had not completed)", stepID)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("dagflow: decoding the result of step %q: %w", stepID, err)
	}
	return nil
}

// All yields each completed step's id and result, in the order the steps are
// declared.
func (r Results) All() iter.Seq2[string, json.RawMessage] {
	return func(yield func(string, json.RawMessage) bool) {
		if r.rc == nil {
			return
		}
		for i := range r.rc.plan.Steps {
			if raw, ok := r.rc.result(i, r.upto); ok {
				if !yield(r.rc.plan.Steps[i].ID, raw) {
					return
				}
			}
		}
	}
}

// Len returns the number of completed steps.
func (r Results) Len() int {
	n := 0
	for range r.All() {
		n++
	}
	return n
}

// MarshalJSON writes the results as the protocol's previousSteps object:
// {"<stepId>": {"result": ...}, ...}.
func (r Results) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	first := true
	for id, raw := range r.All() {
		if !first {
			b.WriteByte(',')
		}
		first = false
		writeString(&b, id)
		b.WriteString(`:{"result":`)
		writeRaw(&b, raw)
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
