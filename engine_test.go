package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

func newEngine(t testing.TB, opts ...dagflow.Option) *dagflow.Engine {
	t.Helper()
	eng, err := dagflow.Open(append([]dagflow.Option{dagflow.WithStore(memory.New())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

func run(t testing.TB, eng *dagflow.Engine, wf dagflow.Workflow) *dagflow.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatalf("Create: %v", err)
	}
	st, err := eng.Wait(ctx, wf.ID)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st
}

func TestSmokeChain(t *testing.T) {
	eng := newEngine(t)
	var calls atomic.Int64
	eng.Handle("inc", func(ctx context.Context, in dagflow.Input) (any, error) {
		calls.Add(1)
		n := 0
		for _, raw := range in.PreviousSteps.All() {
			var v int
			json.Unmarshal(raw, &v)
			n = max(n, v)
		}
		return n + 1, nil
	})
	wf := dagflow.Workflow{ID: "chain"}
	for i := 0; i < 10; i++ {
		s := dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: "inc"}
		if i > 0 {
			s.DependsOn = []string{fmt.Sprintf("s%d", i-1)}
		}
		wf.Steps = append(wf.Steps, s)
	}
	st := run(t, eng, wf)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("state %s: %s", st.State, st.Error)
	}
	if string(st.Results["s9"]) != "10" {
		t.Fatalf("s9 = %s", st.Results["s9"])
	}
	if calls.Load() != 10 {
		t.Fatalf("calls %d", calls.Load())
	}
	_ = errors.New
}
