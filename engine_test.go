package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/internal/faultstore"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
	"github.com/dagflow/dagflow/store/memory"
)

// testLogger sends the engine's warnings and errors to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newEngine(t testing.TB, opts ...dagflow.Option) *dagflow.Engine {
	t.Helper()
	eng, err := dagflow.Open(append([]dagflow.Option{dagflow.WithStore(memory.New()), dagflow.WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// run creates a workflow and waits for its end.
func run(t testing.TB, eng *dagflow.Engine, wf dagflow.Workflow) *dagflow.Status {
	t.Helper()
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatalf("Create: %v", err)
	}
	st, err := eng.Wait(ctx, wf.ID)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

func mustHandle(t testing.TB, eng *dagflow.Engine, name string, h dagflow.HandlerFunc) {
	t.Helper()
	if err := eng.Handle(name, h); err != nil {
		t.Fatal(err)
	}
}

func stepStates(st *dagflow.Status) map[string]dagflow.State {
	m := map[string]dagflow.State{}
	for _, s := range st.Steps {
		m[s.ID] = s.State
	}
	return m
}

func step(id, handler string, deps ...string) dagflow.Step {
	return dagflow.Step{ID: id, Handler: handler, DependsOn: deps}
}

// recorder is a handler that records the order of its calls and returns a
// result naming the step.
type recorder struct {
	mu    sync.Mutex
	calls []string
}

func (r *recorder) handle(ctx context.Context, in dagflow.Input) (any, error) {
	r.mu.Lock()
	r.calls = append(r.calls, in.StepID)
	r.mu.Unlock()
	return map[string]string{"done": in.StepID}, nil
}

func (r *recorder) order() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func TestChainPassesResults(t *testing.T) {
	eng := newEngine(t)
	// The hosted docs' order chain: each step reads the previous one's
	// result and the workflow context.
	mustHandle(t, eng, "order", func(ctx context.Context, in dagflow.Input) (any, error) {
		var c struct {
			OrderID string `json:"orderId"`
		}
		if err := in.DecodeContext(&c); err != nil {
			return nil, err
		}
		var prev []string
		for id := range in.PreviousSteps.All() {
			prev = append(prev, id)
		}
		return map[string]any{"order": c.OrderID, "step": in.StepID, "saw": prev}, nil
	})
	wf := dagflow.Workflow{
		ID:      "order-1",
		Context: json.RawMessage(`{"orderId": "order_123"}`),
		Steps: []dagflow.Step{
			step("validate-order", "order"),
			step("charge-payment", "order", "validate-order"),
			step("ship-order", "order", "charge-payment"),
			step("send-confirmation", "order", "ship-order"),
		},
	}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state = %s (%s)", st.State, st.Error)
	}
	want := []string{"validate-order", "charge-payment", "ship-order", "send-confirmation"}
	if d := cmp.Diff(want, st.CompletedSteps); d != "" {
		t.Errorf("completedSteps (-want +got):\n%s", d)
	}
	var last struct {
		Order string   `json:"order"`
		Saw   []string `json:"saw"`
	}
	if err := json.Unmarshal(st.Results["send-confirmation"], &last); err != nil {
		t.Fatal(err)
	}
	if last.Order != "order_123" || !slices.Equal(last.Saw, want[:3]) {
		t.Errorf("send-confirmation saw %+v, want order_123 and %v", last, want[:3])
	}
	if string(st.Context) != `{"orderId":"order_123"}` {
		t.Errorf("status context = %s", st.Context)
	}
	for _, s := range st.Steps {
		if s.Attempts != 1 || s.StartedAt.IsZero() || s.CompletedAt.Before(s.StartedAt) {
			t.Errorf("step %s: attempts %d, started %v, completed %v", s.ID, s.Attempts, s.StartedAt, s.CompletedAt)
		}
	}
	if st.StartedAt.IsZero() || st.CompletedAt.Before(st.StartedAt) {
		t.Errorf("run times: %v .. %v", st.StartedAt, st.CompletedAt)
	}
}

func TestFanOutFanIn(t *testing.T) {
	eng := newEngine(t, dagflow.WithConcurrency(8))
	var running, peak atomic.Int64
	release := make(chan struct{})
	var once sync.Once
	mustHandle(t, eng, "work", func(ctx context.Context, in dagflow.Input) (any, error) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		if n == 8 {
			once.Do(func() { close(release) })
		}
		select {
		case <-release:
		case <-time.After(5 * time.Second):
		}
		running.Add(-1)
		return len(in.StepID), nil
	})
	mustHandle(t, eng, "sum", func(ctx context.Context, in dagflow.Input) (any, error) {
		total := 0
		for _, raw := range in.PreviousSteps.All() {
			var n int
			if err := json.Unmarshal(raw, &n); err == nil {
				total += n
			}
		}
		return total, nil
	})
	wf := dagflow.Workflow{ID: "fan", Steps: []dagflow.Step{step("start", "sum")}}
	var deps []string
	for i := 0; i < 20; i++ {
		id := fmt.Sprintf("item-%02d", i)
		s := step(id, "work", "start")
		s.Parallel = true
		wf.Steps = append(wf.Steps, s)
		deps = append(deps, id)
	}
	wf.Steps = append(wf.Steps, step("total", "sum", deps...))
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state %s: %s", st.State, st.Error)
	}
	if string(st.Results["total"]) != "140" {
		t.Errorf("fan-in total = %s, want 140 (20 results of 7)", st.Results["total"])
	}
	if p := peak.Load(); p != 8 {
		t.Errorf("peak concurrency %d, want 8 (WithConcurrency)", p)
	}
}

func TestNonParallelStepsRunOneAtATimeInDeclarationOrder(t *testing.T) {
	eng := newEngine(t)
	var running, overlap atomic.Int64
	rec := &recorder{}
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		if running.Add(1) > 1 {
			overlap.Add(1)
		}
		time.Sleep(5 * time.Millisecond)
		running.Add(-1)
		return rec.handle(ctx, in)
	})
	// Five steps ready at once, none parallel: they run one at a time, in
	// the order declared, after the root.
	wf := dagflow.Workflow{ID: "serial", Steps: []dagflow.Step{step("root", "h")}}
	for _, id := range []string{"e", "b", "d", "a", "c"} {
		wf.Steps = append(wf.Steps, step(id, "h", "root"))
	}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state %s", st.State)
	}
	if overlap.Load() != 0 {
		t.Errorf("%d times two non-parallel steps ran at once", overlap.Load())
	}
	if d := cmp.Diff([]string{"root", "e", "b", "d", "a", "c"}, rec.order()); d != "" {
		t.Errorf("order (-want +got):\n%s", d)
	}
}

func TestParallelStepsOverlap(t *testing.T) {
	eng := newEngine(t)
	var running atomic.Int64
	both := make(chan struct{})
	var once sync.Once
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		if running.Add(1) == 2 {
			once.Do(func() { close(both) })
		}
		defer running.Add(-1)
		select {
		case <-both:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	wf := dagflow.Workflow{ID: "par", Steps: []dagflow.Step{
		{ID: "a", Handler: "h", Parallel: true, Timeout: 5 * time.Second},
		{ID: "b", Handler: "h", Parallel: true, Timeout: 5 * time.Second},
	}}
	if st := run(t, eng, wf); st.State != dagflow.StateCompleted {
		t.Fatalf("parallel steps did not overlap: %s %s", st.State, st.Error)
	}
}

// TestPipeline runs the hosted docs' complex pipeline shape: two branches
// that fan out and join, with results flowing along every edge.
func TestPipeline(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "join", func(ctx context.Context, in dagflow.Input) (any, error) {
		var parts []string
		for id, raw := range in.PreviousSteps.All() {
			var s string
			json.Unmarshal(raw, &s)
			_ = id
			parts = append(parts, s)
		}
		slices.Sort(parts)
		return strings.Join(append(parts, in.StepID), "+"), nil
	})
	par := func(s dagflow.Step) dagflow.Step { s.Parallel = true; return s }
	wf := dagflow.Workflow{ID: "pipeline", Steps: []dagflow.Step{
		par(step("extract", "join")),
		par(step("clean", "join", "extract")),
		par(step("enrich", "join", "extract")),
		par(step("score", "join", "clean", "enrich")),
		par(step("index", "join", "clean")),
		par(step("publish", "join", "score", "index")),
	}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state %s: %s", st.State, st.Error)
	}
	if len(st.CompletedSteps) != 6 || st.CompletedSteps[0] != "extract" || st.CompletedSteps[5] != "publish" {
		t.Errorf("completedSteps = %v", st.CompletedSteps)
	}
	// publish ran after every other step: it saw all five results.
	var s string
	json.Unmarshal(st.Results["publish"], &s)
	if strings.Count(s, "+") != 5+4+3+1 && !strings.HasSuffix(s, "+publish") {
		t.Errorf("publish result %q", s)
	}
	pos := map[string]int{}
	for i, id := range st.CompletedSteps {
		pos[id] = i
	}
	for _, s := range wf.Steps {
		for _, d := range s.DependsOn {
			if pos[d] >= pos[s.ID] {
				t.Errorf("%s completed before its dependency %s", s.ID, d)
			}
		}
	}
}

func TestRetriesWithBackoff(t *testing.T) {
	eng := newEngine(t)
	var attempts []int
	var mu sync.Mutex
	mustHandle(t, eng, "flaky", func(ctx context.Context, in dagflow.Input) (any, error) {
		mu.Lock()
		attempts = append(attempts, in.Attempt)
		mu.Unlock()
		if in.Attempt < 3 {
			return nil, fmt.Errorf("transient failure %d", in.Attempt)
		}
		return "ok", nil
	})
	wf := dagflow.Workflow{ID: "retry", Steps: []dagflow.Step{{ID: "a", Handler: "flaky",
		Retries: &dagflow.RetryConfig{MaxAttempts: 3, Backoff: dagflow.Fixed, InitialInterval: 10 * time.Millisecond}}}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted || st.Steps[0].Attempts != 3 {
		t.Fatalf("state %s, attempts %d: %s", st.State, st.Steps[0].Attempts, st.Error)
	}
	if d := cmp.Diff([]int{1, 2, 3}, attempts); d != "" {
		t.Errorf("attempt numbers (-want +got):\n%s", d)
	}
	hist, err := eng.Attempts(ctxT(t), "retry")
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	for _, a := range hist {
		errs = append(errs, a.Error)
	}
	if d := cmp.Diff([]string{"transient failure 1", "transient failure 2", ""}, errs); d != "" {
		t.Errorf("attempt errors (-want +got):\n%s", d)
	}
}

func TestRetriesExhausted(t *testing.T) {
	eng := newEngine(t)
	var calls atomic.Int64
	mustHandle(t, eng, "bad", func(ctx context.Context, in dagflow.Input) (any, error) {
		calls.Add(1)
		return nil, errors.New("always fails")
	})
	mustHandle(t, eng, "ok", (&recorder{}).handle)
	wf := dagflow.Workflow{ID: "exhaust", Steps: []dagflow.Step{
		{ID: "a", Handler: "bad", Retries: &dagflow.RetryConfig{MaxAttempts: 4, InitialInterval: 1 * time.Millisecond, MaxInterval: 5 * time.Millisecond}},
		step("b", "ok", "a"),
	}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	if calls.Load() != 4 || st.Steps[0].Attempts != 4 {
		t.Errorf("calls %d, attempts %d, want 4", calls.Load(), st.Steps[0].Attempts)
	}
	if !strings.Contains(st.Error, `step "a" failed after 4 attempts: always fails`) {
		t.Errorf("run error %q", st.Error)
	}
	if d := cmp.Diff(map[string]dagflow.State{"a": dagflow.StateFailed, "b": dagflow.StateSkipped}, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if !slices.Equal(st.FailedSteps, []string{"a"}) {
		t.Errorf("failedSteps %v", st.FailedSteps)
	}
}

func TestPermanentErrorStopsRetrying(t *testing.T) {
	eng := newEngine(t)
	var calls atomic.Int64
	mustHandle(t, eng, "bad", func(ctx context.Context, in dagflow.Input) (any, error) {
		calls.Add(1)
		return nil, dagflow.Permanent(errors.New("card declined"))
	})
	wf := dagflow.Workflow{ID: "perm", Steps: []dagflow.Step{
		{ID: "charge", Handler: "bad", Retries: &dagflow.RetryConfig{MaxAttempts: 5, InitialInterval: 1 * time.Millisecond}},
	}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateFailed || calls.Load() != 1 {
		t.Fatalf("state %s after %d calls, want failed after 1", st.State, calls.Load())
	}
	if st.Steps[0].Error != "card declined" {
		t.Errorf("step error %q", st.Steps[0].Error)
	}
}

func TestStepTimeout(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "slow", func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.Attempt == 1 {
			<-ctx.Done()
			return nil, ctx.Err()
		}
		return "second try", nil
	})
	wf := dagflow.Workflow{ID: "timeout", Steps: []dagflow.Step{{ID: "a", Handler: "slow", Timeout: 50 * time.Millisecond,
		Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: 1 * time.Millisecond}}}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted || st.Steps[0].Attempts != 2 {
		t.Fatalf("state %s attempts %d", st.State, st.Steps[0].Attempts)
	}
	hist, _ := eng.Attempts(ctxT(t), "timeout")
	if len(hist) != 2 || !strings.HasPrefix(hist[0].Error, "attempt timed out after 50ms") {
		t.Errorf("first attempt error: %+v", hist)
	}
}

func TestWorkflowTimeout(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "quick", (&recorder{}).handle)
	mustHandle(t, eng, "hang", func(ctx context.Context, in dagflow.Input) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	wf := dagflow.Workflow{ID: "wft", Timeout: 100 * time.Millisecond, Steps: []dagflow.Step{
		step("a", "quick"), step("b", "hang", "a"), step("c", "quick", "b"),
	}}
	start := time.Now()
	st := run(t, eng, wf)
	if st.State != dagflow.StateFailed || !strings.HasPrefix(st.Error, "workflow timed out") {
		t.Fatalf("state %s error %q", st.State, st.Error)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("timed out after %v", el)
	}
	// The step the timeout cut short, like the one it kept from
	// starting, ends cancelled (as with Cancel).
	want := map[string]dagflow.State{"a": dagflow.StateCompleted, "b": dagflow.StateCancelled, "c": dagflow.StateCancelled}
	if d := cmp.Diff(want, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
}

// TestLateReturnTimesOut: a handler that ignores its context and returns
// after the attempt's deadline has timed out, whatever it returns, so a run
// never ends completed past its timeout because a handler overran, and a
// step's timeout holds for Go handlers as it does for HTTP steps.
func TestLateReturnTimesOut(t *testing.T) {
	tests := []struct {
		name       string
		wf         dagflow.Workflow
		wantState  dagflow.State
		wantStep   dagflow.State
		wantErr    string // prefix of the run's error
		wantCalls  int64
		wantAttErr string // prefix of the first attempt's error
	}{{
		name: "step timeout, retried",
		wf: dagflow.Workflow{ID: "late-step", Steps: []dagflow.Step{{ID: "a", Handler: "late", Timeout: 50 * time.Millisecond,
			Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: 1 * time.Millisecond}}}},
		wantState: dagflow.StateFailed, wantStep: dagflow.StateFailed, wantErr: `step "a" failed after 2 attempts: attempt timed out after 50ms`,
		wantCalls: 2, wantAttErr: "attempt timed out after 50ms: the handler returned after the deadline",
	}, {
		name:      "workflow timeout, the only step",
		wf:        dagflow.Workflow{ID: "late-run", Timeout: 50 * time.Millisecond, Steps: []dagflow.Step{{ID: "a", Handler: "late"}}},
		wantState: dagflow.StateFailed, wantStep: dagflow.StateCancelled, wantErr: "workflow timed out after 50ms",
		wantCalls: 1, wantAttErr: "workflow timed out after 50ms: the handler returned after the deadline",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := newEngine(t)
			var calls atomic.Int64
			mustHandle(t, eng, "late", func(ctx context.Context, in dagflow.Input) (any, error) {
				calls.Add(1)
				time.Sleep(150 * time.Millisecond) // past the deadline, ignoring ctx
				return "too late", nil
			})
			st := run(t, eng, tt.wf)
			if st.State != tt.wantState || st.Steps[0].State != tt.wantStep || !strings.HasPrefix(st.Error, tt.wantErr) {
				t.Fatalf("run %s (%q), step %s; want run %s (%q...), step %s", st.State, st.Error, st.Steps[0].State,
					tt.wantState, tt.wantErr, tt.wantStep)
			}
			if st.Steps[0].Result != nil || st.Results["a"] != nil {
				t.Errorf("the late result was kept: %s", st.Steps[0].Result)
			}
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("%d calls, want %d", got, tt.wantCalls)
			}
			hist, err := eng.Attempts(ctxT(t), tt.wf.ID)
			if err != nil || len(hist) != int(tt.wantCalls) || !strings.HasPrefix(hist[0].Error, tt.wantAttErr) {
				t.Errorf("attempts %+v (%v); want %d, the first failing with %q...", hist, err, tt.wantCalls, tt.wantAttErr)
			}
		})
	}
}

func TestPanicBecomesFailedAttempt(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "boom", func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.Attempt == 1 {
			var m map[string]int
			m["x"]++ // nil map write: a real runtime panic
		}
		return "recovered", nil
	})
	wf := dagflow.Workflow{ID: "panic", Steps: []dagflow.Step{{ID: "a", Handler: "boom",
		Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: 1 * time.Millisecond}}}}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state %s: %s", st.State, st.Error)
	}
	hist, _ := eng.Attempts(ctxT(t), "panic")
	if len(hist) != 2 || !strings.Contains(hist[0].Error, "handler panicked: assignment to entry in nil map") {
		t.Errorf("attempts %+v", hist)
	}
}

// boom panics with an error, two calls down from the handler.
func boom(int) { panic(errors.New("kaput")) }

// capturedLogger returns a logger at INFO and a function that returns what
// it has logged so far.
func capturedLogger() (*slog.Logger, func() string) {
	var mu sync.Mutex
	var b strings.Builder
	l := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return b.Write(p)
	}), nil))
	return l, func() string {
		mu.Lock()
		defer mu.Unlock()
		return b.String()
	}
}

func TestPanicStackIsKept(t *testing.T) {
	logger, logs := capturedLogger()
	eng := newEngine(t, dagflow.WithLogger(logger))
	mustHandle(t, eng, "boom", func(ctx context.Context, in dagflow.Input) (any, error) { boom(1); return nil, nil })
	st := run(t, eng, dagflow.Workflow{ID: "p2", Steps: []dagflow.Step{step("a", "boom")}})
	if st.State != dagflow.StateFailed || st.Steps[0].Error != "handler panicked: kaput" {
		t.Fatalf("state %s, error %q", st.State, st.Steps[0].Error)
	}
	hist, err := eng.Attempts(ctxT(t), "p2")
	if err != nil || len(hist) != 1 || len(hist[0].Logs) != 1 {
		t.Fatalf("attempts %+v, %v; want one with one log line", hist, err)
	}
	line := hist[0].Logs[0]
	if line.Level != "ERROR" || line.Message != "the handler panicked" || !strings.Contains(line.Attrs, "panic=kaput") ||
		!strings.Contains(line.Attrs, "dagflow_test.boom(") {
		t.Errorf("the attempt's log line %+v lacks the panic and its stack", line)
	}
	if got := logs(); !strings.Contains(got, "dagflow_test.boom(") || !strings.Contains(got, "stepId=a") {
		t.Errorf("the engine's log lacks the stack:\n%s", got)
	}
	// The typed error unwraps to the panic value.
	var pe *dagflow.PanicError
	if err := error(&dagflow.PanicError{Value: errors.New("kaput")}); !errors.As(err, &pe) || pe.Unwrap().Error() != "kaput" {
		t.Errorf("PanicError does not unwrap to its value")
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestCreateIsIdempotent(t *testing.T) {
	eng := newEngine(t)
	var calls atomic.Int64
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		calls.Add(1)
		return nil, nil
	})
	ctx := ctxT(t)
	wf := dagflow.Workflow{ID: "idem", Context: json.RawMessage(`{"a": 1, "b": [2, {"c": 30}]}`), Steps: []dagflow.Step{step("a", "h")}}
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	// The same spec, written differently (defaults spelled out, other
	// spacing, members in another order, numbers written otherwise): the
	// same run.
	same := wf
	same.Context = json.RawMessage(`{ "b" : [2.0, {"c": 3e1}], "a" : 1 }`)
	same.Timeout = dagflow.DefaultWorkflowTimeout
	same.Steps = []dagflow.Step{{ID: "a", Handler: "h", Timeout: 300 * time.Second, Retries: &dagflow.RetryConfig{MaxAttempts: 1}}}
	st, err := eng.Create(ctx, same)
	if err != nil {
		t.Fatalf("Create of the same spec again: %v", err)
	}
	if st.ID != "idem" {
		t.Errorf("status id %q", st.ID)
	}
	if _, err := eng.Wait(ctx, "idem"); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatalf("Create after completion: %v", err)
	}
	if calls.Load() != 1 {
		t.Errorf("handler ran %d times, want 1", calls.Load())
	}
	other := wf
	other.Steps = []dagflow.Step{step("b", "h")}
	_, err = eng.Create(ctx, other)
	if !errors.Is(err, dagflow.ErrConflict) {
		t.Fatalf("Create with another spec: %v, want ErrConflict", err)
	}
	for _, c := range []string{
		`{"a": 1, "b": [2, {"c": 31}]}`,
		`{"a": 1, "b": [{"c": 30}, 2]}`,
		`{"a": 1, "b": [2, {"c": 30}], "d": null}`,
		`{"a": "1", "b": [2, {"c": 30}]}`,
		`{"a": 1e999999999, "b": [2, {"c": 30}]}`,
	} {
		other := wf
		other.Context = json.RawMessage(c)
		if _, err := eng.Create(ctx, other); !errors.Is(err, dagflow.ErrConflict) {
			t.Errorf("Create with the context %s: %v, want ErrConflict", c, err)
		}
	}
	big := func(n string) dagflow.Workflow {
		w := wf
		w.ID, w.Context = "idem-big", json.RawMessage(`{"n": `+n+`}`)
		return w
	}
	if _, err := eng.Create(ctx, big("12345678901234567890")); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Create(ctx, big("12345678901234567891")); !errors.Is(err, dagflow.ErrConflict) {
		t.Errorf("Create with a context number that differs past float64's precision: %v, want ErrConflict", err)
	}
	if _, err := eng.Create(ctx, big("1234567890123456789.0e1")); err != nil {
		t.Errorf("Create with the same number written otherwise: %v", err)
	}
}

// gateStore is a serial store whose Updates wait, while block is set, until
// it is closed; inflight counts the Updates waiting or running.
type gateStore struct {
	*memory.Store
	block    chan struct{}
	blocking atomic.Bool
	inflight atomic.Int64
}

// createKey marks the contexts of the test's Create calls.
type createKey struct{}

func (s *gateStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if ctx.Value(createKey{}) != nil {
		s.inflight.Add(1)
		defer s.inflight.Add(-1)
	}
	if s.blocking.Load() {
		select {
		case <-s.block:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return s.Store.Update(ctx, fn)
}

// A run stored by an earlier version, whose spec has every default written
// out, is the same run to Create, and reads back the same.
func TestCreateIdempotentOnFullSpec(t *testing.T) {
	ms := memory.New()
	eng := newEngine(t, dagflow.WithStore(ms))
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
	ctx := ctxT(t)
	wf := dagflow.Workflow{ID: "old", Steps: []dagflow.Step{step("a", "h"),
		{ID: "b", Handler: "h", DependsOn: []string{"a"}, Retries: &dagflow.RetryConfig{MaxAttempts: 3}}}}
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Wait(ctx, wf.ID); err != nil {
		t.Fatal(err)
	}
	filled, err := eng.Workflow(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if filled.Timeout != dagflow.DefaultWorkflowTimeout || filled.Steps[0].Timeout != dagflow.DefaultStepTimeout ||
		filled.Steps[0].Retries == nil || filled.Steps[1].Retries.MaxAttempts != 3 || filled.Steps[1].Retries.MaxInterval != dagflow.DefaultMaxInterval {
		t.Fatalf("Workflow does not fill the defaults in: %+v", filled)
	}
	full, err := json.Marshal(filled) // what earlier versions stored
	if err != nil {
		t.Fatal(err)
	}
	if err := ms.Update(ctx, func(tx store.Tx) error { return tx.PutSpec(wf.ID, full) }); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatalf("Create over a spec written in full: %v", err)
	}
	again, err := eng.Workflow(ctx, wf.ID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(filled, again); diff != "" {
		t.Errorf("the full spec reads back otherwise (-canonical +full):\n%s", diff)
	}
	changed := wf
	changed.Steps = []dagflow.Step{step("a", "h"), {ID: "b", Handler: "h", DependsOn: []string{"a"}}}
	if _, err := eng.Create(ctx, changed); !errors.Is(err, dagflow.ErrConflict) {
		t.Fatalf("Create of a changed workflow over a full spec: %v, want ErrConflict", err)
	}
}

func TestCreateConcurrentSameID(t *testing.T) {
	eng := newEngine(t)
	var calls atomic.Int64
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) { calls.Add(1); return nil, nil })
	wf := dagflow.Workflow{ID: "race", Steps: []dagflow.Step{step("a", "h")}}
	var wg sync.WaitGroup
	var created atomic.Int64
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			if i%2 == 0 {
				_, err = eng.Create(ctxT(t), wf)
			} else {
				var made bool
				if _, made, err = eng.CreateIfAbsent(ctxT(t), wf); made {
					created.Add(1)
				}
			}
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if _, err := eng.Wait(ctxT(t), "race"); err != nil {
		t.Fatal(err)
	}
	if calls.Load() != 1 {
		t.Errorf("step ran %d times", calls.Load())
	}
	if created.Load() > 1 {
		t.Errorf("%d calls of CreateIfAbsent reported that they created the run", created.Load())
	}
}

// TestCreateIfAbsent: of concurrent calls with one workflow, exactly one
// reports that it created the run; a call with another workflow of that id
// gets ErrConflict.
func TestCreateIfAbsent(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(t *testing.T) *dagflow.Engine
	}{
		{"memory", func(t *testing.T) *dagflow.Engine { return newEngine(t) }},
		{"bolt", func(t *testing.T) *dagflow.Engine {
			eng := openBolt(t, filepath.Join(t.TempDir(), "flows.db"))
			t.Cleanup(func() { eng.Close() })
			return eng
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := tc.open(t)
			mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
			wf := dagflow.Workflow{ID: "once", Steps: []dagflow.Step{step("a", "h")}}
			var made atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					st, created, err := eng.CreateIfAbsent(ctxT(t), wf)
					if err != nil || st == nil || st.ID != "once" {
						t.Errorf("CreateIfAbsent: %v, %v", st, err)
					}
					if created {
						made.Add(1)
					}
				}()
			}
			wg.Wait()
			if made.Load() != 1 {
				t.Errorf("%d calls reported that they created the run, want 1", made.Load())
			}
			other := dagflow.Workflow{ID: "once", Steps: []dagflow.Step{step("b", "h")}}
			if _, created, err := eng.CreateIfAbsent(ctxT(t), other); !errors.Is(err, dagflow.ErrConflict) || created {
				t.Errorf("another workflow of that id: created %v, %v; want ErrConflict", created, err)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "h", (&recorder{}).handle)
	ctx := ctxT(t)

	t.Run("invalid workflow", func(t *testing.T) {
		_, err := eng.Create(ctx, dagflow.Workflow{ID: "bad", Steps: []dagflow.Step{
			step("a", "h", "nope"), step("b", "missing"), {ID: "c"},
		}})
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 3 {
			t.Fatalf("err = %v", err)
		}
		want := []string{
			`steps[0].dependsOn[0]: unknown step "nope"`,
			`steps[1].handler: no handler named "missing" is registered on the engine (register it with Engine.Handle)`,
			`steps[2]: needs a url (an HTTP job handler), a handler (a Go handler registered on the engine), a workflow, a sleep or a waitForEvent`,
		}
		var got []string
		for _, p := range ve.Problems {
			got = append(got, p.String())
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("problems (-want +got):\n%s", d)
		}
		if _, err := eng.Status(ctx, "bad"); !errors.Is(err, dagflow.ErrNotFound) {
			t.Errorf("an invalid workflow left a run behind: %v", err)
		}
	})
	t.Run("relative url without base", func(t *testing.T) {
		_, err := eng.Create(ctx, dagflow.Workflow{ID: "rel", Steps: []dagflow.Step{{ID: "a", URL: "/api/jobs/a"}}})
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) || !strings.Contains(err.Error(), "relative") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("context not an object", func(t *testing.T) {
		_, err := eng.Create(ctx, dagflow.Workflow{ID: "ctx", Context: json.RawMessage(`[1,2]`), Steps: []dagflow.Step{step("a", "h")}})
		if err == nil || !strings.Contains(err.Error(), "context: must be a JSON object, not an array") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("unknown run", func(t *testing.T) {
		for name, f := range map[string]func() error{
			"Status":   func() error { _, err := eng.Status(ctx, "nope"); return err },
			"Wait":     func() error { _, err := eng.Wait(ctx, "nope"); return err },
			"Cancel":   func() error { _, err := eng.Cancel(ctx, "nope"); return err },
			"Retry":    func() error { _, err := eng.Retry(ctx, "nope"); return err },
			"Attempts": func() error { _, err := eng.Attempts(ctx, "nope"); return err },
			"Workflow": func() error { _, err := eng.Workflow(ctx, "nope"); return err },
		} {
			if err := f(); !errors.Is(err, dagflow.ErrNotFound) {
				t.Errorf("%s(unknown) = %v, want ErrNotFound", name, err)
			}
		}
	})
	t.Run("result not JSON", func(t *testing.T) {
		mustHandle(t, eng, "chan", func(ctx context.Context, in dagflow.Input) (any, error) { return make(chan int), nil })
		st := run(t, eng, dagflow.Workflow{ID: "nojson", Steps: []dagflow.Step{{ID: "a", Handler: "chan",
			Retries: &dagflow.RetryConfig{MaxAttempts: 3, InitialInterval: 1 * time.Millisecond}}}})
		if st.State != dagflow.StateFailed || st.Steps[0].Attempts != 1 ||
			!strings.Contains(st.Steps[0].Error, "cannot be encoded as JSON") {
			t.Fatalf("state %s, attempts %d, error %q", st.State, st.Steps[0].Attempts, st.Steps[0].Error)
		}
	})
	t.Run("bad options", func(t *testing.T) {
		_, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithConcurrency(0), dagflow.WithPath("x.db"))
		if err == nil || !strings.Contains(err.Error(), "WithConcurrency: 0 is less than 1") ||
			!strings.Contains(err.Error(), "WithPath and WithStore") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("bad handler registration", func(t *testing.T) {
		if err := eng.Handle("", nil); err == nil {
			t.Error("Handle with an empty name and nil func succeeded")
		}
	})
}

func TestClosedEngine(t *testing.T) {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		t.Fatal(err)
	}
	mustHandle(t, eng, "h", (&recorder{}).handle)
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if err := eng.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	ctx := ctxT(t)
	wf := dagflow.Workflow{ID: "x", Steps: []dagflow.Step{step("a", "h")}}
	if _, err := eng.Create(ctx, wf); !errors.Is(err, dagflow.ErrClosed) {
		t.Errorf("Create after Close = %v", err)
	}
	if _, err := eng.Status(ctx, "x"); !errors.Is(err, dagflow.ErrClosed) {
		t.Errorf("Status after Close = %v", err)
	}
	if err := eng.Handle("h", (&recorder{}).handle); !errors.Is(err, dagflow.ErrClosed) {
		t.Errorf("Handle after Close = %v", err)
	}
}

// Close while runs are being created: no handler starts once Close has
// returned, every Create either succeeds or says the engine is closed, and
// no goroutine is left behind (TestMain checks that).
func TestCloseWhileCreating(t *testing.T) {
	for round := range 30 {
		ms := memory.New()
		eng, err := dagflow.Open(dagflow.WithStore(ms), dagflow.WithConcurrency(4), dagflow.WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		var closed, late atomic.Bool
		mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
			if closed.Load() {
				late.Store(true)
			}
			return nil, nil
		})
		ctx := ctxT(t)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := 0; ; i++ {
					wf := dagflow.Workflow{ID: fmt.Sprintf("r%d-g%d-%d", round, g, i), Steps: []dagflow.Step{step("a", "h")}}
					if _, err := eng.Create(ctx, wf); err != nil {
						if !errors.Is(err, dagflow.ErrClosed) {
							t.Errorf("Create during Close: %v, want ErrClosed", err)
						}
						return
					}
				}
			})
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		if err := eng.Close(); err != nil {
			t.Fatal(err)
		}
		closed.Store(true)
		wg.Wait()
		if late.Load() {
			t.Fatalf("round %d: a handler started after Close returned", round)
		}
		ms.Close()
	}
}

func TestWaitHonoursContext(t *testing.T) {
	eng := newEngine(t)
	block := make(chan struct{})
	mustHandle(t, eng, "block", func(ctx context.Context, in dagflow.Input) (any, error) {
		select {
		case <-block:
		case <-ctx.Done():
		}
		return nil, nil
	})
	defer close(block)
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "w", Steps: []dagflow.Step{step("a", "block")}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := eng.Wait(ctx, "w"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait = %v, want DeadlineExceeded", err)
	}
}

func TestPreviousStepsIsASnapshot(t *testing.T) {
	// A step sees the results of steps completed before it started, not
	// of steps that complete while it runs.
	eng := newEngine(t)
	slowStarted := make(chan struct{})
	fastDone := make(chan struct{})
	mustHandle(t, eng, "fast", func(ctx context.Context, in dagflow.Input) (any, error) {
		<-slowStarted
		return "fast", nil
	})
	mustHandle(t, eng, "slow", func(ctx context.Context, in dagflow.Input) (any, error) {
		close(slowStarted)
		<-fastDone
		_, ok := in.PreviousSteps.Get("fast")
		return ok, nil
	})
	mustHandle(t, eng, "after", func(ctx context.Context, in dagflow.Input) (any, error) {
		return in.PreviousSteps.Len(), nil
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "snap", Steps: []dagflow.Step{
		{ID: "slow", Handler: "slow", Parallel: true},
		{ID: "fast", Handler: "fast", Parallel: true},
		step("after", "after", "slow", "fast"),
	}}); err != nil {
		t.Fatal(err)
	}
	// Let fast complete, then release slow.
	for {
		st, err := eng.Status(ctxT(t), "snap")
		if err != nil {
			t.Fatal(err)
		}
		if slices.Contains(st.CompletedSteps, "fast") {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(fastDone)
	st, err := eng.Wait(ctxT(t), "snap")
	if err != nil {
		t.Fatal(err)
	}
	if string(st.Results["slow"]) != "false" || string(st.Results["after"]) != "2" {
		t.Errorf("slow saw fast: %s; after saw %s results", st.Results["slow"], st.Results["after"])
	}
}

func TestLoggerLinesKeptPerAttempt(t *testing.T) {
	eng := newEngine(t, dagflow.WithLogLines(3))
	mustHandle(t, eng, "chatty", func(ctx context.Context, in dagflow.Input) (any, error) {
		log := in.Logger()
		for i := 0; i < 5; i++ {
			log.Info("working", "i", i, "attempt", in.Attempt)
		}
		if in.Attempt == 1 {
			return nil, errors.New("again")
		}
		return nil, nil
	})
	run(t, eng, dagflow.Workflow{ID: "logs", Steps: []dagflow.Step{{ID: "a", Handler: "chatty",
		Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: 1 * time.Millisecond}}}})
	hist, err := eng.Attempts(ctxT(t), "logs")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 {
		t.Fatalf("%d attempts", len(hist))
	}
	for i, a := range hist {
		if len(a.Logs) != 3 || !a.LogsCut {
			t.Errorf("attempt %d: %d lines, cut %v; want 3, true", i+1, len(a.Logs), a.LogsCut)
			continue
		}
		want := fmt.Sprintf("i=0 attempt=%d", i+1)
		if a.Logs[0].Message != "working" || a.Logs[0].Attrs != want || a.Logs[0].Level != "INFO" {
			t.Errorf("attempt %d first line %+v, want attrs %q", i+1, a.Logs[0], want)
		}
	}
}

// TestListPendingAndRunning: List tells pending runs (no step started yet)
// from running ones, as Status does, and pages through them by state.
func TestListPendingAndRunning(t *testing.T) {
	eng := newEngine(t, dagflow.WithConcurrency(1))
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	mustHandle(t, eng, "block", func(ctx context.Context, in dagflow.Input) (any, error) {
		entered <- struct{}{}
		<-release
		return nil, nil
	})
	mustHandle(t, eng, "ok", (&recorder{}).handle)
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "busy", Steps: []dagflow.Step{step("a", "block")}}); err != nil {
		t.Fatal(err)
	}
	<-entered // the one worker slot is taken: the runs below wait
	for i := range 5 {
		if _, err := eng.Create(ctx, dagflow.Workflow{ID: fmt.Sprintf("waiting-%d", i), Steps: []dagflow.Step{step("a", "ok")}}); err != nil {
			t.Fatal(err)
		}
	}
	list := func(state dagflow.State) (ids []string, states []dagflow.State) {
		o := dagflow.ListOptions{State: state, Limit: 2}
		for {
			page, err := eng.List(ctx, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Runs {
				ids, states = append(ids, r.ID), append(states, r.State)
			}
			if page.Next == "" {
				return ids, states
			}
			o.After = page.Next
		}
	}
	ids, states := list(dagflow.StatePending)
	if want := []string{"waiting-4", "waiting-3", "waiting-2", "waiting-1", "waiting-0"}; !slices.Equal(ids, want) {
		t.Errorf("pending runs %q, want %q", ids, want)
	}
	if slices.ContainsFunc(states, func(s dagflow.State) bool { return s != dagflow.StatePending }) {
		t.Errorf("pending runs listed as %q", states)
	}
	if ids, states := list(dagflow.StateRunning); !slices.Equal(ids, []string{"busy"}) || states[0] != dagflow.StateRunning {
		t.Errorf("running runs %q (%q), want only busy", ids, states)
	}
	if st, _ := eng.Status(ctx, "waiting-0"); st.State != dagflow.StatePending {
		t.Errorf("Status says %s", st.State)
	}
	if ids, _ := list(""); len(ids) != 6 {
		t.Errorf("all runs: %q", ids)
	}
	close(release)
	for i := range 5 {
		if _, err := eng.Wait(ctx, fmt.Sprintf("waiting-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestList(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "ok", (&recorder{}).handle)
	mustHandle(t, eng, "bad", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, errors.New("no") })
	for i := 0; i < 5; i++ {
		h := "ok"
		if i%2 == 1 {
			h = "bad"
		}
		run(t, eng, dagflow.Workflow{ID: fmt.Sprintf("run-%d", i), Steps: []dagflow.Step{step("a", h)}})
	}
	ctx := ctxT(t)
	page, err := eng.List(ctx, dagflow.ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for page != nil {
		for _, r := range page.Runs {
			ids = append(ids, r.ID)
		}
		if page.Next == "" {
			break
		}
		if page, err = eng.List(ctx, dagflow.ListOptions{Limit: 2, After: page.Next}); err != nil {
			t.Fatal(err)
		}
	}
	if d := cmp.Diff([]string{"run-4", "run-3", "run-2", "run-1", "run-0"}, ids); d != "" {
		t.Errorf("paged list (-want +got):\n%s", d)
	}
	failed, err := eng.List(ctx, dagflow.ListOptions{State: dagflow.StateFailed})
	if err != nil {
		t.Fatal(err)
	}
	if len(failed.Runs) != 2 || failed.Runs[0].ID != "run-3" || failed.Runs[0].Failed != 1 {
		t.Errorf("failed runs %+v", failed.Runs)
	}
	if _, err := eng.List(ctx, dagflow.ListOptions{State: "weird"}); err == nil {
		t.Error("List with an unknown state succeeded")
	}
	if _, err := eng.List(ctx, dagflow.ListOptions{After: "!!"}); err == nil {
		t.Error("List with a bad cursor succeeded")
	}
	if _, err := eng.List(ctx, dagflow.ListOptions{Limit: -1}); err == nil {
		t.Error("List with a negative Limit succeeded")
	}
}

// TestWorkerContinuesItsRun: a worker that finishes a step goes on with a
// step of the same run that the outcome made ready, ahead of a step of
// another run that was due earlier, as a goroutine running that workflow
// would; the earlier step gets the slot when the run has nothing ready next.
func TestWorkerContinuesItsRun(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func(t *testing.T) dagflow.Option
	}{
		{"memory", func(t *testing.T) dagflow.Option { return dagflow.WithStore(memory.New()) }},
		{"bolt", func(t *testing.T) dagflow.Option {
			s, err := bolt.Open(filepath.Join(t.TempDir(), "c.db"), bolt.Options{})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return dagflow.WithStore(s)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := newEngine(t, tc.store(t), dagflow.WithConcurrency(1))
			started, release := make(chan struct{}), make(chan struct{})
			var rec recorder
			mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
				if in.StepID == "a1" {
					close(started)
					<-release
				}
				return rec.handle(ctx, in)
			})
			ctx := ctxT(t)
			if _, err := eng.Create(ctx, dagflow.Workflow{ID: "a", Steps: []dagflow.Step{step("a1", "h"), step("a2", "h", "a1")}}); err != nil {
				t.Fatal(err)
			}
			<-started
			// The only slot is a1's: b1 is stored ready, due now, before
			// a2 is.
			st, err := eng.Create(ctx, dagflow.Workflow{ID: "b", Steps: []dagflow.Step{step("b1", "h")}})
			if err != nil {
				t.Fatal(err)
			}
			if st.Steps[0].State != dagflow.StatePending {
				t.Fatalf("b1 is %s with the only slot taken", st.Steps[0].State)
			}
			close(release)
			for _, id := range []string{"a", "b"} {
				if st, err := eng.Wait(ctx, id); err != nil || st.State != dagflow.StateCompleted {
					t.Fatalf("run %s: %v %v", id, st.State, err)
				}
			}
			if d := cmp.Diff([]string{"a1", "a2", "b1"}, rec.calls); d != "" {
				t.Errorf("order of the steps (-want +got):\n%s", d)
			}
		})
	}
}

// TestCancelCause: context.Cause of a handler's context says why it ended:
// the run was cancelled (with the reason given to Cancel), timed out, or
// the engine closed.
func TestCancelCause(t *testing.T) {
	tests := []struct {
		name string
		wf   dagflow.Workflow
		stop func(eng *dagflow.Engine)
		want string
	}{
		{"cancel", dagflow.Workflow{ID: "c1", Steps: []dagflow.Step{step("a", "wait")}},
			func(eng *dagflow.Engine) { eng.Cancel(ctxT(t), "c1") }, `dagflow: run "c1" stopped: cancelled`},
		{"timeout", dagflow.Workflow{ID: "c2", Timeout: 50 * time.Millisecond, Steps: []dagflow.Step{step("a", "wait")}},
			func(*dagflow.Engine) {}, "context deadline exceeded"},
		{"close", dagflow.Workflow{ID: "c3", Steps: []dagflow.Step{step("a", "wait")}},
			func(eng *dagflow.Engine) { eng.Close() }, "dagflow: engine closing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng := newEngine(t)
			causes := make(chan error, 1)
			entered := make(chan struct{})
			mustHandle(t, eng, "wait", func(ctx context.Context, in dagflow.Input) (any, error) {
				close(entered)
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return nil, ctx.Err()
			})
			if _, err := eng.Create(ctxT(t), tt.wf); err != nil {
				t.Fatal(err)
			}
			<-entered
			tt.stop(eng)
			select {
			case cause := <-causes:
				if !strings.HasPrefix(cause.Error(), tt.want) {
					t.Errorf("context.Cause = %q, want %q...", cause, tt.want)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the handler's context did not end")
			}
		})
	}
}

// TestCancelBetweenClaimAndAttempt: a run cancelled after its step was
// claimed but before the step's attempt started has that attempt start
// with its context cancelled, so the run ends instead of waiting for a
// handler nothing stops.
func TestCancelBetweenClaimAndAttempt(t *testing.T) {
	fs := faultstore.New(memory.New())
	eng := newEngine(t, dagflow.WithStore(fs))
	causes := make(chan error, 1)
	mustHandle(t, eng, "wait", func(ctx context.Context, in dagflow.Input) (any, error) {
		select {
		case <-ctx.Done():
			causes <- context.Cause(ctx)
			return nil, ctx.Err()
		case <-time.After(20 * time.Second):
			causes <- nil
			return "not cancelled", nil
		}
	})
	held, release := fs.HoldAfterClaim()
	defer release()
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "c", Steps: []dagflow.Step{step("a", "wait")}}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-held:
	case <-time.After(10 * time.Second):
		t.Fatal("step a was not claimed")
	}
	if _, err := eng.Cancel(ctxT(t), "c"); err != nil {
		t.Fatal(err)
	}
	release()
	if cause := <-causes; cause == nil || !strings.HasPrefix(cause.Error(), `dagflow: run "c" stopped: cancelled`) {
		t.Errorf("context.Cause = %v, want the cancel", cause)
	}
	st, err := eng.Wait(ctxT(t), "c")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCancelled {
		t.Errorf("run %s, want cancelled", st.State)
	}
}

// A URL step's compensation that looks like a handler name, on an engine
// with no base URL, is reported with what a URL step's compensation is.
func TestURLStepCompensationNamesHandler(t *testing.T) {
	eng := newEngine(t)
	mustHandle(t, eng, "undo", (&recorder{}).handle)
	_, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "s", Saga: true, Steps: []dagflow.Step{
		{ID: "a", URL: "https://app/jobs/a", Compensation: "undo"}}})
	want := `steps[0].compensation: "undo" is relative, and the engine has no base URL to resolve it against (set one with WithHTTP); a step with a url is compensated by a URL, not by a handler name`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("Create: %v\nwant %s", err, want)
	}
}

// TestListBadOptions: a negative limit, an unknown state or a bad cursor is a
// *ValidationError naming the option.
func TestListBadOptions(t *testing.T) {
	eng := newEngine(t)
	for _, tc := range []struct {
		o    dagflow.ListOptions
		path string
	}{
		{dagflow.ListOptions{Limit: -1}, "limit"},
		{dagflow.ListOptions{State: "sleeping"}, "state"},
		{dagflow.ListOptions{After: "not-a-cursor"}, "after"},
	} {
		_, err := eng.List(ctxT(t), tc.o)
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != 1 || ve.Problems[0].Path != tc.path || ve.Of != "list query" {
			t.Errorf("List(%+v) = %v, want a *ValidationError of the list query at %q", tc.o, err, tc.path)
		}
	}
}
