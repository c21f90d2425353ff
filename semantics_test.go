package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// TestRetryRerunsDownstream: Retry after a "continue" run runs the failed
// and skipped steps again and every step downstream of them, such as a
// fan-in that allowed failed dependencies and aggregated a partial set in
// the first round; the run then reports the fresh aggregate.
func TestRetryRerunsDownstream(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	var fail atomic.Bool
	fail.Store(true)
	mustHandle(t, eng, "part", func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.StepID == "b" && fail.Load() {
			return nil, errors.New("b is down")
		}
		return in.StepID, nil
	})
	var aggregates atomic.Int64
	mustHandle(t, eng, "aggregate", func(ctx context.Context, in dagflow.Input) (any, error) {
		aggregates.Add(1)
		var got []string
		for id := range in.PreviousSteps.All() {
			got = append(got, id)
		}
		return strings.Join(got, "+"), nil
	})
	wf := dagflow.Workflow{ID: "agg", OnStepFailure: dagflow.ContinueOnFailure, Steps: []dagflow.Step{
		{ID: "a", Handler: "part", Parallel: true},
		{ID: "b", Handler: "part", Parallel: true},
		{ID: "sum", Handler: "aggregate", DependsOn: []string{"a", "b"}, AllowFailedDeps: true},
	}}
	if _, err := eng.Create(ctxT(t), wf); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "agg")
	if string(st.Results["sum"]) != `"a"` {
		t.Fatalf("first round: sum %s", st.Results["sum"])
	}
	fail.Store(false)
	if _, err := eng.Retry(ctxT(t), "agg"); err != nil {
		t.Fatal(err)
	}
	st = dagflowtest.RequireCompleted(t, eng, "agg")
	if string(st.Results["sum"]) != `"a+b"` || aggregates.Load() != 2 {
		t.Errorf("after the retry: sum %s, aggregated %d times; want the fresh a+b", st.Results["sum"], aggregates.Load())
	}
}

// TestRetryFinishesRollback: a saga whose compensation failed for good can
// be retried: Retry runs the failed compensations again, and the run ends
// as it ended before, rolled back this time.
func TestRetryFinishesRollback(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	var refundDown atomic.Bool
	refundDown.Store(true)
	var refunds atomic.Int64
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	mustHandle(t, eng, "refund", func(ctx context.Context, in dagflow.Input) (any, error) {
		if refundDown.Load() {
			return nil, dagflow.Permanent(errors.New("refunds are down"))
		}
		refunds.Add(1)
		return nil, nil
	})
	mustHandle(t, eng, "release", dagflowtest.Script().Handler)
	mustHandle(t, eng, "fail", dagflowtest.Script(dagflowtest.Fail(dagflow.Permanent(errors.New("no truck")))).Handler)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "s", Saga: true, Steps: []dagflow.Step{
		{ID: "reserve", Handler: "ok", Compensation: "release"},
		{ID: "charge", Handler: "ok", Compensation: "refund", DependsOn: []string{"reserve"}},
		handlerStep("ship", "fail", "charge"),
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "s")
	dagflowtest.RequireStepState(t, st, "charge", dagflow.StateCompensationFailed)
	dagflowtest.RequireStepState(t, st, "reserve", dagflow.StateCompensated)
	if !strings.Contains(st.Error, `compensation of step "charge" failed: refunds are down`) {
		t.Errorf("error %q", st.Error)
	}
	refundDown.Store(false)
	if _, err := eng.Retry(ctxT(t), "s"); err != nil {
		t.Fatalf("Retry of a saga whose rollback did not finish: %v", err)
	}
	st = dagflowtest.RequireFailed(t, eng, "s")
	dagflowtest.RequireStepState(t, st, "charge", dagflow.StateCompensated)
	if refunds.Load() != 1 || st.Error != `step "ship" failed: no truck` {
		t.Errorf("refunds %d, error %q", refunds.Load(), st.Error)
	}
	// Rolled back now: nothing left to retry.
	if _, err := eng.Retry(ctxT(t), "s"); !errors.Is(err, dagflow.ErrConflict) || !strings.Contains(err.Error(), "compensated every completed step") {
		t.Errorf("Retry of a rolled-back saga = %v", err)
	}
}

// TestRetryRound: a retried run is a new round: attempts count from 1 again,
// and HTTP jobs get "generation" and a new Idempotency-Key, so that a
// handler that keeps replies by key runs the work again.
func TestRetryRound(t *testing.T) {
	var mu sync.Mutex
	cache := map[string]string{} // a Stripe-style handler: one reply per key
	var seen []string
	var down atomic.Bool
	down.Store(true)
	h, err := httpstep.Handler(func(ctx context.Context, req httpstep.Request) (any, error) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s gen=%d attempt=%d", req.IdempotencyKey, req.Generation, req.Attempt))
		if reply, ok := cache[req.IdempotencyKey]; ok {
			if reply == "fail" {
				return nil, httpstep.Permanent(errors.New("cached failure"))
			}
			return reply, nil
		}
		if down.Load() {
			cache[req.IdempotencyKey] = "fail"
			return nil, httpstep.Permanent(errors.New("card declined"))
		}
		cache[req.IdempotencyKey] = "charged"
		return "charged", nil
	}, httpstep.WithoutVerification())
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	eng, _ := dagflowtest.NewEngine(t)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "o-1", Steps: []dagflow.Step{{ID: "charge", URL: srv.URL}}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireFailed(t, eng, "o-1")
	down.Store(false)
	if _, err := eng.Retry(ctxT(t), "o-1"); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireCompleted(t, eng, "o-1")
	want := []string{"o-1/charge gen=0 attempt=1", "o-1/charge/retry-1 gen=1 attempt=1"}
	if d := cmp.Diff(want, seen); d != "" {
		t.Errorf("requests (-want +got):\n%s", d)
	}
	if st.Generation != 1 {
		t.Errorf("generation %d", st.Generation)
	}
}

// TestTimeoutCancelsRunningStep: one rule for a cancel and a timeout: the
// step they cut short, and those that never started, end cancelled.
func TestTimeoutCancelsRunningStep(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "block", func(ctx context.Context, in dagflow.Input) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	for _, tc := range []struct {
		id     string
		cancel bool
	}{{"timed-out", false}, {"cancelled", true}} {
		wf := dagflow.Workflow{ID: tc.id, Steps: []dagflow.Step{handlerStep("a", "block"), handlerStep("b", "block", "a")}}
		if !tc.cancel {
			wf.Timeout = 100 * time.Millisecond
		}
		if _, err := eng.Create(ctxT(t), wf); err != nil {
			t.Fatal(err)
		}
		if tc.cancel {
			dagflowtest.WaitFor(t, eng, tc.id, func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateRunning })
			if _, err := eng.Cancel(ctxT(t), tc.id); err != nil {
				t.Fatal(err)
			}
		}
		st := dagflowtest.Final(t, eng, tc.id)
		dagflowtest.RequireStepState(t, st, "a", dagflow.StateCancelled)
		dagflowtest.RequireStepState(t, st, "b", dagflow.StateCancelled)
		wantState, wantCause := dagflow.StateFailed, dagflow.CauseTimeout
		if tc.cancel {
			wantState, wantCause = dagflow.StateCancelled, dagflow.CauseCancelled
		}
		if st.State != wantState || st.Cause != wantCause {
			t.Errorf("%s: run %s, cause %q", tc.id, st.State, st.Cause)
		}
	}
}

// TestTypedHandlers: Typed decodes the context into a Go value and takes a
// Go result; ResultOf reads a dependency's result; a context that does not
// decode fails the attempt for good, saying why.
func TestTypedHandlers(t *testing.T) {
	type Order struct {
		ID     string  `json:"orderId"`
		Amount float64 `json:"amount"`
	}
	type Receipt struct {
		ChargeID string  `json:"chargeId"`
		Amount   float64 `json:"amount"`
	}
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "charge", dagflow.Typed(func(ctx context.Context, o Order, in dagflow.Input) (Receipt, error) {
		return Receipt{ChargeID: "ch_" + o.ID, Amount: o.Amount}, nil
	}))
	var got Receipt
	mustHandle(t, eng, "email", func(ctx context.Context, in dagflow.Input) (any, error) {
		var err error
		got, err = dagflow.ResultOf[Receipt](in, "charge")
		return nil, err
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "t", Context: json.RawMessage(`{"orderId":"o7","amount":12.5}`), Steps: []dagflow.Step{
		handlerStep("charge", "charge"), handlerStep("email", "email", "charge"),
	}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireCompleted(t, eng, "t")
	if got != (Receipt{"ch_o7", 12.5}) {
		t.Errorf("email saw %+v", got)
	}
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "bad", Context: json.RawMessage(`{"orderId":7}`),
		Steps: []dagflow.Step{{ID: "charge", Handler: "charge", Retries: &dagflow.RetryConfig{MaxAttempts: 3}}}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "bad")
	dagflowtest.RequireStepAttempts(t, st, "charge", 1)
	if !strings.Contains(st.Error, "decoding the context") {
		t.Errorf("error %q", st.Error)
	}
}

// TestInputHelpers: NewResults builds Results for a handler's own tests;
// DecodeContext reads an empty context as {}.
func TestInputHelpers(t *testing.T) {
	res, err := dagflow.NewResults(map[string]any{"charge": map[string]string{"id": "ch_1"}, "reserve": 3})
	if err != nil {
		t.Fatal(err)
	}
	in := dagflow.Input{WorkflowID: "w", StepID: "s", PreviousSteps: res}
	var charge struct{ ID string }
	if err := in.PreviousSteps.Decode("charge", &charge); err != nil || charge.ID != "ch_1" {
		t.Errorf("Decode = %+v, %v", charge, err)
	}
	if n, err := dagflow.ResultOf[int](in, "reserve"); err != nil || n != 3 {
		t.Errorf("ResultOf = %d, %v", n, err)
	}
	body, _ := json.Marshal(in)
	if !strings.Contains(string(body), `"previousSteps":{"charge":{"result":{"id":"ch_1"}},"reserve":{"result":3}}`) {
		t.Errorf("body %s", body)
	}
	var v map[string]any
	if err := in.DecodeContext(&v); err != nil || len(v) != 0 {
		t.Errorf("DecodeContext of an empty context = %v, %v", v, err)
	}
	if _, err := dagflow.NewResults(map[string]any{"x": make(chan int)}); err == nil {
		t.Error("NewResults took a value that cannot be encoded")
	}
}

// TestDeleteAndRetention: Delete removes an ended run (children too); a
// running one is refused; WithRetention removes ended runs in the
// background.
func TestDeleteAndRetention(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t, dagflow.WithRetention(time.Hour))
	block := make(chan struct{})
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	mustHandle(t, eng, "block", func(ctx context.Context, in dagflow.Input) (any, error) { <-block; return nil, nil })
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "done", Steps: []dagflow.Step{
		{ID: "c", Workflow: &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("a", "ok")}}},
	}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireCompleted(t, eng, "done")
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "busy", Steps: []dagflow.Step{handlerStep("a", "block")}}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Delete(ctx, "busy"); !errors.Is(err, dagflow.ErrConflict) {
		t.Errorf("Delete of a running run = %v", err)
	}
	var se *dagflow.StateError
	if err := eng.Delete(ctx, "done/c"); !errors.As(err, &se) || !strings.Contains(se.Reason, "delete the parent") {
		t.Errorf("Delete of a child run on its own = %v, want a *StateError saying to delete the parent", err)
	}
	if _, err := eng.Status(ctx, "done/c"); err != nil {
		t.Errorf("a refused Delete removed the child run: %v", err)
	}
	if err := eng.Delete(ctx, "done"); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"done", "done/c"} {
		if _, err := eng.Status(ctx, id); !errors.Is(err, dagflow.ErrNotFound) {
			t.Errorf("Status(%s) after Delete = %v", id, err)
		}
	}
	if err := eng.Delete(ctx, "done"); !errors.Is(err, dagflow.ErrNotFound) {
		t.Errorf("Delete twice = %v", err)
	}
	close(block)
	dagflowtest.RequireCompleted(t, eng, "busy")
	clock.Advance(30 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	if _, err := eng.Status(ctx, "busy"); err != nil {
		t.Fatalf("a run within its retention is gone: %v", err)
	}
	clock.Advance(40 * time.Minute)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := eng.Status(ctx, "busy"); errors.Is(err, dagflow.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a run past its retention was not deleted")
		}
		clock.Advance(time.Minute)
		time.Sleep(5 * time.Millisecond)
	}
	if runs, _ := eng.Retention(); runs != time.Hour {
		t.Errorf("Retention = %v", runs)
	}
}

// TestOpenNeedsAStore: Open without WithPath or WithStore is an error, not a
// file made in the working directory.
func TestOpenNeedsAStore(t *testing.T) {
	if _, err := dagflow.Open(); err == nil || !strings.Contains(err.Error(), "no store: give WithPath") {
		t.Errorf("Open() = %v", err)
	}
}

// TestSecretsRedacted: a secret in a step URL's query string does not reach
// step errors, the status or the webhook body.
func TestSecretsRedacted(t *testing.T) {
	bodies := make(chan []byte, 1)
	hook := httptest.NewServer(jsonHandler(func(b []byte) {
		select {
		case bodies <- b:
		default:
		}
	}))
	defer hook.Close()
	eng := newEngine(t)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "r", OnError: hook.URL, Steps: []dagflow.Step{
		{ID: "a", URL: "http://127.0.0.1:1/charge?apikey=SECRETKEY&x=1"},
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "r")
	var body []byte
	select {
	case body = <-bodies:
	case <-time.After(5 * time.Second):
		t.Fatal("no webhook")
	}
	status, _ := json.Marshal(st)
	atts, _ := eng.Attempts(ctxT(t), "r")
	attJSON, _ := json.Marshal(atts)
	for what, text := range map[string]string{"status": string(status), "webhook body": string(body), "attempts": string(attJSON)} {
		if strings.Contains(text, "SECRETKEY") {
			t.Errorf("the %s shows the secret: %s", what, text)
		}
	}
	if !strings.Contains(st.Error, "apikey=REDACTED") {
		t.Errorf("error %q does not show where it went", st.Error)
	}
}

// TestValidationLimits: what only failed at run time is refused up front:
// a blank URL, a port out of range, a timeout under a millisecond, an
// enormous URL (quoted short), a bidirectional override in an id; and a long
// list of problems is printed cut.
func TestValidationLimits(t *testing.T) {
	huge := "https://app/" + strings.Repeat("x", 100_000)
	w := dagflow.Workflow{ID: "x-\u202egnp.exe", Steps: []dagflow.Step{
		{ID: "blank", URL: "   "},
		{ID: "port", URL: "https://app:99999/a"},
		{ID: "tiny", URL: "https://app/a", Timeout: 100 * time.Nanosecond},
		{ID: "huge", URL: huge},
	}}
	err := w.Validate()
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	want := []string{
		`id: "x-\u202egnp.exe" contains the bidirectional control character U+202E, which can make text display as something else`,
		"steps[0].url: is blank",
		`steps[1].url: has port "99999"; a port is 1 to 65535`,
		"steps[2].timeout: must be at least 1ms, got 100ns",
		"steps[3].url: is 100012 bytes long; the limit is 8192",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
	if len(err.Error()) > 2000 {
		t.Errorf("the error is %d bytes long", len(err.Error()))
	}
	many := dagflow.Workflow{ID: "many"}
	for i := 0; i < 200; i++ {
		many.Steps = append(many.Steps, dagflow.Step{ID: fmt.Sprint("s", i)})
	}
	err = many.Validate()
	if !strings.Contains(err.Error(), "200 problems:") || !strings.Contains(err.Error(), "... and 150 more") || strings.Count(err.Error(), "\n") > 52 {
		t.Errorf("a long list of problems: %d lines, %.200q", strings.Count(err.Error(), "\n"), err.Error())
	}
}

// TestPreviousSteps: a step sees its ancestors' results, deterministic and
// bounded, not a parallel branch's; "previousSteps": "all" sends every step
// completed when the attempt started.
func TestPreviousSteps(t *testing.T) {
	for _, mode := range []dagflow.PreviousSteps{"", dagflow.PreviousAll} {
		eng, _ := dagflowtest.NewEngine(t)
		var mu sync.Mutex
		seen := map[string][]string{}
		mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
			var ids []string
			for id := range in.PreviousSteps.All() {
				ids = append(ids, id)
			}
			mu.Lock()
			seen[in.StepID] = ids
			mu.Unlock()
			return in.StepID, nil
		})
		// a -> b -> d, and c alone, which runs before d (serial order).
		if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "p", PreviousSteps: mode, Steps: []dagflow.Step{
			handlerStep("a", "h"), handlerStep("b", "h", "a"), handlerStep("c", "h"), handlerStep("d", "h", "b"),
		}}); err != nil {
			t.Fatal(err)
		}
		dagflowtest.RequireCompleted(t, eng, "p")
		wantD := []string{"a", "b"}
		if mode == dagflow.PreviousAll {
			wantD = []string{"a", "b", "c"}
		}
		if d := cmp.Diff(wantD, seen["d"]); d != "" {
			t.Errorf("mode %q: d saw (-want +got):\n%s", mode, d)
		}
		if len(seen["c"]) != 0 && mode == "" {
			t.Errorf("c, which depends on nothing, saw %v", seen["c"])
		}
		if !slices.Equal(seen["b"], []string{"a"}) {
			t.Errorf("mode %q: b saw %v", mode, seen["b"])
		}
	}
}

// jsonHandler is an HTTP handler that hands each request body to got and
// replies 200.
func jsonHandler(got func([]byte)) http.Handler {
	var mu sync.Mutex
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got(b)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	})
}

// TestRerunRefusals: Rerun refuses a step whose dependency did not
// complete, a rolled-back saga and a child run; Retry refuses a child run.
func TestRerunRefusals(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	mustHandle(t, eng, "fail", dagflowtest.Script(dagflowtest.Fail(dagflow.Permanent(errors.New("no")))).Handler)
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "a", Steps: []dagflow.Step{handlerStep("charge", "fail"), handlerStep("ship", "ok", "charge")}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireFailed(t, eng, "a")
	if _, err := eng.Rerun(ctx, "a", "ship"); !errors.Is(err, dagflow.ErrConflict) || !strings.Contains(err.Error(), `its dependency "charge" did not complete`) {
		t.Errorf("Rerun of a step after a failed one = %v", err)
	}
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "s", Saga: true, Steps: []dagflow.Step{
		{ID: "charge", Handler: "ok", Compensation: "ok"}, handlerStep("ship", "fail", "charge")}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireFailed(t, eng, "s")
	if _, err := eng.Rerun(ctx, "s", "ship"); !errors.Is(err, dagflow.ErrConflict) || !strings.Contains(err.Error(), "compensated") {
		t.Errorf("Rerun of a rolled-back saga = %v", err)
	}
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "p", Steps: []dagflow.Step{
		{ID: "c", Workflow: &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("x", "fail")}}}}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireFailed(t, eng, "p")
	for name, call := range map[string]func() error{
		"Retry": func() error { _, err := eng.Retry(ctx, "p/c"); return err },
		"Rerun": func() error { _, err := eng.Rerun(ctx, "p/c", "x"); return err },
	} {
		if err := call(); !errors.Is(err, dagflow.ErrConflict) || !strings.Contains(err.Error(), `child run of "p"`) {
			t.Errorf("%s of a child run = %v", name, err)
		}
	}
	// Rerun of a completed step runs it and what follows it.
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "ok", Steps: []dagflow.Step{handlerStep("a", "ok"), handlerStep("b", "ok", "a")}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireCompleted(t, eng, "ok")
	if _, err := eng.Rerun(ctx, "ok", "a"); err != nil {
		t.Fatal(err)
	}
	if st := dagflowtest.RequireCompleted(t, eng, "ok"); st.Generation != 1 {
		t.Errorf("generation %d after Rerun", st.Generation)
	}
}

// TestRetentionPastChildren: ended child runs of a parent that is still
// running fill more than a page of the oldest ended runs; retention goes on
// past them and deletes an older run, and keeps the parent and its
// children.
func TestRetentionPastChildren(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t, dagflow.WithRetention(time.Hour))
	ctx := ctxT(t)
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	hold := make(chan struct{})
	mustHandle(t, eng, "hold", func(ctx context.Context, in dagflow.Input) (any, error) { <-hold; return nil, nil })
	defer close(hold)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "old", Steps: []dagflow.Step{handlerStep("a", "ok")}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireCompleted(t, eng, "old")
	clock.Advance(time.Second)
	items, _ := json.Marshal(make([]int, 250))
	last := handlerStep("last", "hold")
	last.DependsOn, last.Timeout = []string{"each"}, 24*time.Hour
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "p", Context: json.RawMessage(`{"n":` + string(items) + `}`), Steps: []dagflow.Step{
		{ID: "each", Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.n"}},
			Workflow: &dagflow.Workflow{Steps: []dagflow.Step{handlerStep("w", "ok")}}},
		last,
	}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.WaitFor(t, eng, "p", func(st *dagflow.Status) bool { return stepOf(st, "last").State == dagflow.StateRunning })
	clock.Advance(2 * time.Hour) // the old run and the children at once
	deadline := time.Now().Add(10 * time.Second)
	for {
		clock.Advance(2 * time.Minute)
		time.Sleep(5 * time.Millisecond)
		if _, err := eng.Status(ctx, "old"); errors.Is(err, dagflow.ErrNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the old run, behind 250 ended child runs of a running parent, was not deleted")
		}
	}
	for _, id := range []string{"p", "p/each/0", "p/each/249"} {
		if _, err := eng.Status(ctx, id); err != nil {
			t.Errorf("Status(%s) = %v: retention deleted what it must keep", id, err)
		}
	}
}
