// Saga books a trip as a saga: when a step fails, the steps that completed
// are undone by their compensations, in reverse order of completion. Here the
// car rental fails, so the hotel and then the flight are cancelled.
//
//	go run ./examples/saga
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/dagflow/dagflow"
)

func main() {
	if err := run(context.Background(), os.Stdout, ""); err != nil {
		log.Fatal(err)
	}
}

const trip = `{
  "id": "trip-42",
  "saga": true,
  "context": {"traveller": "Ada"},
  "steps": [
    {"id": "book-flight", "handler": "book", "compensation": "cancel"},
    {"id": "book-hotel", "handler": "book", "compensation": "cancel", "dependsOn": ["book-flight"]},
    {"id": "rent-car", "handler": "rent-car", "compensation": "cancel", "dependsOn": ["book-hotel"]},
    {"id": "send-itinerary", "handler": "book", "dependsOn": ["rent-car"]}
  ]
}`

func run(ctx context.Context, w io.Writer, path string) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "dagflow-saga")
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

	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format+"\n", args...)
	}
	eng.Handle("book", func(ctx context.Context, in dagflow.Input) (any, error) {
		say("booked %s", in.StepID)
		return map[string]string{"booking": in.StepID + "-0042"}, nil
	})
	eng.Handle("rent-car", func(ctx context.Context, in dagflow.Input) (any, error) {
		say("rent-car failed")
		return nil, dagflow.Permanent(errors.New("no cars left"))
	})
	eng.Handle("cancel", func(ctx context.Context, in dagflow.Input) (any, error) {
		// A compensation gets the result of the step it undoes, and its
		// own idempotency key.
		say("cancelled %s (booking %s, key %s)", in.StepID, in.Result, in.IdempotencyKey())
		return nil, nil
	})

	wf, err := dagflow.ParseWorkflow([]byte(trip))
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
	say("run %s: %s (%s)", st.ID, st.State, st.Error)
	say("compensated: %v", st.CompensatedSteps)
	return nil
}
