package dagflow_test

import (
	"context"
	"fmt"
	"log"

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
