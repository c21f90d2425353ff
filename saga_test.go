package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
)

// calls records handler calls in order, safe for concurrent use.
type calls struct {
	mu   sync.Mutex
	list []string
}

func (c *calls) add(s string) {
	c.mu.Lock()
	c.list = append(c.list, s)
	c.mu.Unlock()
}

func (c *calls) get() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.list)
}

// TestOrderSaga is the hosted docs' order saga: create-shipment fails, so
// refund-payment and then release-inventory run; cancel-shipment never does.
func TestOrderSaga(t *testing.T) {
	eng := newEngine(t)
	var log calls
	var refundInput dagflow.Input
	forward := func(ctx context.Context, in dagflow.Input) (any, error) {
		log.add(in.StepID)
		if in.StepID == "create-shipment" {
			return nil, dagflow.Permanent(errors.New("carrier rejected the parcel"))
		}
		return map[string]string{"id": in.StepID + "-42"}, nil
	}
	for _, name := range []string{"reserve", "charge", "ship"} {
		mustHandle(t, eng, name, forward)
	}
	for _, name := range []string{"release-inventory", "refund-payment", "cancel-shipment"} {
		mustHandle(t, eng, name, func(ctx context.Context, in dagflow.Input) (any, error) {
			log.add(name)
			if name == "refund-payment" {
				refundInput = in
			}
			return "undone", nil
		})
	}
	wf := dagflow.Workflow{ID: "order-saga", Saga: true, Context: json.RawMessage(`{"orderId":"order_123"}`), Steps: []dagflow.Step{
		{ID: "reserve-inventory", Handler: "reserve", Compensation: "release-inventory"},
		{ID: "charge-payment", Handler: "charge", Compensation: "refund-payment", DependsOn: []string{"reserve-inventory"}},
		{ID: "create-shipment", Handler: "ship", Compensation: "cancel-shipment", DependsOn: []string{"charge-payment"}},
		{ID: "send-confirmation", Handler: "charge", DependsOn: []string{"create-shipment"}},
	}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	want := []string{"reserve-inventory", "charge-payment", "create-shipment", "refund-payment", "release-inventory"}
	if d := cmp.Diff(want, log.get()); d != "" {
		t.Errorf("calls (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"charge-payment", "reserve-inventory"}, st.CompensatedSteps); d != "" {
		t.Errorf("compensatedSteps (-want +got):\n%s", d)
	}
	states := map[string]dagflow.State{"reserve-inventory": dagflow.StateCompensated, "charge-payment": dagflow.StateCompensated,
		"create-shipment": dagflow.StateFailed, "send-confirmation": dagflow.StateSkipped}
	if d := cmp.Diff(states, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if !refundInput.Compensation || string(refundInput.Result) != `{"id":"charge-payment-42"}` ||
		refundInput.IdempotencyKey() != "order-saga/charge-payment/compensation" || refundInput.Attempt != 1 {
		t.Errorf("refund input: comp %v result %s key %s attempt %d", refundInput.Compensation, refundInput.Result,
			refundInput.IdempotencyKey(), refundInput.Attempt)
	}
	if !strings.Contains(st.Error, "carrier rejected the parcel") {
		t.Errorf("run error %q", st.Error)
	}
	comp := st.Steps[1].Compensation
	if comp == nil || comp.State != "compensated" || comp.Attempts != 1 || comp.CompletedAt.IsZero() {
		t.Errorf("charge-payment compensation status %+v", comp)
	}
}

func TestSagaCompensationRetriesAndFailure(t *testing.T) {
	eng := newEngine(t)
	var log calls
	var undoTries atomic.Int64
	mustHandle(t, eng, "do", func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.StepID == "c" {
			return nil, errors.New("c fails")
		}
		return nil, nil
	})
	mustHandle(t, eng, "undo-flaky", func(ctx context.Context, in dagflow.Input) (any, error) {
		log.add(fmt.Sprintf("undo-a#%d", in.Attempt))
		if undoTries.Add(1) < 2 {
			return nil, errors.New("refund service busy")
		}
		return nil, nil
	})
	mustHandle(t, eng, "undo-broken", func(ctx context.Context, in dagflow.Input) (any, error) {
		log.add(fmt.Sprintf("undo-b#%d", in.Attempt))
		return nil, errors.New("ledger unreachable")
	})
	retry := &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: 1 * time.Millisecond}
	st := run(t, eng, dagflow.Workflow{ID: "s2", Saga: true, Steps: []dagflow.Step{
		{ID: "a", Handler: "do", Compensation: "undo-flaky", Retries: retry},
		{ID: "b", Handler: "do", Compensation: "undo-broken", DependsOn: []string{"a"}, Retries: retry},
		{ID: "c", Handler: "do", DependsOn: []string{"b"}},
	}})
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	// b's compensation fails for good (2 attempts), and the rollback
	// goes on with a's, which succeeds on its second attempt.
	if d := cmp.Diff([]string{"undo-b#1", "undo-b#2", "undo-a#1", "undo-a#2"}, log.get()); d != "" {
		t.Errorf("compensation calls (-want +got):\n%s", d)
	}
	want := map[string]dagflow.State{"a": dagflow.StateCompensated, "b": dagflow.StateCompensationFailed, "c": dagflow.StateFailed}
	if d := cmp.Diff(want, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if !strings.Contains(st.Error, `compensation of step "b" failed: ledger unreachable`) {
		t.Errorf("run error %q does not say the compensation failed", st.Error)
	}
	if st.Steps[1].Compensation.Error != "ledger unreachable" || !slices.Equal(st.CompensatedSteps, []string{"a"}) {
		t.Errorf("b compensation %+v, compensated %v", st.Steps[1].Compensation, st.CompensatedSteps)
	}
}

func TestContinueOnFailure(t *testing.T) {
	eng := newEngine(t)
	var fanIn dagflow.Input
	mustHandle(t, eng, "ok", func(ctx context.Context, in dagflow.Input) (any, error) { return in.StepID, nil })
	mustHandle(t, eng, "bad", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, errors.New("broken") })
	mustHandle(t, eng, "report", func(ctx context.Context, in dagflow.Input) (any, error) {
		fanIn = in
		return in.PreviousSteps.Len(), nil
	})
	par := func(s dagflow.Step) dagflow.Step { s.Parallel = true; return s }
	st := run(t, eng, dagflow.Workflow{ID: "cont", OnStepFailure: dagflow.ContinueOnFailure, Steps: []dagflow.Step{
		par(step("a", "ok")),
		par(step("b", "bad")),
		par(step("b-child", "ok", "b")),
		par(step("b-grandchild", "ok", "b-child")),
		par(step("a-child", "ok", "a")),
		{ID: "report", Handler: "report", DependsOn: []string{"a-child", "b-grandchild", "a"}, AllowFailedDeps: true},
	}})
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	want := map[string]dagflow.State{"a": dagflow.StateCompleted, "b": dagflow.StateFailed, "b-child": dagflow.StateSkipped,
		"b-grandchild": dagflow.StateSkipped, "a-child": dagflow.StateCompleted, "report": dagflow.StateCompleted}
	if d := cmp.Diff(want, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"b-grandchild"}, fanIn.FailedDependencies); d != "" {
		t.Errorf("report's failed dependencies (-want +got):\n%s", d)
	}
	if _, ok := fanIn.PreviousSteps.Get("a-child"); !ok {
		t.Error("report did not see a-child's result")
	}
	for _, s := range st.Steps {
		if s.ID == "b-grandchild" && s.Error != `skipped: dependency "b-child" did not complete` {
			t.Errorf("skip reason %q", s.Error)
		}
	}
	if len(st.Results) != 3 || st.Error != `step "b" failed: broken` {
		t.Errorf("results %v, error %q", st.Results, st.Error)
	}
	body, _ := fanIn.MarshalJSON()
	if !strings.Contains(string(body), `"failedDependencies":["b-grandchild"]`) {
		t.Errorf("HTTP body lacks failedDependencies: %s", body)
	}
}

func TestFailPolicyLetsRunningStepsFinish(t *testing.T) {
	eng := newEngine(t)
	started := make(chan struct{})
	release := make(chan struct{})
	var ctxErr atomic.Value
	mustHandle(t, eng, "slow", func(ctx context.Context, in dagflow.Input) (any, error) {
		close(started)
		<-release
		ctxErr.Store(fmt.Sprint(ctx.Err()))
		return "finished anyway", nil
	})
	mustHandle(t, eng, "bad", func(ctx context.Context, in dagflow.Input) (any, error) {
		<-started
		return nil, errors.New("bad")
	})
	mustHandle(t, eng, "never", func(ctx context.Context, in dagflow.Input) (any, error) {
		t.Error("a step started after the run failed")
		return nil, nil
	})
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "failpol", Steps: []dagflow.Step{
		{ID: "slow", Handler: "slow", Parallel: true},
		{ID: "bad", Handler: "bad", Parallel: true},
		{ID: "later", Handler: "never", DependsOn: []string{"slow"}},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, "failpol", func(st *dagflow.Status) bool { return slices.Contains(st.FailedSteps, "bad") })
	close(release)
	st, err := eng.Wait(ctx, "failpol")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]dagflow.State{"slow": dagflow.StateCompleted, "bad": dagflow.StateFailed, "later": dagflow.StateSkipped}
	if d := cmp.Diff(want, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if ctxErr.Load() != "<nil>" {
		t.Errorf("the running step's context was cancelled: %v", ctxErr.Load())
	}
}

// waitFor polls a run's status until cond holds.
func waitFor(t testing.TB, eng *dagflow.Engine, id string, cond func(*dagflow.Status) bool) *dagflow.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := eng.Status(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: condition not met; status %+v", id, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestCancelDuringFanOut(t *testing.T) {
	eng := newEngine(t, dagflow.WithConcurrency(4))
	var started, cancelled atomic.Int64
	var log calls
	mustHandle(t, eng, "wait", func(ctx context.Context, in dagflow.Input) (any, error) {
		started.Add(1)
		<-ctx.Done()
		cancelled.Add(1)
		return nil, ctx.Err()
	})
	mustHandle(t, eng, "quick", func(ctx context.Context, in dagflow.Input) (any, error) { return "ok", nil })
	mustHandle(t, eng, "undo", func(ctx context.Context, in dagflow.Input) (any, error) {
		log.add("undo-" + in.StepID)
		return nil, nil
	})
	wf := dagflow.Workflow{ID: "cancel", Saga: true, Steps: []dagflow.Step{{ID: "root", Handler: "quick", Compensation: "undo"}}}
	for i := 0; i < 10; i++ {
		wf.Steps = append(wf.Steps, dagflow.Step{ID: fmt.Sprintf("w%d", i), Handler: "wait", DependsOn: []string{"root"}, Parallel: true})
	}
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, "cancel", func(*dagflow.Status) bool { return started.Load() == 4 })
	if _, err := eng.Cancel(ctx, "cancel"); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Wait(ctx, "cancel")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCancelled || st.Error != "cancelled" {
		t.Fatalf("state %s error %q", st.State, st.Error)
	}
	if started.Load() != 4 || cancelled.Load() != 4 {
		t.Errorf("started %d, cancelled %d; want 4 and 4 (no step starts after Cancel)", started.Load(), cancelled.Load())
	}
	counts := map[dagflow.State]int{}
	for _, s := range st.Steps {
		counts[s.State]++
	}
	if counts[dagflow.StateCancelled] != 10 || counts[dagflow.StateCompensated] != 1 {
		t.Errorf("step states %v", counts)
	}
	if d := cmp.Diff([]string{"undo-root"}, log.get()); d != "" {
		t.Errorf("compensations (-want +got):\n%s", d)
	}
	// Cancelling a run that ended changes nothing and says why.
	_, err = eng.Cancel(ctx, "cancel")
	var se *dagflow.StateError
	if !errors.As(err, &se) || !errors.Is(err, dagflow.ErrConflict) || se.State != "cancelled" {
		t.Errorf("Cancel of a cancelled run = %v", err)
	}
}

func TestRetryRunsOnlyFailedSteps(t *testing.T) {
	eng := newEngine(t)
	var log calls
	var broken atomic.Bool
	broken.Store(true)
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		log.add(in.StepID)
		if in.StepID == "b" && broken.Load() {
			return nil, errors.New("b is broken")
		}
		return in.StepID + "-result", nil
	})
	par := func(s dagflow.Step) dagflow.Step { s.Parallel = true; return s }
	wf := dagflow.Workflow{ID: "redrive", OnStepFailure: dagflow.ContinueOnFailure, Steps: []dagflow.Step{
		par(step("a", "h")), par(step("b", "h")), par(step("c", "h", "b")), par(step("d", "h", "a")),
	}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	ctx := ctxT(t)
	// Retry while still broken: fails again, and can be retried again.
	if _, err := eng.Retry(ctx, "redrive"); err != nil {
		t.Fatal(err)
	}
	if st, _ = eng.Wait(ctx, "redrive"); st.State != dagflow.StateFailed || st.Generation != 1 {
		t.Fatalf("after first retry: %s gen %d", st.State, st.Generation)
	}
	broken.Store(false)
	if _, err := eng.Retry(ctx, "redrive"); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Wait(ctx, "redrive")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted || st.Generation != 2 {
		t.Fatalf("after second retry: %s gen %d (%s)", st.State, st.Generation, st.Error)
	}
	got := log.get()
	count := map[string]int{}
	for _, id := range got {
		count[id]++
	}
	if d := cmp.Diff(map[string]int{"a": 1, "d": 1, "b": 3, "c": 1}, count); d != "" {
		t.Errorf("calls per step (-want +got):\n%s", d)
	}
	if string(st.Results["c"]) != `"c-result"` || string(st.Results["a"]) != `"a-result"` {
		t.Errorf("results %v", st.Results)
	}
	for _, s := range st.Steps {
		if s.ID == "b" && s.Attempts != 1 {
			t.Errorf("b attempts after retry = %d, want 1 (a fresh budget)", s.Attempts)
		}
	}
	// A completed run cannot be retried.
	_, err = eng.Retry(ctx, "redrive")
	var se *dagflow.StateError
	if !errors.As(err, &se) || se.State != "completed" || !errors.Is(err, dagflow.ErrConflict) {
		t.Errorf("Retry of a completed run = %v", err)
	}
}

func TestRetryRefusedForRunningAndCompensated(t *testing.T) {
	eng := newEngine(t)
	block := make(chan struct{})
	mustHandle(t, eng, "block", func(ctx context.Context, in dagflow.Input) (any, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil, nil
	})
	mustHandle(t, eng, "fail", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, errors.New("no") })
	mustHandle(t, eng, "ok", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "busy", Steps: []dagflow.Step{step("a", "block")}}); err != nil {
		t.Fatal(err)
	}
	_, err := eng.Retry(ctx, "busy")
	if !errors.Is(err, dagflow.ErrConflict) {
		t.Errorf("Retry of a running run = %v", err)
	}
	close(block)
	st := run(t, eng, dagflow.Workflow{ID: "comp", Saga: true, Steps: []dagflow.Step{
		{ID: "a", Handler: "ok", Compensation: "ok"}, step("b", "fail", "a"),
	}})
	if st.State != dagflow.StateFailed || len(st.CompensatedSteps) != 1 {
		t.Fatalf("saga: %s %v", st.State, st.CompensatedSteps)
	}
	_, err = eng.Retry(ctx, "comp")
	if !errors.Is(err, dagflow.ErrConflict) || !strings.Contains(err.Error(), "its saga compensated every completed step") {
		t.Errorf("Retry of a compensated saga = %v", err)
	}
	if st2, _ := eng.Status(ctx, "comp"); st2.State != dagflow.StateFailed || st2.Generation != 0 {
		t.Errorf("a refused Retry changed the run: %s gen %d", st2.State, st2.Generation)
	}
}

func TestCompensationOnNonSagaIsInvalid(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
	_, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "x", Steps: []dagflow.Step{{ID: "a", Handler: "h", Compensation: "h"}}})
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) || ve.Problems[0].Path != "steps[0].compensation" {
		t.Fatalf("err = %v", err)
	}
}

// TestSagaPropertyReverseOrder runs random sagas over random DAGs with
// random failing steps and checks that exactly the completed steps are
// compensated, in reverse order of completion.
func TestSagaPropertyReverseOrder(t *testing.T) {
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	eng := newEngine(t, dagflow.WithConcurrency(4))
	var mu sync.Mutex
	forward := map[string]map[string]bool{} // run -> steps whose handler succeeded
	undo := map[string][]string{}
	fails := map[string]map[string]bool{}
	mustHandle(t, eng, "do", func(ctx context.Context, in dagflow.Input) (any, error) {
		mu.Lock()
		fail := fails[in.WorkflowID][in.StepID]
		mu.Unlock()
		time.Sleep(time.Duration(r2(in.StepID)) * 100 * time.Microsecond)
		if fail {
			return nil, dagflow.Permanent(errors.New("injected"))
		}
		mu.Lock()
		forward[in.WorkflowID][in.StepID] = true
		mu.Unlock()
		return nil, nil
	})
	mustHandle(t, eng, "undo", func(ctx context.Context, in dagflow.Input) (any, error) {
		mu.Lock()
		undo[in.WorkflowID] = append(undo[in.WorkflowID], in.StepID)
		mu.Unlock()
		return nil, nil
	})
	for iter := 0; iter < 30; iter++ {
		id := fmt.Sprintf("saga-%d", iter)
		n := 2 + r.IntN(12)
		wf := dagflow.Workflow{ID: id, Saga: true}
		if r.IntN(2) == 0 {
			wf.OnStepFailure = dagflow.ContinueOnFailure
		}
		mu.Lock()
		fails[id], forward[id] = map[string]bool{}, map[string]bool{}
		for i := 0; i < n; i++ {
			s := dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: "do", Parallel: r.IntN(3) > 0}
			if r.IntN(4) > 0 {
				s.Compensation = "undo"
			}
			for j := 0; j < i; j++ {
				if r.IntN(4) == 0 {
					s.DependsOn = append(s.DependsOn, fmt.Sprintf("s%d", j))
				}
			}
			if r.IntN(6) == 0 {
				fails[id][s.ID] = true
			}
			wf.Steps = append(wf.Steps, s)
		}
		mu.Unlock()
		st := run(t, eng, wf)
		mu.Lock()
		anyFail := len(fails[id]) > 0
		var completedWithComp []string
		for _, c := range st.CompletedSteps {
			if !forward[id][c] {
				t.Errorf("seed %d %s: %s listed completed but its handler failed", seed, id, c)
			}
			for _, s := range wf.Steps {
				if s.ID == c && s.Compensation != "" {
					completedWithComp = append(completedWithComp, c)
				}
			}
		}
		got := undo[id]
		mu.Unlock()
		if !anyFail {
			if st.State != dagflow.StateCompleted || len(got) != 0 {
				t.Errorf("seed %d %s: no failure injected but state %s, compensations %v", seed, id, st.State, got)
			}
			continue
		}
		if st.State != dagflow.StateFailed {
			t.Errorf("seed %d %s: state %s", seed, id, st.State)
		}
		slices.Reverse(completedWithComp)
		if d := cmp.Diff(completedWithComp, got, cmpEmpty); d != "" {
			t.Errorf("seed %d %s: compensations are not the completed steps in reverse completion order (-want +got):\n%s", seed, id, d)
		}
		if d := cmp.Diff(completedWithComp, st.CompensatedSteps, cmpEmpty); d != "" {
			t.Errorf("seed %d %s: compensatedSteps (-want +got):\n%s", seed, id, d)
		}
	}
}

var cmpEmpty = cmp.Transformer("empty", func(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
})

// r2 spreads step durations a little so that completion orders vary.
func r2(s string) int { return int(s[len(s)-1]) % 5 }

// TestCancelledSagaCompensatesWithALiveContext: Cancel cancels the running
// steps' contexts, but the compensations that follow get contexts of their
// own.
func TestCancelledSagaCompensatesWithALiveContext(t *testing.T) {
	eng := newEngine(t)
	started := make(chan struct{})
	mustHandle(t, eng, "done", func(ctx context.Context, in dagflow.Input) (any, error) { return "ok", nil })
	mustHandle(t, eng, "hang", func(ctx context.Context, in dagflow.Input) (any, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	var undoErr atomic.Value
	mustHandle(t, eng, "undo", func(ctx context.Context, in dagflow.Input) (any, error) {
		undoErr.Store(fmt.Sprint(ctx.Err()))
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
			return "undone", nil
		}
	})
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "cs", Saga: true, Steps: []dagflow.Step{
		{ID: "a", Handler: "done", Compensation: "undo"},
		{ID: "b", Handler: "hang", DependsOn: []string{"a"}},
	}}); err != nil {
		t.Fatal(err)
	}
	<-started
	if _, err := eng.Cancel(ctx, "cs"); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Wait(ctx, "cs")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCancelled || !slices.Equal(st.CompensatedSteps, []string{"a"}) || undoErr.Load() != "<nil>" {
		t.Fatalf("state %s, compensated %v, compensation's context: %v (%s)", st.State, st.CompensatedSteps, undoErr.Load(), st.Error)
	}
}
