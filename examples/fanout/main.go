// Fan-out runs many independent steps at the same time: after one step
// lists the work, a step per item runs in parallel (up to the engine's
// concurrency), and a last step collects their results.
//
//	go run ./examples/fanout
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
)

func main() {
	if err := run(context.Background(), os.Stdout, ""); err != nil {
		log.Fatal(err)
	}
}

var images = []string{"cat.jpg", "dog.jpg", "bird.jpg", "fish.jpg", "fox.jpg", "owl.jpg", "bee.jpg", "ant.jpg"}

func run(ctx context.Context, w io.Writer, path string) error {
	if path == "" {
		dir, err := os.MkdirTemp("", "dagflow-fanout")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		path = filepath.Join(dir, "flows.db")
	}
	eng, err := dagflow.Open(dagflow.WithPath(path), dagflow.WithConcurrency(4))
	if err != nil {
		return err
	}
	defer eng.Close()

	eng.Handle("list", func(ctx context.Context, in dagflow.Input) (any, error) {
		return images, nil
	})
	eng.Handle("thumbnail", func(ctx context.Context, in dagflow.Input) (any, error) {
		name := strings.TrimPrefix(in.StepID, "thumb-")
		select {
		case <-time.After(20 * time.Millisecond): // the work
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return map[string]any{"thumbnail": "thumbs/" + name, "bytes": 100 * len(name)}, nil
	})
	eng.Handle("collect", func(ctx context.Context, in dagflow.Input) (any, error) {
		total := 0
		for id := range in.PreviousSteps.All() {
			var r struct {
				Bytes int `json:"bytes"`
			}
			if strings.HasPrefix(id, "thumb-") {
				if err := in.PreviousSteps.Decode(id, &r); err != nil {
					return nil, err
				}
				total += r.Bytes
			}
		}
		return map[string]any{"thumbnails": len(images), "totalBytes": total}, nil
	})

	wf := dagflow.Workflow{ID: "thumbnails", Steps: []dagflow.Step{{ID: "list", Handler: "list"}}}
	var thumbs []string
	for _, img := range images {
		id := "thumb-" + img
		thumbs = append(thumbs, id)
		wf.Steps = append(wf.Steps, dagflow.Step{ID: id, Handler: "thumbnail", DependsOn: []string{"list"}, Parallel: true,
			Retries: &dagflow.RetryConfig{MaxAttempts: 3}})
	}
	wf.Steps = append(wf.Steps, dagflow.Step{ID: "collect", Handler: "collect", DependsOn: thumbs})

	start := time.Now()
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
	fmt.Fprintf(w, "run %s: %s (%d steps)\n", st.ID, st.State, len(st.Steps))
	fmt.Fprintf(w, "collect: %s\n", st.Results["collect"])
	log.Printf("%d thumbnails of 20ms each, 4 at a time, in %v", len(images), time.Since(start).Round(time.Millisecond))
	return nil
}
