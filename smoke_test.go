package dagflow_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

func TestSmoke(t *testing.T) {
	ctx := context.Background()
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithHandler("h", func(ctx context.Context, in dagflow.Input) (any, error) {
		return in.StepID, nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	w := dagflow.Workflow{ID: "chain"}
	for i := range 10 {
		s := dagflow.Step{ID: fmt.Sprint("s", i), Handler: "h"}
		if i > 0 {
			s.DependsOn = []string{fmt.Sprint("s", i-1)}
		}
		w.Steps = append(w.Steps, s)
	}
	if _, err := eng.Create(ctx, w); err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	st, err := eng.Wait(wctx, "chain")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s %v %s", st.State, st.CompletedSteps, st.Error)
}
