package main

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow/httpstep"
)

var roundTrips = flag.Int("roundtrips", 0, "TestServeRoundTrips: measure this many create+wait round trips of one-step workflows through dagflow serve (0: skip)")

// TestServeRoundTrips measures create+wait round trips through the API of
// the built binary: for each of -roundtrips one-step workflows (an HTTP
// step, signed, on a Go job handler), POST /v1/workflows then GET
// /v1/workflows/{id}?wait=30s until it has completed; by one client, then by
// 16 at once; on bbolt, and on PostgreSQL when it can be reached. Run it
// without -race, which slows the binary down several times:
//
//	go test -run TestServeRoundTrips -count=1 . -args -roundtrips 1000
func TestServeRoundTrips(t *testing.T) {
	if *roundTrips <= 0 {
		t.Skip("a measurement: give -roundtrips N")
	}
	if raceEnabled {
		t.Log("the binary is built with -race: the figures are several times too low")
	}
	h, err := httpstep.Handler(func(context.Context, httpstep.Request) (any, error) { return "ok", nil }, httpstep.WithSecret([]byte(secret)))
	if err != nil {
		t.Fatal(err)
	}
	jobs := httptest.NewServer(h)
	defer jobs.Close()

	stores := map[string][]string{"bbolt": {"--db", filepath.Join(t.TempDir(), "flows.db")}}
	if dsn, schema, ok := postgresIfReachable(t); ok {
		stores["postgres"] = []string{"--postgres", dsn, "--schema", schema}
	}
	for name, args := range stores {
		t.Run(name, func(t *testing.T) {
			p := startServe(t, env(), args...)
			for _, clients := range []int{1, 16} {
				prefix := fmt.Sprintf("%s-%d", name, clients)
				took := measureRoundTrips(t, p, jobs.URL, prefix, *roundTrips, clients)
				t.Logf("%s, %2d client(s): %d create+wait round trips in %v: %.0f/s", name, clients, *roundTrips, took.Round(time.Millisecond),
					float64(*roundTrips)/took.Seconds())
			}
		})
	}
}

// postgresIfReachable returns the DSN and a fresh schema when PostgreSQL
// can be reached.
func postgresIfReachable(t *testing.T) (dsn, schema string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, cmp.Or(os.Getenv("DAGFLOW_POSTGRES_DSN"), defaultPostgresDSN))
	if err != nil {
		t.Logf("PostgreSQL cannot be reached (%v): bbolt only", err)
		return "", "", false
	}
	conn.Close(ctx)
	dsn, schema = postgresSchema(t)
	return dsn, schema, true
}

// measureRoundTrips creates n one-step workflows and waits for each, with
// clients goroutines at once, and returns how long that took.
func measureRoundTrips(t *testing.T, p *serveProc, jobsURL, prefix string, n, clients int) time.Duration {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}, Timeout: time.Minute}
	defer client.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := roundTrip(client, p.url, jobsURL, fmt.Sprintf("%s-%d", prefix, i)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return took
}

// roundTrip creates run id with one step at jobsURL and waits for it to
// complete.
func roundTrip(client *http.Client, base, jobsURL, id string) error {
	body := fmt.Sprintf(`{"id": %q, "steps": [{"id": "a", "url": %q}]}`, id, jobsURL)
	resp, err := client.Post(base+"/v1/workflows", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("create %s: %s %s", id, resp.Status, b)
	}
	for {
		resp, err := client.Get(base + "/v1/workflows/" + id + "?wait=30s")
		if err != nil {
			return err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("wait %s: %s %s", id, resp.Status, b)
		}
		var st struct{ State string }
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("wait %s: %v", id, err)
		}
		switch st.State {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("run %s %s: %s", id, st.State, b)
		}
	}
}
