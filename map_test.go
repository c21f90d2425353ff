package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
	"github.com/dagflow/dagflow/httpstep"
)

func ptr[T any](v T) *T { return &v }

// TestMapBatch is the example: a map over the context's items, at
// most two under way, whose result the next step sees as the array of the
// items' results in order.
func TestMapBatch(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	var running, most atomic.Int64
	var mu sync.Mutex
	var seen []string
	mustHandle(t, eng, "prepare", dagflowtest.Script(dagflowtest.Return("prepared")).Handler)
	mustHandle(t, eng, "process", func(ctx context.Context, in dagflow.Input) (any, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(5 * time.Millisecond)
		var name string
		if err := in.DecodeItem(&name); err != nil {
			return nil, err
		}
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%d:%s:%s", in.Index, name, in.IdempotencyKey()))
		mu.Unlock()
		return strings.ToUpper(name), nil
	})
	var finalIn dagflow.Input
	mustHandle(t, eng, "finalize", func(ctx context.Context, in dagflow.Input) (any, error) {
		finalIn = in
		return nil, nil
	})
	wf, err := dagflow.ParseWorkflow([]byte(`{"id": "batch-7", "context": {"batchId": "b7", "items": ["a.png", "b.png", "c.png", "d.png", "e.png"]},
	 "steps": [
	  {"id": "prepare", "handler": "prepare"},
	  {"id": "process", "handler": "process", "dependsOn": ["prepare"],
	   "map": {"items": "context.items", "maxConcurrency": 2}},
	  {"id": "finalize", "handler": "finalize", "dependsOn": ["process"]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Create(ctxT(t), wf); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "batch-7")
	if most.Load() > 2 || most.Load() < 1 {
		t.Errorf("at most %d items ran at once, want 2", most.Load())
	}
	want := `["A.PNG","B.PNG","C.PNG","D.PNG","E.PNG"]`
	if got := string(st.Results["process"]); got != want {
		t.Errorf("map result %s, want %s", got, want)
	}
	var prev []string
	if err := finalIn.PreviousSteps.Decode("process", &prev); err != nil || len(prev) != 5 || prev[4] != "E.PNG" {
		t.Errorf("finalize sees process = %v, %v", prev, err)
	}
	if items := stepOf(st, "process").Items; items == nil || *items != (dagflow.ItemCounts{Total: 5, Completed: 5}) {
		t.Errorf("item counts %+v", items)
	}
	slices.Sort(seen)
	if seen[0] != "0:a.png:batch-7/process/0" || seen[4] != "4:e.png:batch-7/process/4" {
		t.Errorf("items as handled: %v", seen)
	}
	items, err := eng.Items(ctxT(t), "batch-7", "process")
	if err != nil || len(items) != 5 || items[2].State != dagflow.StateCompleted || string(items[2].Value) != `"c.png"` || string(items[2].Result) != `"C.PNG"` {
		t.Errorf("Items = %+v, %v", items, err)
	}
	atts, err := eng.Attempts(ctxT(t), "batch-7")
	if err != nil {
		t.Fatal(err)
	}
	perItem := 0
	for _, a := range atts {
		if a.StepID == "process" && a.Item >= 0 {
			perItem++
		}
	}
	if perItem != 5 {
		t.Errorf("attempts of the items: %d, want 5", perItem)
	}
}

// TestMapFromResultAndLiteral: the list comes from a dependency's result,
// or is written in the step; an empty list completes the step with [].
func TestMapFromResultAndLiteral(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "list", dagflowtest.Script(dagflowtest.Return(map[string]any{"images": []int{3, 4}, "none": []int{}})).Handler)
	mustHandle(t, eng, "double", func(ctx context.Context, in dagflow.Input) (any, error) {
		var n int
		err := in.DecodeItem(&n)
		return n * 2, err
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "m", Steps: []dagflow.Step{
		handlerStep("list", "list"),
		{ID: "from-result", Handler: "double", DependsOn: []string{"list"}, Map: &dagflow.Map{Items: dagflow.MapItems{Path: "steps.list.result.images"}}},
		{ID: "literal", Handler: "double", Map: &dagflow.Map{Items: dagflow.MapItems{List: json.RawMessage(`[10, 20, 30]`)}}},
		{ID: "empty", Handler: "double", DependsOn: []string{"list"}, Map: &dagflow.Map{Items: dagflow.MapItems{Path: "steps.list.result.none"}}},
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "m")
	for id, want := range map[string]string{"from-result": "[6,8]", "literal": "[20,40,60]", "empty": "[]"} {
		if got := string(st.Results[id]); got != want {
			t.Errorf("%s = %s, want %s", id, got, want)
		}
	}
}

// TestMapBadItems: items that resolve to nothing, that are not an array, or
// that are too many fail the step for good, naming the path.
func TestMapBadItems(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t, dagflow.WithMaxMapItems(3))
	calls := dagflowtest.Script()
	mustHandle(t, eng, "h", calls.Handler)
	for _, tc := range []struct {
		id, ctx, items, want string
	}{
		{"missing", `{}`, "context.items", `path "context.items" resolves to nothing: context has no key "items"`},
		{"not-array", `{"items": {"a": 1}}`, "context.items", `map items "context.items" is an object, not an array`},
		{"too-many", `{"items": [1,2,3,4]}`, "context.items", "its list has 4 items; the limit is 3 (WithMaxMapItems)"},
	} {
		if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: tc.id, Context: json.RawMessage(tc.ctx), Steps: []dagflow.Step{
			{ID: "m", Handler: "h", Map: &dagflow.Map{Items: dagflow.MapItems{Path: tc.items}}, Retries: &dagflow.RetryConfig{MaxAttempts: 3}},
		}}); err != nil {
			t.Fatal(err)
		}
		st := dagflowtest.RequireFailed(t, eng, tc.id)
		if !strings.Contains(st.Error, tc.want) {
			t.Errorf("%s: error %q, want %q", tc.id, st.Error, tc.want)
		}
	}
	if n := len(calls.Calls()); n != 0 {
		t.Errorf("the handler ran %d times", n)
	}
}

// TestMapTolerances: failed items are null in the result while a tolerance
// holds; past it the step fails, the items under way end first, no new one
// starts.
func TestMapTolerances(t *testing.T) {
	failOdd := func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.Index%2 == 1 {
			return nil, dagflow.Permanent(fmt.Errorf("item %d is odd", in.Index))
		}
		return in.Index, nil
	}
	items := dagflow.MapItems{List: json.RawMessage(`[0,1,2,3,4,5,6,7,8,9]`)}
	for _, tc := range []struct {
		name    string
		m       dagflow.Map
		ok      bool
		started int // items started at most
	}{
		{"none tolerated", dagflow.Map{MaxConcurrency: 1}, false, 2},
		{"count 5", dagflow.Map{ToleratedFailureCount: ptr(5), MaxConcurrency: 1}, true, 10},
		{"count 4", dagflow.Map{ToleratedFailureCount: ptr(4), MaxConcurrency: 1}, false, 10},
		{"50 percent", dagflow.Map{ToleratedFailurePercentage: ptr(50.0), MaxConcurrency: 1}, true, 10},
		{"40 percent", dagflow.Map{ToleratedFailurePercentage: ptr(40.0), MaxConcurrency: 1}, false, 10},
		{"count 0 and 60 percent", dagflow.Map{ToleratedFailureCount: ptr(0), ToleratedFailurePercentage: ptr(60.0), MaxConcurrency: 1}, false, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng, _ := dagflowtest.NewEngine(t)
			var calls atomic.Int64
			mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
				calls.Add(1)
				return failOdd(ctx, in)
			})
			m := tc.m
			m.Items = items
			if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "t", Steps: []dagflow.Step{{ID: "m", Handler: "h", Map: &m}}}); err != nil {
				t.Fatal(err)
			}
			st := dagflowtest.Final(t, eng, "t")
			if (st.State == dagflow.StateCompleted) != tc.ok {
				t.Fatalf("state %s (%s)", st.State, st.Error)
			}
			if tc.ok && string(st.Results["m"]) != "[0,null,2,null,4,null,6,null,8,null]" {
				t.Errorf("result %s", st.Results["m"])
			}
			if !tc.ok && !strings.Contains(st.Error, "items failed") {
				t.Errorf("error %q", st.Error)
			}
			if n := calls.Load(); n > int64(tc.started) {
				t.Errorf("%d items started, want at most %d", n, tc.started)
			}
		})
	}
}

// TestMapRetryOnlyFailedItems: Retry runs again only the items that failed;
// items keep their own attempts and retries.
func TestMapRetryOnlyFailedItems(t *testing.T) {
	eng := newEngine(t) // real time: the items' retries wait a millisecond
	var mu sync.Mutex
	ran := map[int]int{}
	fail := atomic.Bool{}
	fail.Store(true)
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		mu.Lock()
		ran[in.Index]++
		mu.Unlock()
		if in.Index == 2 && fail.Load() {
			return nil, errors.New("flaky")
		}
		return in.Index * 10, nil
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "r", Steps: []dagflow.Step{{ID: "m", Handler: "h",
		Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: time.Millisecond},
		Map:     &dagflow.Map{Items: dagflow.MapItems{List: json.RawMessage(`["a","b","c","d"]`)}}}}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireFailed(t, eng, "r")
	if ran[2] != 2 || ran[0] != 1 {
		t.Fatalf("runs per item: %v (item 2 should have had its 2 attempts)", ran)
	}
	fail.Store(false)
	if _, err := eng.Retry(ctxT(t), "r"); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "r")
	if d := cmp.Diff(map[int]int{0: 1, 1: 1, 2: 3, 3: 1}, ran); d != "" {
		t.Errorf("runs per item after the retry (-want +got):\n%s", d)
	}
	if string(st.Results["m"]) != "[0,10,20,30]" {
		t.Errorf("result %s", st.Results["m"])
	}
}

// TestMapSaga: a saga compensates a map step item by item, in reverse order
// of completion, each compensation getting its item, index and result.
func TestMapSaga(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "charge", func(ctx context.Context, in dagflow.Input) (any, error) {
		return "charged-" + string(in.Item), nil
	})
	var mu sync.Mutex
	var undone []string
	mustHandle(t, eng, "refund", func(ctx context.Context, in dagflow.Input) (any, error) {
		var res string
		json.Unmarshal(in.Result, &res)
		mu.Lock()
		undone = append(undone, fmt.Sprintf("%d:%s:%s", in.Index, in.Item, res))
		mu.Unlock()
		return nil, nil
	})
	mustHandle(t, eng, "fail", dagflowtest.Script(dagflowtest.Fail(dagflow.Permanent(errors.New("no stock")))).Handler)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "s", Saga: true, Steps: []dagflow.Step{
		{ID: "charge", Handler: "charge", Compensation: "refund",
			Map: &dagflow.Map{Items: dagflow.MapItems{List: json.RawMessage(`[1,2,3]`)}, MaxConcurrency: 1}},
		handlerStep("ship", "fail", "charge"),
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "s")
	want := []string{`2:3:charged-3`, `1:2:charged-2`, `0:1:charged-1`}
	if d := cmp.Diff(want, undone); d != "" {
		t.Errorf("compensations (-want +got):\n%s", d)
	}
	dagflowtest.RequireCompensated(t, st, "charge")
}

// TestMapHTTP: each item of a map over an HTTP job is its own request, with
// "item" and "index" in the body and "<workflowId>/<stepId>/<index>" as its
// idempotency key.
func TestMapHTTP(t *testing.T) {
	var mu sync.Mutex
	keys := map[string]string{}
	h, err := httpstep.Handler(func(ctx context.Context, req httpstep.Request) (any, error) {
		mu.Lock()
		keys[req.IdempotencyKey] = fmt.Sprintf("%d=%s", req.Index, req.Item)
		mu.Unlock()
		return req.Index, nil
	}, httpstep.WithoutVerification())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	eng, _ := dagflowtest.NewEngine(t)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "web", Steps: []dagflow.Step{
		{ID: "resize", URL: srv.URL + "/resize", Map: &dagflow.Map{Items: dagflow.MapItems{List: json.RawMessage(`["x","y"]`)}}},
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "web")
	if d := cmp.Diff(map[string]string{"web/resize/0": `0="x"`, "web/resize/1": `1="y"`}, keys); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	if string(st.Results["resize"]) != "[0,1]" {
		t.Errorf("result %s", st.Results["resize"])
	}
	_ = http.StatusOK
}

// TestMapValidation: bad maps are reported with their place.
func TestMapValidation(t *testing.T) {
	_, err := dagflow.ParseWorkflow([]byte(`{"id":"w","steps":[
		{"id":"a","handler":"h"},
		{"id":"b","handler":"h","map":{"items":"steps.a.result","maxConcurrency":0}},
		{"id":"c","handler":"h","dependsOn":["a"],"map":{"items":"context..x","toleratedFailurePercentage":120,"toleratedFailureCount":-1}},
		{"id":"d","sleep":{"seconds":5},"map":{"items":[1]}},
		{"id":"e","handler":"h","map":{"items":{"a":1}}}
	]}`))
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("ParseWorkflow = %v", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.Path+": "+p.Message)
	}
	for _, want := range []string{
		"steps[1].map.maxConcurrency: must be at least 1, got 0",
		`steps[1].map.items: "steps.a.result" goes through step "a", which is not a dependency of step "b" (add it to dependsOn)`,
		`steps[2].map.items: "context..x" has an empty key (two dots, or a dot at the end)`,
		"steps[2].map.toleratedFailurePercentage: must be between 0 and 100, got 120",
		"steps[2].map.toleratedFailureCount: must not be negative, got -1",
		"steps[3].map: cannot go with a sleep step: a map runs a url, a handler or a workflow once per item",
		"steps[4].map.items: must be a path (a string) or an array, not an object",
	} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, want) }) {
			t.Errorf("missing problem %q in:\n%s", want, strings.Join(got, "\n"))
		}
	}
}
