package dagflow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// flowEnv is the engine as the state machine sees it (flow.Env), kept off
// the Engine's exported methods.
type flowEnv struct{ e *Engine }

func (e *Engine) env() flow.Env { return flowEnv{e} }

// Plan implements flow.Env: the compiled plan of a run, from the cache or
// from its spec.
func (v flowEnv) Plan(tx store.Tx, runID string) (*flow.Plan, error) {
	ri, err := v.e.runs.load(tx, runID)
	if err != nil {
		return nil, err
	}
	return ri.plan, nil
}

// Context implements flow.Env.
func (v flowEnv) Context(tx store.Tx, runID string) (json.RawMessage, error) {
	ri, err := v.e.runs.load(tx, runID)
	if err != nil {
		return nil, err
	}
	return ri.wf.Context, nil
}

// Child implements flow.Env: the spec and plan of the child run of a step
// (or of one item of it): the step's sub-workflow, whose context is the
// parent's with the sub-workflow's own fields laid over it, and for an item,
// "item" and "index" too.
func (v flowEnv) Child(tx store.Tx, parent *store.Run, index, item int, value json.RawMessage) (json.RawMessage, *flow.Plan, error) {
	ri, err := v.e.runs.load(tx, parent.ID)
	if err != nil {
		return nil, nil, err
	}
	sub := ri.wf.Steps[index].Workflow
	if sub == nil {
		return nil, nil, fmt.Errorf("step %q has no workflow", ri.wf.Steps[index].ID)
	}
	w := *sub
	w.ID = flow.ChildID(parent.ID, ri.wf.Steps[index].ID, item)
	ctx, err := overlay(ri.wf.Context, sub.Context)
	if err != nil {
		return nil, nil, err
	}
	if item > 0 {
		extra, _ := json.Marshal(map[string]any{"item": json.RawMessage(value), "index": item - 1})
		if ctx, err = overlay(ctx, extra); err != nil {
			return nil, nil, err
		}
	}
	w.Context = ctx
	spec, n, err := specOf(&w)
	if err != nil {
		return nil, nil, err
	}
	return spec, v.e.runs.put(w.ID, &n, compile(&n, nil)), nil
}

// overlay returns the JSON object base with the members of over laid over it.
func overlay(base, over json.RawMessage) (json.RawMessage, error) {
	if len(bytes.TrimSpace(over)) == 0 || string(bytes.TrimSpace(over)) == "{}" {
		return base, nil
	}
	m := map[string]json.RawMessage{}
	if err := json.Unmarshal(base, &m); err != nil {
		return nil, fmt.Errorf("the parent's context: %w", err)
	}
	var o map[string]json.RawMessage
	if err := json.Unmarshal(over, &o); err != nil {
		return nil, fmt.Errorf("the sub-workflow's context: %w", err)
	}
	for k, x := range o {
		m[k] = x
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return canonicalContext(b), nil
}

// Webhooks implements flow.Env: the onComplete or onError call of a run
// that has just ended, with its final status as the body. They are written
// in the same transaction that ends the run, so a crash cannot lose them.
func (v flowEnv) Webhooks(tx store.Tx, r *store.Run, p *flow.Plan) ([]store.Webhook, error) {
	url, event := p.OnComplete, "complete"
	if r.State != store.RunCompleted {
		url, event = p.OnError, "error"
	}
	if url == "" {
		return nil, nil
	}
	st, err := v.e.statusOf(tx, r)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	now := v.e.now()
	return []store.Webhook{{
		ID: fmt.Sprintf("%s/%d", event, r.Generation), RunID: r.ID, URL: url, Event: event,
		Body: body, DueAt: now, CreatedAt: now,
	}}, nil
}

// CanRun implements flow.Env: whether this engine has the step's handler.
func (v flowEnv) CanRun(p *flow.Plan, index int, comp bool) bool {
	name := p.Steps[index].Handler
	if comp {
		name = p.Steps[index].CompHandler
	}
	return name == "" || v.e.hasHandler(name) // "": an HTTP step
}

// Jitter implements flow.Env.
func (v flowEnv) Jitter(d time.Duration) time.Duration { return v.e.cfg.jitter(d) }

// Limits implements flow.Env.
func (v flowEnv) Limits() flow.Limits {
	return flow.Limits{Owner: v.e.owner, Lease: v.e.lease, MaxInterruptions: v.e.cfg.maxInterruptions, MaxMapItems: v.e.cfg.maxMapItems}
}
