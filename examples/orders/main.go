// Orders runs the hosted docs' order-processing chain (validate-order ->
// charge-payment -> ship-order -> send-confirmation) as HTTP job steps: it
// serves the four job handlers itself on 127.0.0.1, written with
// httpstep.Handler, opens an engine on a bbolt file whose base URL is that
// server, runs order.json (relative URLs) and prints the final status JSON.
//
//	go run ./examples/orders               # a temporary database
//	go run ./examples/orders --db flows.db
//
// With --serve it only serves the job handlers, so that the command-line tool
// can run the same file against them (see README.md):
//
//	go run ./examples/orders --serve 127.0.0.1:8081
//
// Requests are signed with $DAGFLOW_SECRET, and the handlers check the
// signatures; without it, the program makes up a secret for its own engine
// (in --serve mode, the handlers then accept unsigned requests).
package main

import (
	"context"
	"crypto/rand"
	_ "embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
)

// orderJSON is the workflow: the file a user would hand to 'dagflow run'.
//
//go:embed order.json
var orderJSON []byte

func main() {
	db := flag.String("db", "", "the bbolt database `file` (default: a temporary file)")
	serve := flag.String("serve", "", "only serve the job handlers on `addr` until interrupted")
	flag.Parse()
	log.SetFlags(0)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	secret := []byte(os.Getenv("DAGFLOW_SECRET"))

	if *serve != "" {
		if err := serveJobs(ctx, *serve, secret); err != nil {
			log.Fatal(err)
		}
		return
	}
	if len(secret) == 0 {
		secret = []byte(rand.Text())
	}
	st, err := run(ctx, *db, secret, os.Stdout)
	if err != nil {
		log.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		os.Exit(1)
	}
}

// run serves the job handlers on an ephemeral port of 127.0.0.1, runs the
// order workflow on the bbolt file at dbPath (a temporary one if empty) with
// requests signed with secret, and writes the final status to w as indented
// JSON.
func run(ctx context.Context, dbPath string, secret []byte, w io.Writer) (*dagflow.Status, error) {
	if dbPath == "" {
		dir, err := os.MkdirTemp("", "dagflow-orders")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		dbPath = filepath.Join(dir, "flows.db")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: jobs(secret), ReadHeaderTimeout: 10 * time.Second}
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

	wf, err := dagflow.ParseWorkflow(orderJSON)
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

// serveJobs serves the job handlers on addr until ctx is done.
func serveJobs(ctx context.Context, addr string, secret []byte) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: jobs(secret), ReadHeaderTimeout: 10 * time.Second}
	if len(secret) == 0 {
		log.Print("DAGFLOW_SECRET is not set: accepting unsigned requests")
	}
	log.Printf("serving the order job handlers on http://%s/jobs/", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}

// order is the workflow's context.
type order struct {
	OrderID  string  `json:"orderId"`
	Customer string  `json:"customer"`
	Amount   float64 `json:"amount"`
}

// jobs returns the order job handlers, at /jobs/<step id>. With a secret,
// they refuse requests without a valid Dagflow-Signature.
func jobs(secret []byte) http.Handler {
	mux := http.NewServeMux()
	handle := func(name string, fn func(context.Context, httpstep.Request) (any, error)) {
		h, err := httpstep.Handler(fn, httpstep.WithSecret(secret))
		if err != nil {
			log.Fatal(err) // no secret: refuse to serve unsigned requests
		}
		mux.Handle("POST /jobs/"+name, h)
	}
	handle("validate-order", func(_ context.Context, req httpstep.Request) (any, error) {
		var o order
		if err := json.Unmarshal(req.Context, &o); err != nil {
			return nil, httpstep.Permanent(err)
		}
		if o.Amount <= 0 {
			// Permanent: a retry would not make the order valid.
			return nil, httpstep.Permanent(fmt.Errorf("order %s has no amount", o.OrderID))
		}
		return map[string]any{"valid": true, "amount": o.Amount}, nil
	})
	handle("charge-payment", func(_ context.Context, req httpstep.Request) (any, error) {
		var v struct {
			Amount float64 `json:"amount"`
		}
		if err := decodeResult(req, "validate-order", &v); err != nil {
			return nil, err
		}
		// A real handler calls the payment provider here, passing it the
		// request's Idempotency-Key header so that a retried attempt
		// charges once.
		return map[string]any{"chargeId": "ch_" + req.WorkflowID, "amount": v.Amount}, nil
	})
	handle("ship-order", func(_ context.Context, req httpstep.Request) (any, error) {
		return map[string]any{"trackingNumber": "TRK-" + req.WorkflowID}, nil
	})
	handle("send-confirmation", func(_ context.Context, req httpstep.Request) (any, error) {
		var o order
		if err := json.Unmarshal(req.Context, &o); err != nil {
			return nil, httpstep.Permanent(err)
		}
		var ship struct {
			TrackingNumber string `json:"trackingNumber"`
		}
		if err := decodeResult(req, "ship-order", &ship); err != nil {
			return nil, err
		}
		return map[string]any{"sent": true, "to": o.Customer, "trackingNumber": ship.TrackingNumber}, nil
	})
	return mux
}

// decodeResult decodes the result of the earlier step id into v.
func decodeResult(req httpstep.Request, id string, v any) error {
	prev, ok := req.PreviousSteps[id]
	if !ok {
		return httpstep.Permanent(errors.New("no result from " + id))
	}
	return json.Unmarshal(prev.Result, v)
}
