package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
)

// TestSubWorkflow: a workflow step runs a child run "<parent>/<step>" whose
// context is the parent's with the child's own fields over it, and completes
// with the child's results; the child is a run like any other.
func TestSubWorkflow(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	var ctxs sync.Map
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		ctxs.Store(in.WorkflowID+"/"+in.StepID, string(in.Context))
		return in.StepID + "-done", nil
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "order-1", Context: json.RawMessage(`{"orderId":"o1","carrier":"ups"}`), Steps: []dagflow.Step{
		handlerStep("charge", "h"),
		{ID: "ship", DependsOn: []string{"charge"}, Workflow: &dagflow.Workflow{
			Context: json.RawMessage(`{"carrier":"dhl","box":"small"}`),
			Steps:   []dagflow.Step{handlerStep("pack", "h"), handlerStep("label", "h", "pack")},
		}},
		handlerStep("notify", "h", "ship"),
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "order-1")
	if got := string(st.Results["ship"]); got != `{"pack":"pack-done","label":"label-done"}` {
		t.Errorf("ship's result %s", got)
	}
	if s := stepOf(st, "ship"); s.Run != "order-1/ship" || s.Kind != "workflow" {
		t.Errorf("ship step: run %q kind %q", s.Run, s.Kind)
	}
	c, _ := ctxs.Load("order-1/ship/pack")
	if c != `{"box":"small","carrier":"dhl","orderId":"o1"}` {
		t.Errorf("child context %v", c)
	}
	child, err := eng.Status(ctxT(t), "order-1/ship")
	if err != nil || child.State != dagflow.StateCompleted || child.Parent != "order-1" {
		t.Fatalf("child status %+v, %v", child, err)
	}
	list, err := eng.List(ctxT(t), dagflow.ListOptions{Parent: "order-1"})
	if err != nil || len(list.Runs) != 1 || list.Runs[0].ID != "order-1/ship" {
		t.Errorf("children listed: %+v, %v", list, err)
	}
}

// TestMapOfSubWorkflows: each item runs a child "<parent>/<step>/<index>"
// with "item" and "index" in its context.
func TestMapOfSubWorkflows(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		var c struct {
			Item  string `json:"item"`
			Index int    `json:"index"`
		}
		err := in.DecodeContext(&c)
		return fmt.Sprintf("%s@%d", c.Item, c.Index), err
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "b", Context: json.RawMessage(`{"files":["x","y","z"]}`), Steps: []dagflow.Step{
		{ID: "each", Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.files"}, MaxConcurrency: 2},
			Workflow: &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("work", "h")}}},
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "b")
	want := `[{"work":"x@0"},{"work":"y@1"},{"work":"z@2"}]`
	if got := string(st.Results["each"]); got != want {
		t.Errorf("result %s, want %s", got, want)
	}
	items, err := eng.Items(ctxT(t), "b", "each")
	if err != nil || len(items) != 3 || items[1].Run != "b/each/1" {
		t.Errorf("items %+v, %v", items, err)
	}
	if child, err := eng.Status(ctxT(t), "b/each/2"); err != nil || child.State != dagflow.StateCompleted {
		t.Errorf("child b/each/2: %+v, %v", child, err)
	}
}

// TestSubWorkflowFails: the parent's step fails with the child's error.
func TestSubWorkflowFails(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "bad", dagflowtest.Script(dagflowtest.Fail(dagflow.Permanent(errors.New("label printer jammed")))).Handler)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "p", Steps: []dagflow.Step{
		{ID: "ship", Workflow: &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("label", "bad")}}},
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "p")
	if !strings.Contains(st.Error, `child run "p/ship" failed: step "label" failed: label printer jammed`) {
		t.Errorf("error %q", st.Error)
	}
}

// TestCancelParentCancelsChildren: cancelling (or timing out) a parent
// cancels its children and their attempts.
func TestCancelParentCancelsChildren(t *testing.T) {
	eng := newEngine(t)
	started := make(chan string, 4)
	var causes sync.Map
	mustHandle(t, eng, "block", func(ctx context.Context, in dagflow.Input) (any, error) {
		started <- in.WorkflowID
		<-ctx.Done()
		causes.Store(in.WorkflowID, context.Cause(ctx).Error())
		return nil, ctx.Err()
	})
	sub := &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("wait", "block")}}
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "p", Steps: []dagflow.Step{{ID: "c", Workflow: sub}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "q", Timeout: 200 * time.Millisecond, Steps: []dagflow.Step{{ID: "c", Workflow: sub}}}); err != nil {
		t.Fatal(err)
	}
	<-started
	<-started
	if _, err := eng.Cancel(ctxT(t), "p"); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]dagflow.State{"p": dagflow.StateCancelled, "p/c": dagflow.StateCancelled, "q": dagflow.StateFailed, "q/c": dagflow.StateCancelled} {
		st := dagflowtest.Final(t, eng, id)
		if st.State != want {
			t.Errorf("%s ended %s (%s), want %s", id, st.State, st.Error, want)
		}
	}
	if c, _ := causes.Load("p/c"); !strings.Contains(fmt.Sprint(c), "its parent run") {
		t.Errorf("cause seen by the child's attempt: %v", c)
	}
	st, _ := eng.Status(ctxT(t), "q")
	if st.Cause != dagflow.CauseTimeout {
		t.Errorf("q's cause %q, want timeout", st.Cause)
	}
}

// TestRetryParentRetriesChild: Retry of a parent whose child failed retries
// the child (its failed steps), which then completes the parent's step.
func TestRetryParentRetriesChild(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	var fail atomic.Bool
	fail.Store(true)
	var okCalls atomic.Int64
	mustHandle(t, eng, "ok", func(context.Context, dagflow.Input) (any, error) { okCalls.Add(1); return "ok", nil })
	mustHandle(t, eng, "flaky", func(context.Context, dagflow.Input) (any, error) {
		if fail.Load() {
			return nil, errors.New("down")
		}
		return "up", nil
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "p", Steps: []dagflow.Step{
		{ID: "c", Workflow: &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("a", "ok"), handlerStep("b", "flaky", "a")}}},
	}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireFailed(t, eng, "p")
	fail.Store(false)
	if _, err := eng.Retry(ctxT(t), "p"); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "p")
	if string(st.Results["c"]) != `{"a":"ok","b":"up"}` || okCalls.Load() != 1 {
		t.Errorf("result %s, ok ran %d times (want once: the child kept it)", st.Results["c"], okCalls.Load())
	}
	child, _ := eng.Status(ctxT(t), "p/c")
	if child.Generation != 1 {
		t.Errorf("child generation %d, want 1", child.Generation)
	}
}

// TestSagaCompensatesChild: a saga parent that fails after a child saga
// completed rolls the child back as a whole, by the child's own saga.
func TestSagaCompensatesChild(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	var mu sync.Mutex
	var undone []string
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	mustHandle(t, eng, "undo", func(ctx context.Context, in dagflow.Input) (any, error) {
		mu.Lock()
		undone = append(undone, in.WorkflowID+"/"+in.StepID)
		mu.Unlock()
		return nil, nil
	})
	mustHandle(t, eng, "fail", dagflowtest.Script(dagflowtest.Fail(dagflow.Permanent(errors.New("no")))).Handler)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "trip", Saga: true, Steps: []dagflow.Step{
		{ID: "charge", Handler: "ok", Compensation: "undo"},
		{ID: "book", DependsOn: []string{"charge"}, Workflow: &dagflow.Workflow{Saga: true, Steps: []dagflow.Step{
			{ID: "flight", Handler: "ok", Compensation: "undo"},
			{ID: "hotel", Handler: "ok", Compensation: "undo", DependsOn: []string{"flight"}},
		}}},
		handlerStep("pay", "fail", "book"),
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "trip")
	want := []string{"trip/book/hotel", "trip/book/flight", "trip/charge"}
	if d := cmp.Diff(want, undone); d != "" {
		t.Errorf("compensations (-want +got):\n%s", d)
	}
	dagflowtest.RequireCompensated(t, st, "book", "charge")
	child, _ := eng.Status(ctxT(t), "trip/book")
	if child.State != dagflow.StateCancelled || child.Cause != dagflow.CauseParent || !slices.Equal(child.CompensatedSteps, []string{"hotel", "flight"}) {
		t.Errorf("child after its rollback: %s %q %v", child.State, child.Cause, child.CompensatedSteps)
	}
}

// TestSubWorkflowDepth: nesting deeper than WithMaxDepth is refused, with
// the place inside the parent.
func TestSubWorkflowDepth(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t, dagflow.WithMaxDepth(2))
	mustHandle(t, eng, "h", dagflowtest.Script().Handler)
	leaf := dagflow.Workflow{Steps: []dagflow.Step{handlerStep("x", "h")}}
	nest := func(w dagflow.Workflow) dagflow.Workflow {
		return dagflow.Workflow{Steps: []dagflow.Step{{ID: "in", Workflow: &w}}}
	}
	ok := nest(nest(leaf))
	ok.ID = "ok"
	if _, err := eng.Create(ctxT(t), ok); err != nil {
		t.Fatalf("two levels: %v", err)
	}
	dagflowtest.RequireCompleted(t, eng, "ok")
	deep := nest(nest(nest(leaf)))
	deep.ID = "deep"
	_, err := eng.Create(ctxT(t), deep)
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) || ve.Problems[0].String() != "steps[0].workflow.steps[0].workflow.steps[0].workflow: nests sub-workflows 3 deep; the limit is 2 (WithMaxDepth)" {
		t.Errorf("three levels: %v", err)
	}
	bad := dagflow.Workflow{ID: "bad", Steps: []dagflow.Step{{ID: "c", Workflow: &dagflow.Workflow{ID: "x", Steps: []dagflow.Step{{ID: "a", DependsOn: []string{"nope"}, Handler: "h"}}}}}}
	_, err = eng.Create(ctxT(t), bad)
	if !errors.As(err, &ve) || len(ve.Problems) != 2 ||
		ve.Problems[0].String() != "steps[0].workflow.id: a sub-workflow has no id of its own: its run's id is <parentId>/<stepId>" ||
		ve.Problems[1].String() != `steps[0].workflow.steps[0].dependsOn[0]: unknown step "nope"` {
		t.Errorf("problems inside a sub-workflow: %v", err)
	}
}
