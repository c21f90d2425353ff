// Approval runs a saga that waits for a person: after the card is charged,
// the order waits (holding no worker, surviving restarts) for an
// "order-approved" event keyed by its order id. One order is approved and
// ships; the other is not approved in time, so its wait times out, the run
// fails, and the saga refunds the charge.
//
//	go run ./examples/approval
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/dagflow/dagflow"
)

func main() {
	log.SetFlags(0)
	if err := run(context.Background(), "", os.Stdout, time.Second); err != nil {
		log.Fatal(err)
	}
}

// order is the workflow of one order; the approval waits at most wait.
func order(id string, wait time.Duration) dagflow.Workflow {
	return dagflow.Workflow{
		ID:      id,
		Saga:    true,
		Context: json.RawMessage(fmt.Sprintf(`{"orderId": %q, "amount": 120}`, id)),
		Steps: []dagflow.Step{
			{ID: "charge", Handler: "charge", Compensation: "refund"},
			{ID: "approval", DependsOn: []string{"charge"},
				WaitForEvent: &dagflow.WaitForEvent{Name: "order-approved", Key: "context.orderId", Timeout: wait}},
			{ID: "ship", Handler: "ship", DependsOn: []string{"approval"}},
		},
	}
}

func run(ctx context.Context, dbPath string, w io.Writer, wait time.Duration) error {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "dagflow-approval")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "flows.db")
	}
	eng, err := dagflow.Open(dagflow.WithPath(dbPath),
		dagflow.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		return err
	}
	defer eng.Close()
	type orderCtx struct {
		ID     string  `json:"orderId"`
		Amount float64 `json:"amount"`
	}
	eng.Handle("charge", dagflow.Typed(func(ctx context.Context, o orderCtx, in dagflow.Input) (string, error) {
		return fmt.Sprintf("ch_%s_%.0f", o.ID, o.Amount), nil
	}))
	eng.Handle("refund", dagflow.Typed(func(ctx context.Context, o orderCtx, in dagflow.Input) (string, error) {
		var charge string
		json.Unmarshal(in.Result, &charge)
		fmt.Fprintf(w, "refund %s (%s)\n", charge, o.ID)
		return "re_" + charge, nil
	}))
	eng.Handle("ship", func(ctx context.Context, in dagflow.Input) (any, error) {
		var approval struct {
			By string `json:"by"`
		}
		if err := in.PreviousSteps.Decode("approval", &approval); err != nil {
			return nil, err
		}
		return "shipped, approved by " + approval.By, nil
	})

	for _, id := range []string{"order-approved", "order-forgotten"} {
		if _, err := eng.Create(ctx, order(id, wait)); err != nil {
			return err
		}
	}
	// Someone approves the first order, from another part of the
	// application (or `dagflow send-event`, or POST /v1/events of `dagflow
	// serve`).
	time.Sleep(wait / 5)
	if err := eng.SendEvent(ctx, dagflow.Event{Name: "order-approved", Key: "order-approved",
		Payload: json.RawMessage(`{"by": "grace"}`)}); err != nil {
		return err
	}
	for _, id := range []string{"order-approved", "order-forgotten"} {
		st, err := eng.Wait(ctx, id)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: %s", id, st.State)
		if st.State == dagflow.StateCompleted {
			fmt.Fprintf(w, ", %s\n", st.Results["ship"])
		} else {
			fmt.Fprintf(w, " (%s), compensated %v\n", st.Error, st.CompensatedSteps)
		}
	}
	return nil
}
