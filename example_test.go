package dagflow_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// Open an engine, register handlers, create a run and wait for it.
func Example() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New())) // or dagflow.WithPath("flows.db")
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	eng.Handle("validate", func(ctx context.Context, in dagflow.Input) (any, error) {
		var order struct {
			Amount float64 `json:"amount"`
		}
		if err := in.DecodeContext(&order); err != nil {
			return nil, dagflow.Permanent(err)
		}
		return map[string]any{"valid": order.Amount > 0}, nil
	})
	eng.Handle("charge", func(ctx context.Context, in dagflow.Input) (any, error) {
		var v struct {
			Valid bool `json:"valid"`
		}
		if err := in.PreviousSteps.Decode("validate", &v); err != nil {
			return nil, err
		}
		return map[string]any{"charged": v.Valid}, nil
	})

	ctx := context.Background()
	wf := dagflow.Workflow{
		ID:      "order-1",
		Context: []byte(`{"amount": 42}`),
		Steps: []dagflow.Step{
			{ID: "validate", Handler: "validate"},
			{ID: "charge", Handler: "charge", DependsOn: []string{"validate"}},
		},
	}
	if _, err := eng.Create(ctx, wf); err != nil {
		log.Fatal(err)
	}
	st, err := eng.Wait(ctx, "order-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, st.CompletedSteps, string(st.Results["charge"]))
	// Output: completed [validate charge] {"charged":true}
}

// Open an engine on a bbolt file, the default store: runs that a process
// left unfinished resume when the next one opens the file, with the
// handlers given as options already registered.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "dagflow-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	eng, err := dagflow.Open(
		dagflow.WithPath(filepath.Join(dir, "flows.db")),
		dagflow.WithConcurrency(8),
		dagflow.WithHandler("greet", func(ctx context.Context, in dagflow.Input) (any, error) {
			return "hello from " + in.StepID, nil
		}),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	ctx := context.Background()
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "hello", Steps: []dagflow.Step{{ID: "greet", Handler: "greet"}}}); err != nil {
		log.Fatal(err)
	}
	st, err := eng.Wait(ctx, "hello")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, string(st.Results["greet"]))
	// Output: completed "hello from greet"
}

// A handler gets the run's context and the results of the steps completed
// before it; what it returns is the step's result. An error is retried
// under the step's retry policy unless marked Permanent.
func ExampleEngine_Handle() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()

	err = eng.Handle("reserve", func(ctx context.Context, in dagflow.Input) (any, error) {
		var order struct {
			Items int `json:"items"`
		}
		if err := in.DecodeContext(&order); err != nil {
			return nil, dagflow.Permanent(err) // a bad context will not get better
		}
		if in.Attempt < 2 {
			return nil, errors.New("inventory service busy") // tried again
		}
		return map[string]int{"reserved": order.Items}, nil
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	wf := dagflow.Workflow{ID: "order-7", Context: []byte(`{"items": 3}`), Steps: []dagflow.Step{
		{ID: "reserve", Handler: "reserve", Retries: &dagflow.RetryConfig{MaxAttempts: 3, InitialInterval: 10 * time.Millisecond}},
	}}
	if _, err := eng.Create(ctx, wf); err != nil {
		log.Fatal(err)
	}
	st, err := eng.Wait(ctx, "order-7")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, st.Steps[0].Attempts, string(st.Results["reserve"]))
	// Output: completed 2 {"reserved":3}
}

// Wait blocks until the run ends, or its context does; the status it
// returns says how each step ended.
func ExampleEngine_Wait() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("ok", func(ctx context.Context, in dagflow.Input) (any, error) { return "done", nil })
	eng.Handle("declined", func(ctx context.Context, in dagflow.Input) (any, error) {
		return nil, dagflow.Permanent(errors.New("card declined"))
	})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wf := dagflow.Workflow{ID: "order-8", Steps: []dagflow.Step{
		{ID: "validate", Handler: "ok"},
		{ID: "charge", Handler: "declined", DependsOn: []string{"validate"}},
		{ID: "ship", Handler: "ok", DependsOn: []string{"charge"}},
	}}
	if _, err := eng.Create(ctx, wf); err != nil {
		log.Fatal(err)
	}
	st, err := eng.Wait(ctx, "order-8")
	if err != nil {
		log.Fatal(err) // ctx ended first, or the engine closed
	}
	fmt.Println(st.State+":", st.Error)
	for _, s := range st.Steps {
		fmt.Println(s.ID, s.State)
	}
	// Output:
	// failed: step "charge" failed: card declined
	// validate completed
	// charge failed
	// ship skipped
}

// CreateIfAbsent says whether this call made the run: a request that is
// delivered twice (a retried HTTP call, a redelivered message) creates one
// run, and only its first delivery is told so.
func ExampleEngine_CreateIfAbsent() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("ship", func(ctx context.Context, in dagflow.Input) (any, error) { return "shipped", nil })

	ctx := context.Background()
	wf := dagflow.Workflow{ID: "order-7", Steps: []dagflow.Step{{ID: "ship", Handler: "ship"}}}
	for range 2 {
		_, created, err := eng.CreateIfAbsent(ctx, wf)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("created:", created)
	}
	// Output:
	// created: true
	// created: false
}
