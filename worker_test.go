package dagflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
)

// hintStore records the run and steps that each Update's context names
// (store.ForRun). It hides the memory store's Exclusive: the engine takes
// it for a store that engines share, the kind that is told the names.
type hintStore struct {
	store.Store
	mu    sync.Mutex
	named map[string][][]int
}

func (s *hintStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if run := store.RunOf(ctx); run != "" {
		s.mu.Lock()
		s.named[run] = append(s.named[run], slices.Clone(store.StepsOf(ctx)))
		s.mu.Unlock()
	}
	return s.Store.Update(ctx, fn)
}

// The Update that records an outcome names the steps it will read besides
// the step itself: a completed step's dependents, a map item's step.
func TestOutcomeNamesItsReads(t *testing.T) {
	hs := &hintStore{Store: memory.New(), named: map[string][][]int{}}
	eng := newEngine(t, dagflow.WithStore(hs))
	eng.Handle("ok", func(ctx context.Context, in dagflow.Input) (any, error) { return 1, nil })
	st := run(t, eng, dagflow.Workflow{ID: "named", Steps: []dagflow.Step{
		{ID: "a", Handler: "ok"},
		{ID: "b", Handler: "ok", DependsOn: []string{"a"}},
		{ID: "c", Handler: "ok", DependsOn: []string{"a"}},
		{ID: "d", Handler: "ok", DependsOn: []string{"b", "c"}},
		{ID: "m", Handler: "ok", Map: &dagflow.Map{Items: dagflow.MapItems{List: json.RawMessage(`[1, 2]`)}}},
		{ID: "e", Handler: "ok", DependsOn: []string{"m"}},
	}})
	if st.State != dagflow.StateCompleted {
		t.Fatalf("run ended %s: %s", st.State, st.Error)
	}
	hs.mu.Lock()
	got := hs.named["named"]
	hs.mu.Unlock()
	var outcomes [][]int
	for _, steps := range got {
		if steps != nil {
			outcomes = append(outcomes, steps)
		}
	}
	slices.SortFunc(outcomes, slices.Compare)
	// a names b and c; b and c name d; each item of m names m.
	want := [][]int{{1, 2}, {3}, {3}, {4}, {4}}
	if diff := cmp.Diff(want, outcomes); diff != "" {
		t.Errorf("steps named by the outcomes' Updates (-want +got):\n%s", diff)
	}
	if len(got) < 8 { // six steps' outcomes and Create, at least
		t.Errorf("%d Updates named run %q, want at least 8", len(got), "named")
	}
}

// claimStore counts the steps in state running after each commit, and the
// most there were. Like hintStore it hides the memory store's Exclusive:
// the engine takes it for a store that engines share, and claims ahead.
type claimStore struct {
	store.Store
	mu      sync.Mutex
	running map[[3]any]bool
	now     int
	max     int
}

func newClaimStore(s store.Store) *claimStore {
	return &claimStore{Store: s, running: map[[3]any]bool{}}
}

func (s *claimStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	var puts []store.Step
	err := s.Store.Update(ctx, func(tx store.Tx) error {
		puts = puts[:0]
		return fn(&putsTx{Tx: tx, puts: &puts})
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range puts {
		k := [3]any{st.RunID, st.Index, st.Item}
		if was, is := s.running[k], st.State == store.StepRunning; was != is {
			s.running[k] = is
			if is {
				s.now++
			} else {
				s.now--
			}
		}
	}
	s.max = max(s.max, s.now)
	return nil
}

// claims returns the steps claimed now and the most claimed at once.
func (s *claimStore) claims() (now, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now, s.max
}

type putsTx struct {
	store.Tx
	puts *[]store.Step
}

func (t *putsTx) PutStep(s store.Step) error {
	*t.puts = append(*t.puts, s)
	return t.Tx.PutStep(s)
}

// concurrencyGauge records the most handlers under way at once.
type concurrencyGauge struct {
	mu       sync.Mutex
	now, max int
}

func (g *concurrencyGauge) enter() {
	g.mu.Lock()
	g.now++
	g.max = max(g.max, g.now)
	g.mu.Unlock()
}

func (g *concurrencyGauge) leave() {
	g.mu.Lock()
	g.now--
	g.mu.Unlock()
}

func (g *concurrencyGauge) most() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.max
}

func fanOutOf(id, handler string, n int) dagflow.Workflow {
	wf := dagflow.Workflow{ID: id}
	for i := range n {
		wf.Steps = append(wf.Steps, dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: handler, Parallel: true})
	}
	return wf
}

// TestClaimAhead: on a store that engines share, while attempts end often,
// the engine claims up to half its concurrency of steps ahead, which start
// as attempts end; never more than its concurrency of handlers run at
// once. Steps claimed ahead that find no worker within a second are given
// back without counting an attempt, and none are claimed ahead while
// attempts are long; Close gives back those still waiting.
func TestClaimAhead(t *testing.T) {
	const conc = 4
	cs := newClaimStore(memory.New())
	eng := newEngine(t, dagflow.WithStore(cs), dagflow.WithConcurrency(conc), dagflow.WithPollInterval(50*time.Millisecond))
	var short concurrencyGauge
	mustHandle(t, eng, "short", func(ctx context.Context, in dagflow.Input) (any, error) {
		short.enter()
		defer short.leave()
		time.Sleep(2 * time.Millisecond)
		return nil, nil
	})
	var long concurrencyGauge
	entered := make(chan string, 16)
	release := make(chan struct{})
	var calls sync.Map // step -> *atomic.Int64
	mustHandle(t, eng, "long", func(ctx context.Context, in dagflow.Input) (any, error) {
		long.enter()
		defer long.leave()
		n, _ := calls.LoadOrStore(in.StepID, new(atomic.Int64))
		n.(*atomic.Int64).Add(1)
		entered <- in.StepID
		select {
		case <-release:
			return nil, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})

	st := run(t, eng, fanOutOf("short", "short", 300))
	if st.State != dagflow.StateCompleted {
		t.Fatalf("run ended %s: %s", st.State, st.Error)
	}
	_, most := cs.claims()
	if short.most() > conc || most <= conc || most > conc+conc/2 {
		t.Errorf("short steps: %d handlers at once (want at most %d), %d steps claimed at once (want %d to %d)",
			short.most(), conc, most, conc+1, conc+conc/2)
	}

	// Right after the short steps, the engine claims ahead: two steps
	// wait for a worker, beside the four that run.
	if _, err := eng.Create(ctxT(t), fanOutOf("long", "long", 6)); err != nil {
		t.Fatal(err)
	}
	for range conc {
		<-entered
	}
	waitUntil(t, "6 steps claimed", func() bool { now, _ := cs.claims(); return now == 6 })
	// They are given back after a second, claimed again while attempts
	// ended lately, and then no more: four steps claimed, four running.
	waitUntil(t, "4 steps claimed", func() bool { now, _ := cs.claims(); return now == conc })
	time.Sleep(1500 * time.Millisecond)
	if now, _ := cs.claims(); now != conc || long.most() != conc {
		t.Errorf("long steps: %d claimed, %d handlers at once; want %d and %d", now, long.most(), conc, conc)
	}
	// The status shows the steps given back as not started.
	st, err := eng.Status(ctxT(t), "long")
	if err != nil {
		t.Fatal(err)
	}
	running := 0
	for _, s := range st.Steps {
		switch {
		case s.State == dagflow.StateRunning:
			running++
		case s.Attempts != 0 || !s.StartedAt.IsZero():
			t.Errorf("step %s given back: %s, %d attempts, started %v; want no attempt and no start", s.ID, s.State, s.Attempts, s.StartedAt)
		}
	}
	if running != conc {
		t.Errorf("%d steps running, want %d", running, conc)
	}
	close(release)
	st, err = eng.Wait(ctxT(t), "long")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		t.Fatalf("run ended %s: %s", st.State, st.Error)
	}
	for _, s := range st.Steps {
		n, _ := calls.Load(s.ID)
		if s.Attempts != 1 || n == nil || n.(*atomic.Int64).Load() != 1 {
			t.Errorf("step %s: %d attempts, called %v times; want 1 and 1", s.ID, s.Attempts, n)
		}
	}
}

// waitUntil waits up to 10 seconds for cond.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// TestCloseGivesBackStepsClaimedAhead: Close gives back the steps claimed
// ahead that wait for a worker, as it does those whose attempts it cut
// short: none counts an attempt, and the next engine runs them all.
func TestCloseGivesBackStepsClaimedAhead(t *testing.T) {
	const conc = 4
	mem := memory.New()
	cs := newClaimStore(mem)
	eng, err := dagflow.Open(dagflow.WithStore(cs), dagflow.WithConcurrency(conc), dagflow.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	mustHandle(t, eng, "short", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
	var started atomic.Int64
	mustHandle(t, eng, "long", func(ctx context.Context, in dagflow.Input) (any, error) {
		started.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	if st := run(t, eng, fanOutOf("short", "short", 300)); st.State != dagflow.StateCompleted {
		t.Fatalf("run ended %s: %s", st.State, st.Error)
	}
	if _, err := eng.Create(ctxT(t), fanOutOf("long", "long", 6)); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "6 steps claimed", func() bool { now, _ := cs.claims(); return now == 6 })
	waitUntil(t, "4 attempts started", func() bool { return started.Load() == conc })
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	if now, _ := cs.claims(); now != 0 || started.Load() != conc {
		t.Fatalf("after Close: %d steps claimed, %d attempts started; want 0 and %d", now, started.Load(), conc)
	}

	next := newEngine(t, dagflow.WithStore(newClaimStore(mem)), dagflow.WithConcurrency(conc))
	mustHandle(t, next, "long", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
	st, err := next.Wait(ctxT(t), "long")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		t.Fatalf("run ended %s: %s", st.State, st.Error)
	}
	for _, s := range st.Steps {
		if s.Attempts != 1 {
			t.Errorf("step %s: %d attempts, want 1", s.ID, s.Attempts)
		}
	}
}
