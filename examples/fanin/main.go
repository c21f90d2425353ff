// Fan-in joins several independent steps: three data sources are fetched at
// the same time, and a report step waits for all of them and merges their
// results.
//
//	go run ./examples/fanin
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

func run(ctx context.Context, w io.Writer, path string) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "dagflow-fanin")
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

	sales := map[string]int{"fetch-web-sales": 120, "fetch-store-sales": 75, "fetch-partner-sales": 30}
	eng.Handle("fetch", func(ctx context.Context, in dagflow.Input) (any, error) {
		return map[string]int{"orders": sales[in.StepID]}, nil
	})
	eng.Handle("report", func(ctx context.Context, in dagflow.Input) (any, error) {
		total := 0
		for id := range sales {
			var r struct {
				Orders int `json:"orders"`
			}
			if err := in.PreviousSteps.Decode(id, &r); err != nil {
				return nil, err
			}
			total += r.Orders
		}
		return map[string]int{"totalOrders": total, "sources": in.PreviousSteps.Len()}, nil
	})

	wf, err := dagflow.ParseWorkflow([]byte(`{
	  "id": "daily-report",
	  "steps": [
	    {"id": "fetch-web-sales", "handler": "fetch", "parallel": true},
	    {"id": "fetch-store-sales", "handler": "fetch", "parallel": true},
	    {"id": "fetch-partner-sales", "handler": "fetch", "parallel": true},
	    {"id": "report", "handler": "report",
	     "dependsOn": ["fetch-web-sales", "fetch-store-sales", "fetch-partner-sales"]}
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
	if st.State != dagflow.StateCompleted {
		return fmt.Errorf("run %s: %s", st.State, st.Error)
	}
	fmt.Fprintf(w, "run %s: %s\nreport: %s\n", st.ID, st.State, st.Results["report"])
	return nil
}
