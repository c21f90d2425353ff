// Pipeline runs a data pipeline with branches that split and join, and keeps
// going when a branch fails: with "onStepFailure": "continue" the steps
// downstream of a failed step are skipped, independent branches run to their
// end, and a final step that allows failed dependencies reports what was
// reached.
//
//	go run ./examples/pipeline
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/dagflow/dagflow"
)

func main() {
	if err := run(context.Background(), os.Stdout, ""); err != nil {
		log.Fatal(err)
	}
}

const pipeline = `{
  "id": "nightly-etl",
  "onStepFailure": "continue",
  "context": {"date": "2026-11-25"},
  "steps": [
    {"id": "extract", "handler": "extract"},
    {"id": "clean", "handler": "transform", "dependsOn": ["extract"], "parallel": true},
    {"id": "enrich", "handler": "transform", "dependsOn": ["extract"], "parallel": true},
    {"id": "geocode", "handler": "geocode", "dependsOn": ["enrich"], "parallel": true,
     "retries": {"maxAttempts": 2, "backoff": "fixed", "initialInterval": 0.01}},
    {"id": "score", "handler": "transform", "dependsOn": ["clean", "enrich"], "parallel": true},
    {"id": "map-tiles", "handler": "transform", "dependsOn": ["geocode"], "parallel": true},
    {"id": "load", "handler": "transform", "dependsOn": ["score"], "parallel": true},
    {"id": "report", "handler": "report", "dependsOn": ["load", "map-tiles"], "allowFailedDeps": true}
  ]
}`

func run(ctx context.Context, w io.Writer, path string) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "dagflow-pipeline")
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

	eng.Handle("extract", func(ctx context.Context, in dagflow.Input) (any, error) {
		return map[string]int{"rows": 1000}, nil
	})
	eng.Handle("transform", func(ctx context.Context, in dagflow.Input) (any, error) {
		return map[string]string{"step": in.StepID}, nil
	})
	eng.Handle("geocode", func(ctx context.Context, in dagflow.Input) (any, error) {
		return nil, errors.New("geocoding service unavailable")
	})
	eng.Handle("report", func(ctx context.Context, in dagflow.Input) (any, error) {
		var reached []string
		for id := range in.PreviousSteps.All() {
			reached = append(reached, id)
		}
		return map[string]any{"reached": reached, "missing": in.FailedDependencies}, nil
	})

	wf, err := dagflow.ParseWorkflow([]byte(pipeline))
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
	for _, s := range st.Steps {
		fmt.Fprintf(w, "  %-10s %-10s %s\n", s.ID, s.State, strings.TrimSpace(s.Error))
	}
	fmt.Fprintf(w, "report: %s\n", st.Results["report"])
	return nil
}
