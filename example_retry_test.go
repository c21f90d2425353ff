package dagflow_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// A step is tried again under its retry policy; Engine.Retry runs a failed
// run's failed steps again and keeps what completed.
func ExampleEngine_Retry() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	broken := true
	eng.Handle("extract", func(ctx context.Context, in dagflow.Input) (any, error) {
		fmt.Println("extract, attempt", in.Attempt)
		return 1000, nil
	})
	eng.Handle("load", func(ctx context.Context, in dagflow.Input) (any, error) {
		fmt.Println("load, attempt", in.Attempt)
		if broken {
			return nil, errors.New("warehouse offline")
		}
		return "loaded", nil
	})
	ctx := context.Background()
	wf := dagflow.Workflow{ID: "etl", Steps: []dagflow.Step{
		{ID: "extract", Handler: "extract"},
		{ID: "load", Handler: "load", DependsOn: []string{"extract"},
			Retries: &dagflow.RetryConfig{MaxAttempts: 2, Backoff: dagflow.Fixed, InitialInterval: 10 * time.Millisecond}},
	}}
	if _, err := eng.Create(ctx, wf); err != nil {
		log.Fatal(err)
	}
	st, _ := eng.Wait(ctx, "etl")
	fmt.Println(st.State, "-", st.Error)

	broken = false
	if _, err := eng.Retry(ctx, "etl"); err != nil {
		log.Fatal(err)
	}
	st, _ = eng.Wait(ctx, "etl")
	fmt.Println(st.State, st.CompletedSteps)
	// Output:
	// extract, attempt 1
	// load, attempt 1
	// load, attempt 2
	// failed - step "load" failed after 2 attempts: warehouse offline
	// load, attempt 1
	// completed [extract load]
}
