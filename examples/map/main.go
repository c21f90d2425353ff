// Map runs a batch whose width is data: a "map" step processes every item
// of the run's context, at most two at a time, each item an HTTP job request
// of its own (with "item", "index" and the Idempotency-Key
// "<workflowId>/<stepId>/<index>"), and the last step receives the items'
// results in order. It serves the three job handlers itself on 127.0.0.1,
// written with httpstep.Handler, and prints the final status JSON.
//
//	go run ./examples/map
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
)

// batchJSON is the workflow, the batch.
//
//go:embed batch.json
var batchJSON []byte

func main() {
	log.SetFlags(0)
	st, err := run(context.Background(), "", os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		os.Exit(1)
	}
}

// run serves the job handlers, runs the batch on the bbolt file at dbPath (a
// temporary one if empty) and writes the final status to w.
func run(ctx context.Context, dbPath string, w io.Writer) (*dagflow.Status, error) {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "dagflow-map")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "flows.db")
	}
	secret := []byte(rand.Text())
	handlers, err := jobs(secret)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handlers, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()

	eng, err := dagflow.Open(
		dagflow.WithPath(dbPath),
		dagflow.WithHTTP(httpstep.Options{BaseURL: "http://" + ln.Addr().String(), Secret: secret}),
		dagflow.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))),
	)
	if err != nil {
		return nil, err
	}
	defer eng.Close()
	wf, err := dagflow.ParseWorkflow(batchJSON)
	if err != nil {
		return nil, err
	}
	if _, err := eng.Create(ctx, wf); err != nil {
		return nil, err
	}
	st, err := eng.Wait(ctx, wf.ID)
	if err != nil {
		return nil, err
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return st, enc.Encode(st)
}

// jobs returns the batch's job handlers at /api/jobs/<name>. process-item
// fails each item's first attempt, to show that items retry on their own.
func jobs(secret []byte) (http.Handler, error) {
	mux := http.NewServeMux()
	var mu sync.Mutex
	tried := map[string]bool{}
	for name, fn := range map[string]func(context.Context, httpstep.Request) (any, error){
		"prepare-batch": func(_ context.Context, req httpstep.Request) (any, error) {
			var c struct {
				BatchID string   `json:"batchId"`
				Items   []string `json:"items"`
			}
			if err := json.Unmarshal(req.Context, &c); err != nil {
				return nil, httpstep.Permanent(err)
			}
			return map[string]any{"batch": c.BatchID, "count": len(c.Items)}, nil
		},
		"process-item": func(_ context.Context, req httpstep.Request) (any, error) {
			var file string
			if err := json.Unmarshal(req.Item, &file); err != nil {
				return nil, httpstep.Permanent(fmt.Errorf("item %d: %w", req.Index, err))
			}
			mu.Lock()
			first := !tried[req.IdempotencyKey]
			tried[req.IdempotencyKey] = true
			mu.Unlock()
			if first {
				return nil, fmt.Errorf("item %d (%s): the resizer is warming up", req.Index, file)
			}
			return map[string]string{"file": file, "thumbnail": "thumbs/" + strings.TrimSuffix(file, ".png") + "_128.png"}, nil
		},
		"finalize-batch": func(_ context.Context, req httpstep.Request) (any, error) {
			var thumbs []struct {
				Thumbnail string `json:"thumbnail"`
			}
			if err := json.Unmarshal(req.PreviousSteps["process"].Result, &thumbs); err != nil {
				return nil, httpstep.Permanent(err)
			}
			names := make([]string, len(thumbs))
			for i, t := range thumbs {
				names[i] = t.Thumbnail
			}
			return map[string]any{"published": names}, nil
		},
	} {
		h, err := httpstep.Handler(fn, httpstep.WithSecret(secret))
		if err != nil {
			return nil, err
		}
		mux.Handle("POST /api/jobs/"+name, h)
	}
	return mux, nil
}
