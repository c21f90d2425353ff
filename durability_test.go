package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"github.com/google/go-cmp/cmp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bbolt "go.etcd.io/bbolt"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/internal/faultstore"
	"github.com/dagflow/dagflow/store/bolt"
	"github.com/dagflow/dagflow/store/memory"
)

func openBolt(t testing.TB, path string, opts ...dagflow.Option) *dagflow.Engine {
	t.Helper()
	eng, err := dagflow.Open(append([]dagflow.Option{dagflow.WithPath(path), dagflow.WithLogger(testLogger(t))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return eng
}

// TestResumeAfterClose: an engine closed while a step runs leaves the run
// in the file; the next engine resumes it and runs the step that Close cut
// short again, without counting the cut-short attempt, and never runs
// completed steps again; the deadline and history are kept.
func TestResumeAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	var firstRuns, secondRuns atomic.Int64
	started := make(chan struct{}, 1)
	eng := openBolt(t, path)
	mustHandle(t, eng, "first", func(ctx context.Context, in dagflow.Input) (any, error) {
		firstRuns.Add(1)
		return "one", nil
	})
	mustHandle(t, eng, "second", func(ctx context.Context, in dagflow.Input) (any, error) {
		started <- struct{}{}
		<-ctx.Done() // runs until the engine closes
		return nil, ctx.Err()
	})
	wf := dagflow.Workflow{ID: "resume", Timeout: 3600 * time.Second, Steps: []dagflow.Step{
		step("a", "first"),
		step("b", "second", "a"), // one attempt only: Close must not use it up
		step("c", "first", "b"),
	}}
	ctx := ctxT(t)
	created, err := eng.Create(ctx, wf)
	if err != nil {
		t.Fatal(err)
	}
	<-started
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	var seen dagflow.Input
	eng2 := openBolt(t, path,
		dagflow.WithHandler("first", func(ctx context.Context, in dagflow.Input) (any, error) {
			firstRuns.Add(1)
			return "one", nil
		}),
		dagflow.WithHandler("second", func(ctx context.Context, in dagflow.Input) (any, error) {
			secondRuns.Add(1)
			seen = in
			return "two", nil
		}))
	defer eng2.Close()
	st, err := eng2.Wait(ctx, "resume")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state %s: %s", st.State, st.Error)
	}
	if firstRuns.Load() != 2 || secondRuns.Load() != 1 {
		t.Errorf("first ran %d times (want 2: a and c), second %d (want 1 after the restart)", firstRuns.Load(), secondRuns.Load())
	}
	if seen.Attempt != 1 {
		t.Errorf("the step Close cut short ran again as attempt %d, want 1 (not counted)", seen.Attempt)
	}
	if r, ok := seen.PreviousSteps.Get("a"); !ok || string(r) != `"one"` {
		t.Errorf("after the restart b saw a's result %s, %v", r, ok)
	}
	if !st.StartedAt.Equal(created.StartedAt) {
		t.Errorf("StartedAt moved from %v to %v", created.StartedAt, st.StartedAt)
	}
	hist, err := eng2.Attempts(ctx, "resume")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 3 || hist[1].StepID != "b" || hist[1].Number != 1 || hist[1].Error != "" {
		t.Errorf("history after restart: %+v", hist)
	}
}

// crash stops an engine as a crash would: its store stops taking writes
// first, so that nothing of the shutdown reaches it.
func crash(t testing.TB, eng *dagflow.Engine, fs *faultstore.Store) {
	t.Helper()
	fs.FailAll(true)
	eng.Close()
	fs.FailAll(false)
}

// TestResumeWaitsForHandler: a resumed run whose handler is not registered
// waits, and goes on as soon as Handle registers it.
func TestResumeWaitsForHandler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	eng := openBolt(t, path)
	started := make(chan struct{}, 1)
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "w", Steps: []dagflow.Step{
		{ID: "a", Handler: "h", Retries: &dagflow.RetryConfig{MaxAttempts: 2}}}}); err != nil {
		t.Fatal(err)
	}
	<-started
	eng.Close()

	logger, logs := capturedLogger()
	eng2 := openBolt(t, path, dagflow.WithLogger(logger))
	defer eng2.Close()
	time.Sleep(50 * time.Millisecond)
	st, err := eng2.Status(ctxT(t), "w")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateRunning || st.Steps[0].State != dagflow.StatePending || st.Steps[0].Attempts != 0 {
		t.Fatalf("without its handler the run should wait: %s, step %s, attempts %d", st.State, st.Steps[0].State, st.Steps[0].Attempts)
	}
	// and says why, once.
	got := logs()
	if !strings.Contains(got, `level=WARN msg="dagflow: steps wait for a Go handler that is not registered" handler=h run=w step=a`) ||
		strings.Count(got, "not registered") != 1 {
		t.Errorf("the engine's log does not say once what the run waits for:\n%s", got)
	}
	start := time.Now()
	mustHandle(t, eng2, "h", func(ctx context.Context, in dagflow.Input) (any, error) { return "late", nil })
	st, err = eng2.Wait(ctxT(t), "w")
	if err != nil || st.State != dagflow.StateCompleted {
		t.Fatalf("after Handle: %v %v", st, err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("the waiting step started %v after Handle, want at once", el)
	}
}

// TestCreateIdempotentBeforeHandle: after a restart, Create of a run that
// exists with the same spec returns it even before the engine registers
// the run's handlers; another spec still needs them.
func TestCreateIdempotentBeforeHandle(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	wf := dagflow.Workflow{ID: "again", Steps: []dagflow.Step{step("a", "h")}}
	eng := openBolt(t, path, dagflow.WithHandler("h", (&recorder{}).handle))
	run(t, eng, wf)
	eng.Close()

	eng = openBolt(t, path)
	defer eng.Close()
	st, err := eng.Create(ctxT(t), wf)
	if err != nil || st.State != dagflow.StateCompleted || st.Results["a"] == nil {
		t.Fatalf("Create of the run again, before Handle: %+v, %v", st, err)
	}
	other := wf
	other.ID = "new"
	var ve *dagflow.ValidationError
	if _, err := eng.Create(ctxT(t), other); !errors.As(err, &ve) || !strings.Contains(err.Error(), `no handler named "h"`) {
		t.Errorf("Create of a new run before Handle: %v, want the missing handler", err)
	}
}

// TestInterruptionsDoNotCountAgainstMaxAttempts: an attempt cut short by a
// crash runs again as the next attempt whatever the step's maxAttempts (a
// crash is not the step's failure), and the status counts it as an
// interruption.
func TestInterruptionsDoNotCountAgainstMaxAttempts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	var calls atomic.Int64
	hang := func(ctx context.Context, in dagflow.Input) (any, error) {
		calls.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	wf := dagflow.Workflow{ID: "max", Steps: []dagflow.Step{{ID: "a", Handler: "h"}}} // one attempt, the default
	for i := 0; i < 2; i++ {
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fs := faultstore.New(s)
		eng, err := dagflow.Open(dagflow.WithStore(fs), dagflow.WithHandler("h", hang), dagflow.WithLogger(testLogger(t)))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Create(ctxT(t), wf); err != nil {
			t.Fatal(err)
		}
		waitFor(t, eng, "max", func(st *dagflow.Status) bool {
			return st.Steps[0].State == dagflow.StateRunning && st.Steps[0].Attempts == i+1
		})
		crash(t, eng, fs)
		s.Close()
	}
	var attempt int
	eng := openBolt(t, path, dagflow.WithHandler("h", func(ctx context.Context, in dagflow.Input) (any, error) {
		attempt = in.Attempt
		return "done", nil
	}))
	defer eng.Close()
	st, err := eng.Wait(ctxT(t), "max")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted || st.Steps[0].Attempts != 3 || st.Steps[0].Interruptions != 2 || attempt != 3 {
		t.Fatalf("state %s (%s), attempts %d, interruptions %d, last attempt %d; want completed at attempt 3 after 2 interruptions",
			st.State, st.Error, st.Steps[0].Attempts, st.Steps[0].Interruptions, attempt)
	}
	hist, err := eng.Attempts(ctxT(t), "max")
	if err != nil {
		t.Fatal(err)
	}
	var interrupted []int
	for _, a := range hist {
		if a.Interrupted {
			interrupted = append(interrupted, a.Number)
		}
	}
	if d := cmp.Diff([]int{1, 2}, interrupted); d != "" {
		t.Errorf("interrupted attempts (-want +got):\n%s", d)
	}
}

// TestMaxInterruptions: a step whose attempts keep being cut short fails
// once they were interrupted as often as WithMaxInterruptions allows, with
// an error that says so.
func TestMaxInterruptions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	hang := func(ctx context.Context, in dagflow.Input) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	wf := dagflow.Workflow{ID: "loop", Steps: []dagflow.Step{{ID: "a", Handler: "h", Retries: &dagflow.RetryConfig{MaxAttempts: 5}}}}
	for i := 0; i < 2; i++ {
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		fs := faultstore.New(s)
		eng, err := dagflow.Open(dagflow.WithStore(fs), dagflow.WithHandler("h", hang), dagflow.WithLogger(testLogger(t)),
			dagflow.WithMaxInterruptions(2))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := eng.Create(ctxT(t), wf); err != nil {
			t.Fatal(err)
		}
		waitFor(t, eng, "loop", func(st *dagflow.Status) bool {
			return st.Steps[0].State == dagflow.StateRunning && st.Steps[0].Attempts == i+1
		})
		crash(t, eng, fs)
		s.Close()
	}
	eng := openBolt(t, path, dagflow.WithHandler("h", hang), dagflow.WithMaxInterruptions(2))
	defer eng.Close()
	st, err := eng.Wait(ctxT(t), "loop")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateFailed || st.Steps[0].Interruptions != 2 ||
		!strings.Contains(st.Error, "its attempts were interrupted 2 times") || !strings.Contains(st.Error, "the limit is 2") {
		t.Fatalf("state %s, interruptions %d, error %q", st.State, st.Steps[0].Interruptions, st.Error)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("held by another", func(t *testing.T) {
		path := filepath.Join(dir, "held.db")
		eng := openBolt(t, path)
		defer eng.Close()
		start := time.Now()
		_, err := dagflow.Open(dagflow.WithPath(path))
		if err == nil || !strings.Contains(err.Error(), "in use by another process") {
			t.Fatalf("second Open = %v", err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Errorf("took %v", el)
		}
	})
	t.Run("garbage file", func(t *testing.T) {
		path := filepath.Join(dir, "garbage.db")
		junk := make([]byte, 64<<10)
		for i := range junk {
			junk[i] = byte(i * 7)
		}
		os.WriteFile(path, junk, 0o600)
		_, err := dagflow.Open(dagflow.WithPath(path))
		if err == nil || !strings.Contains(err.Error(), "not a dagflow database") {
			t.Fatalf("Open of a garbage file = %v", err)
		}
	})
	t.Run("foreign bbolt file", func(t *testing.T) {
		path := filepath.Join(dir, "foreign.db")
		db, err := bbolt.Open(path, 0o600, nil)
		if err != nil {
			t.Fatal(err)
		}
		db.Update(func(tx *bbolt.Tx) error { _, err := tx.CreateBucket([]byte("users")); return err })
		db.Close()
		_, err = dagflow.Open(dagflow.WithPath(path))
		if err == nil || !strings.Contains(err.Error(), "another program") {
			t.Fatalf("Open of a foreign bbolt file = %v", err)
		}
	})
	t.Run("newer schema", func(t *testing.T) {
		path := filepath.Join(dir, "newer.db")
		s, err := bolt.Open(path, bolt.Options{})
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		db, _ := bbolt.Open(path, 0o600, nil)
		db.Update(func(tx *bbolt.Tx) error {
			return tx.Bucket([]byte("meta")).Put([]byte("version"), []byte{0, 0, 0, 0, 0, 0, 0, 9})
		})
		db.Close()
		_, err = dagflow.Open(dagflow.WithPath(path))
		if err == nil || !strings.Contains(err.Error(), "newer dagflow") {
			t.Fatalf("Open of a newer file = %v", err)
		}
	})
	t.Run("truncated file", func(t *testing.T) {
		path := filepath.Join(dir, "trunc.db")
		eng := openBolt(t, path)
		eng.Close()
		data, _ := os.ReadFile(path)
		os.WriteFile(path, data[:100], 0o600)
		if _, err := dagflow.Open(dagflow.WithPath(path)); err == nil {
			t.Fatal("Open of a truncated file succeeded")
		}
	})
}

// TestStoreCommitFailuresAreRetried: commits that fail for a while are
// tried again; the run completes as if nothing happened.
func TestStoreCommitFailuresAreRetried(t *testing.T) {
	fs := faultstore.New(memory.New())
	eng := newEngine(t, dagflow.WithStore(fs))
	var calls atomic.Int64
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.StepID == "b" {
			fs.FailCommits(3) // the commit of b's outcome fails three times
		}
		calls.Add(1)
		return in.StepID, nil
	})
	st := run(t, eng, dagflow.Workflow{ID: "flaky-store", Steps: []dagflow.Step{step("a", "h"), step("b", "h", "a"), step("c", "h", "b")}})
	if st.State != dagflow.StateCompleted || calls.Load() != 3 {
		t.Fatalf("state %s, calls %d", st.State, calls.Load())
	}
	if fs.Failures.Load() != 3 {
		t.Errorf("%d faults injected, want 3", fs.Failures.Load())
	}
	for _, s := range st.Steps {
		if s.Attempts != 1 {
			t.Errorf("step %s: %d attempts", s.ID, s.Attempts)
		}
	}
}

// TestStoreDownLeavesNothingHalfRecorded: when the store fails for good, the
// step's outcome cannot be recorded; the store keeps the run as it was (the
// attempt started, nothing more), and an engine opened on the repaired store
// finishes the run.
func TestStoreDownLeavesNothingHalfRecorded(t *testing.T) {
	mem := memory.New()
	fs := faultstore.New(mem)
	eng, err := dagflow.Open(dagflow.WithStore(fs), dagflow.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int64
	h := func(ctx context.Context, in dagflow.Input) (any, error) {
		calls.Add(1)
		if in.StepID == "b" && in.Attempt == 1 {
			fs.FailAll(true) // the disk fills up while b runs
		}
		return in.StepID, nil
	}
	mustHandle(t, eng, "h", h)
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "down", Steps: []dagflow.Step{
		step("a", "h"), {ID: "b", Handler: "h", DependsOn: []string{"a"}, Retries: &dagflow.RetryConfig{MaxAttempts: 2}}, step("c", "h", "b"),
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, "down", func(*dagflow.Status) bool { return fs.Failures.Load() > 9 })
	// Give the engine its retries (and its attempt to record a failure).
	time.Sleep(3 * time.Second)
	st, err := eng.Status(ctx, "down")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateRunning || st.Steps[0].State != dagflow.StateCompleted || st.Steps[1].State != dagflow.StateRunning ||
		st.Steps[1].Attempts != 1 || st.Steps[2].State != dagflow.StatePending {
		t.Fatalf("with the store down: %s, steps %v", st.State, stepStates(st))
	}
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "other", Steps: []dagflow.Step{step("a", "h")}}); !errors.Is(err, faultstore.ErrInjected) {
		t.Errorf("Create with the store down = %v", err)
	}
	eng.Close()

	fs.FailAll(false)
	eng2, err := dagflow.Open(dagflow.WithStore(mem), dagflow.WithHandler("h", h), dagflow.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng2.Close()
	st, err = eng2.Wait(ctx, "down")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted || st.Steps[1].Attempts != 2 || calls.Load() != 4 {
		t.Fatalf("after repair: %s, b attempts %d, calls %d", st.State, st.Steps[1].Attempts, calls.Load())
	}
	if _, err := eng2.Status(ctx, "other"); !errors.Is(err, dagflow.ErrNotFound) {
		t.Errorf("the failed Create left a run: %v", err)
	}
}

// TestCreateCommitFailureLeavesNoCache: Create caches the run it compiles
// before its transaction commits; when the commit fails, that cache goes
// too, so that the same id created again runs with the workflow given then
// (here, another context), not the one that was never stored.
func TestCreateCommitFailureLeavesNoCache(t *testing.T) {
	fs := faultstore.New(memory.New())
	eng := newEngine(t, dagflow.WithStore(fs))
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		return json.RawMessage(in.Context), nil
	})
	ctx := ctxT(t)
	wf := func(c string) dagflow.Workflow {
		return dagflow.Workflow{ID: "again", Context: json.RawMessage(c), Steps: []dagflow.Step{step("a", "h")}}
	}
	fs.FailCreates(1)
	if _, err := eng.Create(ctx, wf(`{"try":1}`)); !errors.Is(err, faultstore.ErrInjected) {
		t.Fatalf("Create with a failing commit = %v", err)
	}
	if _, err := eng.Status(ctx, "again"); !errors.Is(err, dagflow.ErrNotFound) {
		t.Fatalf("the failed Create left a run: %v", err)
	}
	st := run(t, eng, wf(`{"try":2}`))
	if st.State != dagflow.StateCompleted || string(st.Results["a"]) != `{"try":2}` {
		t.Fatalf("created again: %s, result %s", st.State, st.Results["a"])
	}
}

// TestShutdown: Shutdown lets the attempts under way finish and records
// them, starts nothing more, and closes; the next engine goes on from
// there. A Shutdown whose context ends first closes at once, as Close.
func TestShutdown(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	var calls sync.Map // step id -> *atomic.Int64
	count := func(id string) int64 {
		v, _ := calls.LoadOrStore(id, new(atomic.Int64))
		return v.(*atomic.Int64).Load()
	}
	entered, release := make(chan string, 4), make(chan struct{})
	slow := func(ctx context.Context, in dagflow.Input) (any, error) {
		v, _ := calls.LoadOrStore(in.StepID, new(atomic.Int64))
		v.(*atomic.Int64).Add(1)
		entered <- in.StepID
		select {
		case <-release:
			return "done " + in.StepID, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	eng := openBolt(t, path, dagflow.WithHandler("slow", slow))
	wf := dagflow.Workflow{ID: "sd", Steps: []dagflow.Step{step("a", "slow"), step("b", "slow", "a")}}
	if _, err := eng.Create(ctxT(t), wf); err != nil {
		t.Fatal(err)
	}
	<-entered
	done := make(chan error, 1)
	go func() { done <- eng.Shutdown(ctxT(t)) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned while an attempt was under way: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := eng.Shutdown(ctxT(t)); !errors.Is(err, dagflow.ErrClosed) {
		t.Errorf("Shutdown again: %v, want ErrClosed", err)
	}
	if count("b") != 0 {
		t.Errorf("b started during Shutdown")
	}

	eng = openBolt(t, path, dagflow.WithHandler("slow", slow))
	st, err := eng.Status(ctxT(t), "sd")
	if err != nil {
		t.Fatal(err)
	}
	if st.Steps[0].State != dagflow.StateCompleted || st.Steps[0].Attempts != 1 {
		t.Errorf("a after Shutdown: %s, %d attempts; want completed in 1", st.Steps[0].State, st.Steps[0].Attempts)
	}
	if st, err := eng.Wait(ctxT(t), "sd"); err != nil || st.State != dagflow.StateCompleted {
		t.Fatalf("after reopening: %v, %v", st, err)
	}
	if count("a") != 1 || count("b") != 1 {
		t.Errorf("a ran %d times, b %d; want once each", count("a"), count("b"))
	}

	// A context that ends first: closed at once.
	blocked := make(chan struct{})
	mustHandle(t, eng, "hang", func(ctx context.Context, in dagflow.Input) (any, error) {
		close(blocked)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "hung", Steps: []dagflow.Step{step("a", "hang")}}); err != nil {
		t.Fatal(err)
	}
	<-blocked
	short, cancel := context.WithTimeout(ctxT(t), 50*time.Millisecond)
	defer cancel()
	if err := eng.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Shutdown with a context that ends: %v, want context.DeadlineExceeded", err)
	}
	if _, err := eng.Status(ctxT(t), "hung"); !errors.Is(err, dagflow.ErrClosed) {
		t.Errorf("the engine is not closed after Shutdown gave up: %v", err)
	}
}
