package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow"
)

// defaultPostgresDSN is the server of the PostgreSQL tests when
// DAGFLOW_POSTGRES_DSN does not name one. When it cannot be reached, they
// skip, except in CI (CI=true), where they fail.
const defaultPostgresDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// postgresSchema returns the DSN of the test server and the name of a
// schema for one test, dropped when the test ends (after the processes
// started later have stopped).
func postgresSchema(t *testing.T) (dsn, schema string) {
	t.Helper()
	dsn = cmp.Or(os.Getenv("DAGFLOW_POSTGRES_DSN"), defaultPostgresDSN)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %v", defaultPostgresDSN, err)
		}
		t.Skipf("PostgreSQL (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %v", defaultPostgresDSN, err)
	}
	schema = "dfserve_" + hex.EncodeToString([]byte(rand.Text())[:5])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{schema}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", schema, err)
		}
		conn.Close(ctx)
	})
	return dsn, schema
}

// TestServePostgres: two serve processes on one PostgreSQL schema share
// their runs: either answers for a run the other created, and events and
// cancellations sent to one reach runs whose steps the other runs.
func TestServePostgres(t *testing.T) {
	t.Parallel()
	dsn, schema := postgresSchema(t)
	j := newJobs(t)
	a := startServe(t, env(), "--postgres", dsn, "--schema", schema)
	b := startServe(t, env(), "--postgres", dsn, "--schema", schema)

	t.Run("create on one, wait on the other", func(t *testing.T) {
		body := orderChain("pg-1", j.url, nil)
		a.call(t, "POST", "/v1/workflows", body).want(t, 201)
		b.call(t, "POST", "/v1/workflows", body).want(t, 200) // the same run
		checkCompleted(t, b.call(t, "GET", "/v1/workflows/pg-1?wait=30s", "").want(t, 200).runStatus(t), "pg-1")
		checkCompleted(t, a.call(t, "GET", "/v1/workflows/pg-1", "").want(t, 200).runStatus(t), "pg-1")
		if n := j.count("validate-order"); n != 1 {
			t.Errorf("validate-order called %d times, want 1", n)
		}
		var list dagflow.RunList
		b.call(t, "GET", "/v1/workflows?state=completed", "").want(t, 200).decode(t, &list)
		if len(list.Runs) != 1 || list.Runs[0].ID != "pg-1" {
			t.Errorf("the other process lists %+v", list.Runs)
		}
		b.call(t, "POST", "/v1/workflows", orderChain("pg-1", j.url, map[string]string{"ship-order": "fail"})).want(t, 409)
	})

	t.Run("event sent to the other", func(t *testing.T) {
		a.call(t, "POST", "/v1/workflows", approvalFlow("pg-2", "order_pg", j.url, "")).want(t, 201)
		b.waitState(t, "pg-2", func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateWaiting })
		b.call(t, "POST", "/v1/events", `{"name": "order-approved", "key": "order_pg", "payload": "ok"}`).want(t, 202)
		st := a.call(t, "GET", "/v1/workflows/pg-2?wait=30s", "").want(t, 200).runStatus(t)
		if st.State != dagflow.StateCompleted || compact(st.Results["approval"]) != `"ok"` {
			t.Errorf("after the event: %s %q, approval result %s", st.State, st.Error, st.Results["approval"])
		}
	})

	t.Run("cancel and retry on the other", func(t *testing.T) {
		a.call(t, "POST", "/v1/workflows", orderChain("pg-3", j.url, map[string]string{"charge-payment": "block"})).want(t, 201)
		j.waitBlocked(t)
		b.call(t, "POST", "/v1/workflows/pg-3/cancel", "").want(t, 200)
		st := a.call(t, "GET", "/v1/workflows/pg-3?wait=30s", "").want(t, 200).runStatus(t)
		if st.State != dagflow.StateCancelled {
			t.Fatalf("after cancel: %s %q", st.State, st.Error)
		}
		a.call(t, "POST", "/v1/workflows/pg-3/cancel", "").want(t, 409)
		a.call(t, "POST", "/v1/workflows/pg-3/retry", "").want(t, 200)
		if st := b.call(t, "GET", "/v1/workflows/pg-3?wait=30s", "").want(t, 200).runStatus(t); st.State != dagflow.StateCompleted {
			t.Errorf("after retry: %s %q", st.State, st.Error)
		}
	})

	for name, p := range map[string]*serveProc{"first": a, "second": b} {
		if code, took := p.stop(t); code != 0 || took > 10*time.Second {
			t.Errorf("the %s serve exited %d, %v after SIGTERM:\n%s", name, code, took, p.errors())
		}
	}
}
