// Chaining runs steps one after another, each using the previous step's
// result: the hosted docs' order-processing chain, with Go handlers, on a
// bbolt file (the embedded default store).
//
//	go run ./examples/chaining
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/dagflow/dagflow"
)

func main() {
	if err := run(context.Background(), os.Stdout, ""); err != nil {
		log.Fatal(err)
	}
}

// run runs the chain on the bbolt file at path (a temporary one when path is
// empty) and prints each step's result.
func run(ctx context.Context, w io.Writer, path string) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "dagflow-chaining")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "flows.db")
	}
	eng, err := dagflow.Open(dagflow.WithPath(path))
	if err != nil {
		return err
	}
	defer eng.Close()

	eng.Handle("validate-order", func(ctx context.Context, in dagflow.Input) (any, error) {
		var order struct {
			OrderID string  `json:"orderId"`
			Amount  float64 `json:"amount"`
		}
		if err := in.DecodeContext(&order); err != nil {
			return nil, dagflow.Permanent(err)
		}
		if order.Amount <= 0 {
			return nil, dagflow.Permanent(fmt.Errorf("order %s has no amount", order.OrderID))
		}
		return map[string]any{"valid": true, "amount": order.Amount}, nil
	})
	eng.Handle("charge-payment", func(ctx context.Context, in dagflow.Input) (any, error) {
		var v struct {
			Amount float64 `json:"amount"`
		}
		if err := in.PreviousSteps.Decode("validate-order", &v); err != nil {
			return nil, err
		}
		// A real handler calls the payment provider here, passing
		// in.IdempotencyKey() so that a retried attempt charges once.
		return map[string]any{"chargeId": "ch_" + in.WorkflowID, "amount": v.Amount}, nil
	})
	eng.Handle("ship-order", func(ctx context.Context, in dagflow.Input) (any, error) {
		return map[string]any{"trackingNumber": "TRK-" + in.WorkflowID}, nil
	})
	eng.Handle("send-confirmation", func(ctx context.Context, in dagflow.Input) (any, error) {
		var ship struct {
			TrackingNumber string `json:"trackingNumber"`
		}
		if err := in.PreviousSteps.Decode("ship-order", &ship); err != nil {
			return nil, err
		}
		in.Logger().Info("sending confirmation", "tracking", ship.TrackingNumber)
		return map[string]any{"sent": true}, nil
	})

	wf, err := dagflow.ParseWorkflow([]byte(`{
	  "id": "order_123",
	  "context": {"orderId": "order_123", "amount": 49.90},
	  "steps": [
	    {"id": "validate-order", "handler": "validate-order"},
	    {"id": "charge-payment", "handler": "charge-payment", "dependsOn": ["validate-order"],
	     "retries": {"maxAttempts": 3, "backoff": "exponential", "initialInterval": 1}},
	    {"id": "ship-order", "handler": "ship-order", "dependsOn": ["charge-payment"]},
	    {"id": "send-confirmation", "handler": "send-confirmation", "dependsOn": ["ship-order"]}
	  ]
	}`))
	if err != nil {
		return err
	}
	if _, err := eng.Create(ctx, wf); err != nil {
		return err
	}
	st, err := eng.Wait(ctx, wf.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "run %s: %s\n", st.ID, st.State)
	for _, id := range st.CompletedSteps {
		fmt.Fprintf(w, "  %-18s %s\n", id, st.Results[id])
	}
	if st.State != dagflow.StateCompleted {
		return fmt.Errorf("run %s: %s", st.State, st.Error)
	}
	return nil
}
