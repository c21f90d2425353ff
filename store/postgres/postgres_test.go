package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/storetest"
)

// The tests need a PostgreSQL server: DAGFLOW_POSTGRES_DSN names it, by
// default postgres://postgres@127.0.0.1:5432/test. When it cannot be reached
// they skip, except in CI (CI=true), where they fail. Each test works in a
// schema of its own, dropped when it ends.

const defaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

func testDSN() string {
	if dsn := os.Getenv("DAGFLOW_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return defaultDSN
}

var (
	adminOnce sync.Once
	admin     *pgxpool.Pool
	adminErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if admin != nil {
		admin.Close()
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goroutines left running:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// adminPool returns a pool for setting tests up, or ends the test when the
// server cannot be reached.
func adminPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	adminOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		admin, adminErr = pgxpool.New(ctx, testDSN())
		if adminErr == nil {
			if adminErr = admin.Ping(ctx); adminErr != nil {
				admin.Close()
				admin = nil
			}
		}
	})
	if adminErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %v", defaultDSN, adminErr)
		}
		t.Skipf("PostgreSQL (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %v", defaultDSN, adminErr)
	}
	return admin
}

// newSchema returns the name of a schema for one test, dropped when the
// test ends (after the stores opened later are closed).
func newSchema(t testing.TB) string {
	t.Helper()
	a := adminPool(t)
	var b [5]byte
	rand.Read(b[:])
	name := "dftest_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := a.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return name
}

// openStore opens a Store on schema, closed when the test ends.
func openStore(t testing.TB, schema string, o Options) *Store {
	t.Helper()
	o.Schema = schema
	if o.MaxConns == 0 {
		o.MaxConns = 4
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, testDSN(), o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// openStoreParams opens a Store on schema over a pool of its own whose
// connections set the given server parameters (see storeWithConfig).
func openStoreParams(t testing.TB, schema string, o Options, params map[string]string) *Store {
	t.Helper()
	return storeWithConfig(t, schema, o, func(cfg *pgxpool.Config) {
		for k, v := range params {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
		cfg.MaxConns = 4
	})
}

// storeWithConfig opens a Store on schema over a pool of its own, made from
// the test DSN's configuration as edit changes it; both are closed when the
// test ends. It skips the test when the server refuses the connection for
// want of privileges (a parameter only a superuser may set).
func storeWithConfig(t testing.TB, schema string, o Options, edit func(*pgxpool.Config)) *Store {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testDSN())
	if err != nil {
		t.Fatal(err)
	}
	edit(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" { // insufficient_privilege
			t.Skipf("the server refuses the connection: %v", err)
		}
		t.Fatal(err)
	}
	o.Schema = schema
	s, err := New(ctx, pool, o)
	if err != nil {
		pool.Close()
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		s.Close()
		pool.Close()
	})
	return s
}

func TestConformance(t *testing.T) {
	t.Parallel()
	adminPool(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		return openStore(t, newSchema(t), Options{})
	})
}

var base = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func putRun(t *testing.T, s *Store, id string, steps int) {
	t.Helper()
	err := s.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.PutRun(store.Run{ID: id, State: store.RunRunning, CreatedAt: base, Total: steps, Serial: -1}); err != nil {
			return err
		}
		for i := range steps {
			st := store.Step{RunID: id, Index: i, ID: fmt.Sprint("s", i), State: store.StepReady, DueAt: base}
			if err := tx.PutStep(st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenConcurrently(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), testDSN(), Options{Schema: schema, MaxConns: 2})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Open: %v", err)
	}
	var versions []int
	rows, _ := adminPool(t).Query(context.Background(), "SELECT version FROM "+pgx.Identifier{schema}.Sanitize()+".schema_version ORDER BY version")
	versions, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != SchemaVersion() || versions[len(versions)-1] != SchemaVersion() {
		t.Errorf("schema_version = %v, want 1..%d once each", versions, SchemaVersion())
	}
}

func TestNewerSchema(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := openStore(t, schema, Options{})
	s.Close()
	_, err := adminPool(t).Exec(context.Background(), "INSERT INTO "+pgx.Identifier{schema}.Sanitize()+".schema_version (version, name) VALUES ($1, 'future')", SchemaVersion()+1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(context.Background(), testDSN(), Options{Schema: schema})
	if err == nil || !strings.Contains(err.Error(), "written by a newer dagflow") {
		t.Fatalf("Open of a schema from a newer dagflow = %v, want an error saying so", err)
	}
}

func TestOptionsValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Schema: strings.Repeat("s", 64)}, "Options.Schema"},
		{Options{MaxConns: -1}, "Options.MaxConns"},
	} {
		_, err := Open(context.Background(), testDSN(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%+v) = %v, want an error naming %s", tc.o, err, tc.want)
		}
	}
}

func TestOpenUnreachable(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Open(ctx, "postgres://nobody:secret@127.0.0.1:1/none?sslmode=disable&connect_timeout=2", Options{})
	if err == nil {
		t.Fatal("Open of an unreachable server succeeded")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the password: %v", err)
	}
}

// JSON comes back byte for byte (the json type, not jsonb), \u0000 included.
func TestJSONExact(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	putRun(t, s, "r", 1)
	result := json.RawMessage(`{"z": 1,  "a": "nul\u0000", "a": 2.50}`)
	spec := json.RawMessage(` {"id" : "r"} `)
	err := s.Update(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("r", 0, 0)
		if err != nil {
			return err
		}
		st.Result = result
		if err := tx.PutStep(st); err != nil {
			return err
		}
		if err := tx.PutWebhook(store.Webhook{ID: "w", RunID: "r", Body: json.RawMessage(`null`)}); err != nil {
			return err
		}
		return tx.PutSpec("r", spec)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("r", 0, 0)
		if err != nil {
			return err
		}
		if string(st.Result) != string(result) {
			t.Errorf("Result = %s, want %s", st.Result, result)
		}
		got, err := tx.Spec("r")
		if err != nil || string(got) != string(spec) {
			t.Errorf("Spec = %q, %v; want %q", got, err, spec)
		}
		hooks, err := tx.Webhooks("r")
		if err != nil || len(hooks) != 1 || string(hooks[0].Body) != "null" {
			t.Errorf("Webhooks = %+v, %v; want one with body null", hooks, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Text PostgreSQL cannot hold (NUL, invalid UTF-8) does not make a write
// fail: it is replaced.
func TestTextCleaned(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	putRun(t, s, "r", 1)
	err := s.Update(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("r", 0, 0)
		if err != nil {
			return err
		}
		st.Error = "bad\x00reply \xff"
		return tx.PutStep(st)
	})
	if err != nil {
		t.Fatal(err)
	}
	s.View(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("r", 0, 0)
		if err != nil || st.Error != "bad\uFFFDreply \uFFFD" {
			t.Errorf("Error = %q, %v", st.Error, err)
		}
		return nil
	})
}

func TestErrorUnchanged(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	putRun(t, s, "r", 1)
	mine := errors.New("mine")
	for _, fn := range []func(store.Tx) error{
		func(store.Tx) error { return mine },
		func(tx store.Tx) error { tx.Run("r"); return mine },
		func(tx store.Tx) error { tx.PutRun(store.Run{ID: "x", CreatedAt: base}); return mine },
	} {
		if err := s.Update(context.Background(), fn); err != mine {
			t.Errorf("Update = %v, want fn's error itself", err)
		}
		if err := s.View(context.Background(), fn); err != mine {
			t.Errorf("View = %v, want fn's error itself", err)
		}
	}
	s.View(context.Background(), func(tx store.Tx) error {
		if _, err := tx.Run("x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("a failed Update wrote run x: %v", err)
		}
		return nil
	})
}

// A connection killed in the middle of an Update makes the store run the
// function again, on another connection, and commit once.
func TestRetryAfterLostConnection(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	putRun(t, s, "r", 1)
	calls := 0
	err := s.Update(context.Background(), func(stx store.Tx) error {
		calls++
		r, err := stx.Run("r")
		if err != nil {
			return err
		}
		if calls == 1 {
			pid := stx.(*tx).conn.PgConn().PID()
			if _, err := adminPool(t).Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
				t.Fatal(err)
			}
		}
		r.Done++
		if err := stx.PutRun(r); err != nil {
			return err
		}
		_, err = stx.Step("r", 0, 0) // the read that finds the connection gone
		return err
	})
	if err != nil {
		t.Fatalf("Update = %v", err)
	}
	if calls != 2 {
		t.Errorf("fn ran %d times, want 2", calls)
	}
	s.View(context.Background(), func(tx store.Tx) error {
		r, err := tx.Run("r")
		if err != nil || r.Done != 1 {
			t.Errorf("run = %+v, %v; want Done 1", r, err)
		}
		return nil
	})
}

// Two Updates that lock steps of two runs in opposite orders deadlock
// (runs are locked in the order of their ids, steps read alone are not).
// The lock timeout aborts one, and the store runs it again: with the
// deadlock detector set to wait a minute, only the lock timeout can break
// the deadlock in time. Without a lock timeout, the detector does it.
func TestRetryAfterDeadlock(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeout  time.Duration
		detector string // deadlock_timeout
	}{
		{"LockTimeout", 0, "60s"},
		{"DeadlockDetector", -1, "1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.timeout < 0 && testing.Short() {
				t.Skip("waits for PostgreSQL's deadlock_timeout")
			}
			// Two stores, as in two processes: one store's Updates share a
			// transaction, and would not deadlock.
			schema := newSchema(t)
			params := map[string]string{"deadlock_timeout": tc.detector}
			s := openStoreParams(t, schema, Options{LockTimeout: tc.timeout}, params)
			s2 := openStoreParams(t, schema, Options{LockTimeout: tc.timeout}, params)
			putRun(t, s, "a", 1)
			putRun(t, s, "b", 1)
			var calls atomic.Int32
			var both sync.WaitGroup
			both.Add(2)
			var once [2]sync.Once
			lock := func(i int, first, second string) error {
				return []*Store{s, s2}[i].Update(context.Background(), func(tx store.Tx) error {
					calls.Add(1)
					st, err := tx.Step(first, 0, 0)
					if err != nil {
						return err
					}
					once[i].Do(func() { both.Done(); both.Wait() })
					if _, err := tx.Step(second, 0, 0); err != nil {
						return err
					}
					st.Attempts++
					return tx.PutStep(st)
				})
			}
			start := time.Now()
			errs := make(chan error, 2)
			go func() { errs <- lock(0, "a", "b") }()
			go func() { errs <- lock(1, "b", "a") }()
			for range 2 {
				if err := <-errs; err != nil {
					t.Errorf("Update = %v", err)
				}
			}
			// A deadlock is broken, so one or both run again; the runs again
			// may still collide now and then, which costs another round.
			if n := calls.Load(); n < 3 || n > 8 {
				t.Errorf("functions ran %d times, want 3 to 8 (a deadlock broken, one or both run again)", n)
			}
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("took %v", d)
			} else {
				t.Logf("took %v", d)
			}
			s.View(context.Background(), func(tx store.Tx) error {
				for _, id := range []string{"a", "b"} {
					if st, err := tx.Step(id, 0, 0); err != nil || st.Attempts != 1 {
						t.Errorf("run %s step 0 = %+v, %v; want 1 attempt", id, st, err)
					}
				}
				return nil
			})
		})
	}
}

// Two transactions that both find a run missing and create it: one commits,
// the other runs again and finds the run. (Two stores, as in two processes:
// the Updates of one store share a transaction.)
func TestConcurrentCreate(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s := openStore(t, schema, Options{})
	s2 := openStore(t, schema, Options{})
	var both sync.WaitGroup
	both.Add(2)
	var created, found atomic.Int32
	create := func(s *Store, owner string) error {
		first := true
		return s.Update(context.Background(), func(tx store.Tx) error {
			r, err := tx.Run("r")
			if first {
				first = false
				both.Done()
				both.Wait()
			}
			if err == nil {
				found.Add(1)
				if r.Error == owner {
					return fmt.Errorf("found my own run")
				}
				return nil
			}
			if !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err := tx.PutRun(store.Run{ID: "r", State: store.RunRunning, Error: owner, CreatedAt: base}); err != nil {
				return err
			}
			created.Add(1)
			return tx.PutStep(store.Step{RunID: "r", Index: 0, ID: owner, State: store.StepPending})
		})
	}
	errs := make(chan error, 2)
	go func() { errs <- create(s, "one") }()
	go func() { errs <- create(s2, "two") }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("Update = %v", err)
		}
	}
	if found.Load() != 1 {
		t.Errorf("%d transactions found the run on their last try, want 1 (created %d times)", found.Load(), created.Load())
	}
	s.View(context.Background(), func(tx store.Tx) error {
		r, _ := tx.Run("r")
		st, _ := tx.Step("r", 0, 0)
		if st.ID != r.Error {
			t.Errorf("the step was written by %q but the run by %q", st.ID, r.Error)
		}
		return nil
	})
}

// Claims skip the steps another transaction holds instead of waiting.
func TestClaimsSkipLocked(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s1 := openStore(t, schema, Options{})
	s2 := openStore(t, schema, Options{})
	putRun(t, s1, "a", 3)
	now := base.Add(time.Second)
	err := s1.Update(context.Background(), func(tx store.Tx) error {
		due, err := tx.DueSteps(now, 1)
		if err != nil || len(due) != 1 {
			return fmt.Errorf("DueSteps = %v, %v", due, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s2.Update(ctx, func(tx2 store.Tx) error {
			other, err := tx2.DueSteps(now, 10)
			if err != nil {
				return err
			}
			if len(other) != 2 || other[0].Index == due[0].Index || other[1].Index == due[0].Index {
				t.Errorf("while step %d is held, another claim got %v", due[0].Index, other)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// View sees one snapshot, even while Updates commit.
func TestViewSnapshot(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	putRun(t, s, "a", 1)
	err := s.View(context.Background(), func(tx store.Tx) error {
		r, err := tx.Run("a")
		if err != nil {
			return err
		}
		if err := s.Update(context.Background(), func(tx store.Tx) error {
			r, err := tx.Run("a")
			if err != nil {
				return err
			}
			r.Done = 7
			return tx.PutRun(r)
		}); err != nil {
			return err
		}
		again, err := tx.Run("a")
		if err != nil {
			return err
		}
		if again.Done != r.Done {
			t.Errorf("View saw Done change from %d to %d", r.Done, again.Done)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Writes queued in a transaction are seen by its later reads, and an error
// in a queued write surfaces and rolls everything back.
func TestQueuedWrites(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	putRun(t, s, "a", 1)
	err := s.Update(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("a", 0, 0)
		if err != nil {
			return err
		}
		st.Attempts = 5
		if err := tx.PutStep(st); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.Attempt{RunID: "a", Index: 0, Number: 1}); err != nil {
			return err
		}
		// A step of a run that was never read: checked at once.
		if err := tx.PutStep(store.Step{RunID: "nope", Index: 0}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutStep of a missing run = %v, want ErrNotFound", err)
		}
		if err := tx.PutAttempt(store.Attempt{RunID: "nope", Index: 0, Number: 1}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("PutAttempt of a missing run = %v, want ErrNotFound", err)
		}
		got, err := tx.Step("a", 0, 0)
		if err != nil || got.Attempts != 5 {
			t.Errorf("Step after PutStep = %+v, %v", got, err)
		}
		atts, err := tx.Attempts("a", 0)
		if err != nil || len(atts) != 1 {
			t.Errorf("Attempts after PutAttempt = %+v, %v", atts, err)
		}
		// A write PostgreSQL refuses (a result that is not JSON) fails
		// the transaction at the next statement.
		st.Result = json.RawMessage(`{bad`)
		if err := tx.PutStep(st); err != nil {
			return err
		}
		_, err = tx.Attempts("a", 0)
		if err == nil {
			t.Errorf("a read after a refused write succeeded")
		}
		return err
	})
	if err == nil {
		t.Fatal("Update with a refused write succeeded")
	}
	s.View(context.Background(), func(tx store.Tx) error {
		st, _ := tx.Step("a", 0, 0)
		if st.Attempts != 0 {
			t.Errorf("a failed Update kept its writes: %+v", st)
		}
		return nil
	})
}

func TestClosed(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	ch, err := s.Watch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-ch; ok {
		t.Error("Watch delivered an event after Close")
	}
	if err := s.Notify(context.Background(), store.Change{Kind: store.ChangeDue}); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Notify after Close = %v", err)
	}
	if _, err := s.Watch(context.Background()); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Watch after Close = %v", err)
	}
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	pool, err := pgxpool.New(context.Background(), testDSN())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := New(context.Background(), pool, Options{Schema: schema})
	if err != nil {
		t.Fatal(err)
	}
	putRun(t, s, "a", 1)
	s.Close()
	if err := pool.Ping(context.Background()); err != nil {
		t.Errorf("Close closed the caller's pool: %v", err)
	}
}

// countingTracer counts the batches and queries sent on a pool's
// connections: each is one round trip (once statements are prepared).
type countingTracer struct{ batches, queries atomic.Int32 }

func (c *countingTracer) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (c *countingTracer) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *countingTracer) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (c *countingTracer) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}
func (c *countingTracer) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData)     {}

// tracedStore opens a Store on schema over a pool of maxConns connections
// that counts what it sends (see storeWithConfig).
func tracedStore(t *testing.T, schema string, o Options, maxConns int32) (*Store, *countingTracer) {
	t.Helper()
	tracer := &countingTracer{}
	s := storeWithConfig(t, schema, o, func(cfg *pgxpool.Config) {
		cfg.ConnConfig.Tracer = tracer
		cfg.MaxConns = maxConns
	})
	return s, tracer
}

// A transaction costs at most one round trip per read plus one: BEGIN goes
// with the first read and writes go with the next read or with COMMIT. A
// read the row cache answers costs none: its check goes with the next
// batch.
func TestRoundTrips(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cache bool
		// the round trips of the cases below, in order
		want []int
	}{
		{"server", false, []int{5, 1, 0, 2, 2, 4, 3}},
		// The finish reads the run and the step the claim wrote, the
		// Updates of "big" the steps that putRun wrote: all cached.
		{"cache", true, []int{4, 1, 0, 2, 1, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			roundTrips(t, tc.cache, tc.want)
		})
	}
}

func roundTrips(t *testing.T, cache bool, want []int) {
	s, tracer := tracedStore(t, newSchema(t), Options{}, 1)
	if !cache {
		s.cache = nil
	}
	putRun(t, s, "run-0", 2)
	n := 0
	count := func(name string, fn func() error) {
		t.Helper()
		tracer.batches.Store(0)
		tracer.queries.Store(0)
		if err := fn(); err != nil {
			t.Fatal(err)
		}
		if b, q := tracer.batches.Load(), tracer.queries.Load(); int(b+q) != want[n] {
			t.Errorf("%s: %d batches and %d queries, want %d round trips", name, b, q, want[n])
		}
		n++
	}
	claimFinish(s, "warm-up")
	// The finish reads the run and the step the claim wrote running: the
	// store's claimed set has them locked and read with BEGIN.
	count("claim (2 reads) and finish (2 reads of what it claimed)", func() error { _, err := claimFinish(s, "e"); return err })
	count("a blind write", func() error {
		return s.Update(context.Background(), func(tx store.Tx) error {
			return tx.PutRun(store.Run{ID: "x", State: store.RunRunning, CreatedAt: base})
		})
	})
	count("an Update that does nothing", func() error {
		return s.Update(context.Background(), func(tx store.Tx) error { return nil })
	})
	count("a View with one read", func() error {
		return s.View(context.Background(), func(tx store.Tx) error { _, err := tx.Run("x"); return err })
	})

	// A run too large to be read whole with its row: the steps an Update
	// names (store.ForRun) come with the run, the others one by one.
	putRun(t, s, "big", 3*smallRun)
	touch := func(ctx context.Context, steps ...int) func() error {
		return func() error {
			return s.Update(ctx, func(tx store.Tx) error {
				if _, err := tx.Run("big"); err != nil {
					return err
				}
				for _, i := range steps {
					st, err := tx.Step("big", i, 0)
					if err != nil {
						return err
					}
					st.Attempts++
					if err := tx.PutStep(st); err != nil {
						return err
					}
				}
				return nil
			})
		}
	}
	ctx := context.Background()
	count("reading the run and two steps it names, writing them", touch(store.ForRun(ctx, "big", 5, 6), 5, 6))
	count("reading the run and two steps it does not name, writing them", touch(store.ForRun(ctx, "big"), 5, 6))
	count("reading the run, a step it names and one it does not", touch(store.ForRun(ctx, "big", 5), 5, 7))
	err := s.View(ctx, func(tx store.Tx) error {
		for i, want := range map[int]int{5: 3, 6: 2, 7: 1, 8: 0} {
			st, err := tx.Step("big", i, 0)
			if err != nil {
				return err
			}
			if st.Attempts != want {
				t.Errorf("step %d: %d attempts written, want %d", i, st.Attempts, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
