package dagflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"iter"
	"log/slog"
	"slices"
	"strconv"
)

// HandlerFunc runs one attempt of a step. It returns the step's result, which
// must encode to JSON (nil is JSON null), or an error. ctx is done when the
// attempt times out, the run is cancelled or times out, or the engine closes
// (context.Cause says which); a handler must return soon after. Return
// Permanent(err) for an error that another attempt would not mend.
type HandlerFunc func(ctx context.Context, in Input) (any, error)

// Input is what a step receives: the same fields, in Go, that an HTTP job
// handler receives as JSON (see MarshalJSON).
type Input struct {
	// WorkflowID is the id of the run.
	WorkflowID string
	// StepID is the id of the step.
	StepID string
	// Attempt numbers the attempts of this step in this round, from 1.
	Attempt int
	// Generation numbers the rounds of the run: 0 until Engine.Retry or
	// Engine.Rerun runs it again, then 1, and so on. A handler that keeps
	// replies by idempotency key sees a new key in each round (see
	// IdempotencyKey).
	Generation int
	// Context is the workflow's context, a JSON object.
	Context json.RawMessage
	// PreviousSteps holds the results of the step's ancestors (the steps
	// it depends on, directly or not), or of every step completed before
	// the attempt started when the workflow says "previousSteps": "all".
	PreviousSteps Results
	// Item is the item of a map step this attempt runs, and Index its
	// place in the list; Item is nil for a step that is not a map.
	Item  json.RawMessage
	Index int
	// Compensation is true when this call undoes the step in a saga.
	Compensation bool
	// Result is, for a compensation, the result of the step it undoes.
	Result json.RawMessage
	// FailedDependencies names the dependencies that failed or were
	// skipped, for a step that runs despite them (allowFailedDeps).
	FailedDependencies []string

	attempt *attemptCtx // the attempt's context, set by the engine, for Logger
}

// DecodeContext decodes the workflow's context into v. An empty context
// decodes as {}.
func (in Input) DecodeContext(v any) error {
	c := in.Context
	if len(bytes.TrimSpace(c)) == 0 {
		c = json.RawMessage("{}")
	}
	if err := json.Unmarshal(c, v); err != nil {
		return fmt.Errorf("dagflow: decoding the context of run %q: %w", in.WorkflowID, err)
	}
	return nil
}

// DecodeItem decodes a map item into v.
func (in Input) DecodeItem(v any) error {
	if in.Item == nil {
		return fmt.Errorf("dagflow: step %q of run %q is not a map item", in.StepID, in.WorkflowID)
	}
	if err := json.Unmarshal(in.Item, v); err != nil {
		return fmt.Errorf("dagflow: decoding item %d of step %q: %w", in.Index, in.StepID, err)
	}
	return nil
}

// Logger returns a logger whose lines are kept with this attempt in the store
// (shown in the console and by Engine.Attempts) and passed on to the engine's
// logger. Lines past a limit per attempt are dropped, and the attempt notes
// that they were.
func (in Input) Logger() *slog.Logger {
	if in.attempt == nil {
		return slog.New(slog.DiscardHandler)
	}
	return in.attempt.logger(&in)
}

// IdempotencyKey returns the key that stays the same on every attempt of
// this step (or item, or compensation) in one round of the run:
// "<workflowId>/<stepId>", with "/<index>" for a map item and
// "/compensation" for a compensation, and "/retry-<generation>" once
// Engine.Retry or Engine.Rerun has run the run again, so that a handler
// that keeps replies by key runs the work again in the new round.
func (in Input) IdempotencyKey() string {
	k := in.WorkflowID + "/" + in.StepID
	if in.Item != nil {
		k += "/" + strconv.Itoa(in.Index)
	}
	if in.Compensation {
		k += "/compensation"
	}
	if in.Generation > 0 {
		k += "/retry-" + strconv.Itoa(in.Generation)
	}
	return k
}

// MarshalJSON writes the input as the JSON body of the HTTP job protocol:
// workflowId, stepId, attempt, context, previousSteps (a map from step id to
// {"result": ...}); "generation" after a retry; "item" and "index" for a map
// item; "compensation": true and "result" for a compensation; and
// "failedDependencies" for a step that allows failed dependencies.
func (in Input) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`{"workflowId":`)
	writeString(&b, in.WorkflowID)
	b.WriteString(`,"stepId":`)
	writeString(&b, in.StepID)
	b.WriteString(`,"attempt":`)
	b.WriteString(strconv.Itoa(in.Attempt))
	if in.Generation > 0 {
		b.WriteString(`,"generation":`)
		b.WriteString(strconv.Itoa(in.Generation))
	}
	b.WriteString(`,"context":`)
	writeRaw(&b, in.Context, "{}")
	b.WriteString(`,"previousSteps":`)
	prev, err := in.PreviousSteps.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b.Write(prev)
	if in.Item != nil {
		b.WriteString(`,"item":`)
		b.Write(in.Item)
		b.WriteString(`,"index":`)
		b.WriteString(strconv.Itoa(in.Index))
	}
	if in.Compensation {
		b.WriteString(`,"compensation":true,"result":`)
		writeRaw(&b, in.Result, "null")
	}
	if len(in.FailedDependencies) > 0 {
		b.WriteString(`,"failedDependencies":`)
		fd, _ := json.Marshal(in.FailedDependencies)
		b.Write(fd)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func writeRaw(b *bytes.Buffer, r json.RawMessage, empty string) {
	if len(r) == 0 {
		b.WriteString(empty)
		return
	}
	b.Write(r)
}

// Results is a read-only view of the results a step sees: those of its
// ancestors (or, with "previousSteps": "all", of every step completed when
// its attempt started). Reading them costs nothing until a handler asks:
// they come from the engine's cache, or the store.
type Results struct {
	src resultSource
}

// resultSource is where a Results reads from.
type resultSource interface {
	ids() []string // the step ids it may hold, in order
	get(id string) (json.RawMessage, bool)
}

// Get returns the result of a step this step sees, and whether there is one.
func (r Results) Get(stepID string) (json.RawMessage, bool) {
	if r.src == nil {
		return nil, false
	}
	return r.src.get(stepID)
}

// Decode decodes the result of a step into v. It returns an error when the
// step has no result this step sees, or its result does not fit v.
func (r Results) Decode(stepID string, v any) error {
	raw, ok := r.Get(stepID)
	if !ok {
		return fmt.Errorf("dagflow: step %q has no result here (it is not an ancestor of this step, or it did not complete)", stepID)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("dagflow: decoding the result of step %q: %w", stepID, err)
	}
	return nil
}

// All yields each step's id and result, in the order the steps are declared.
func (r Results) All() iter.Seq2[string, json.RawMessage] {
	return func(yield func(string, json.RawMessage) bool) {
		if r.src == nil {
			return
		}
		for _, id := range r.src.ids() {
			if raw, ok := r.src.get(id); ok {
				if !yield(id, raw) {
					return
				}
			}
		}
	}
}

// Len returns the number of results.
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
		writeRaw(&b, raw, "null")
		b.WriteByte('}')
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// NewResults returns Results holding the given results, encoded as JSON, for
// a handler's tests: Input{PreviousSteps: NewResults(...)}.
func NewResults(results map[string]any) (Results, error) {
	m := mapResults{}
	for id, v := range results {
		raw, err := json.Marshal(v)
		if err != nil {
			return Results{}, fmt.Errorf("dagflow: NewResults: the result of %q: %w", id, err)
		}
		m[id] = raw
	}
	return Results{src: m}, nil
}

// mapResults is a resultSource of fixed results.
type mapResults map[string]json.RawMessage

func (m mapResults) ids() []string {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m mapResults) get(id string) (json.RawMessage, bool) {
	raw, ok := m[id]
	return raw, ok
}

// Typed adapts a handler that takes the workflow's context as a C and returns
// its result as an R: fn(ctx, c, in). A context that does not decode into C
// fails the attempt for good, saying why.
//
//	eng.Handle("charge", dagflow.Typed(func(ctx context.Context, o Order, in dagflow.Input) (Receipt, error) {
//		...
//	}))
func Typed[C, R any](fn func(ctx context.Context, c C, in Input) (R, error)) HandlerFunc {
	return func(ctx context.Context, in Input) (any, error) {
		var c C
		if err := in.DecodeContext(&c); err != nil {
			return nil, Permanent(err)
		}
		return fn(ctx, c, in)
	}
}

// ResultOf decodes the result of a step the handler sees (in.PreviousSteps)
// into a T.
func ResultOf[T any](in Input, stepID string) (T, error) {
	var v T
	err := in.PreviousSteps.Decode(stepID, &v)
	return v, err
}
