package dagflow_test

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"testing"

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
