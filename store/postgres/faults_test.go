package postgres

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
)

// TestEngineFaults runs two engines (each with a store of its own, as two
// processes would) on one schema through a proxy, while backends of their
// connections are killed at random (pg_terminate_backend), a lock timeout
// is forced, and the proxy plays a server outage of a second in the middle.
// Every run must complete, no step may complete twice or run after its
// completion was recorded, no attempt number may run twice, steps with the
// default single attempt must not fail, and each COMMIT whose answer was
// lost must be logged once by the store.
func TestEngineFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("the fault test takes a while")
	}
	t.Parallel()
	adminPool(t)
	var logs bytes.Buffer
	var lmu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&lmu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))

	s1, p1 := openThroughProxy(t, Options{Logger: logger, LockTimeout: 100 * time.Millisecond})
	s2, p2 := openThroughProxyOn(t, s1.schema, Options{Logger: logger, LockTimeout: 100 * time.Millisecond})

	type key struct {
		run, step string
		attempt   int
	}
	var mu sync.Mutex
	starts := map[key]int{}
	ends := map[key]int{}
	work := func(ctx context.Context, in dagflow.Input) (any, error) {
		k := key{in.WorkflowID, in.StepID, in.Attempt}
		mu.Lock()
		starts[k]++
		mu.Unlock()
		select {
		case <-time.After(time.Duration(rand.IntN(3000)) * time.Microsecond):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		mu.Lock()
		ends[k]++
		mu.Unlock()
		return in.Attempt, nil
	}
	opts := []dagflow.Option{dagflow.WithHandler("work", work), dagflow.WithConcurrency(16), dagflow.WithLease(2 * time.Second),
		dagflow.WithPollInterval(200 * time.Millisecond), dagflow.WithLogger(logger)}
	e1, err := dagflow.Open(append([]dagflow.Option{dagflow.WithStore(s1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer e1.Close()
	e2, err := dagflow.Open(append([]dagflow.Option{dagflow.WithStore(s2)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()

	var wfs []dagflow.Workflow
	for i := range 60 {
		wf := dagflow.Workflow{ID: fmt.Sprintf("chain-%02d", i)}
		for k := range 5 {
			st := dagflow.Step{ID: fmt.Sprintf("s%d", k), Handler: "work"}
			if k > 0 {
				st.DependsOn = []string{fmt.Sprintf("s%d", k-1)}
			}
			wf.Steps = append(wf.Steps, st)
		}
		wfs = append(wfs, wf)
	}
	for i := range 6 {
		wf := dagflow.Workflow{ID: fmt.Sprintf("fan-%d", i), Steps: []dagflow.Step{{ID: "root", Handler: "work"}}}
		var leaves []string
		for k := range 60 {
			id := fmt.Sprintf("leaf%02d", k)
			leaves = append(leaves, id)
			wf.Steps = append(wf.Steps, dagflow.Step{ID: id, Handler: "work", DependsOn: []string{"root"}, Parallel: true})
		}
		wf.Steps = append(wf.Steps, dagflow.Step{ID: "join", Handler: "work", DependsOn: leaves})
		wfs = append(wfs, wf)
	}

	// The faults, while the runs run.
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	var killed atomic.Int64
	var faults sync.WaitGroup
	faults.Go(func() {
		for ctx.Err() == nil {
			time.Sleep(time.Duration(20+rand.IntN(60)) * time.Millisecond)
			var n int64
			err := adminPool(t).QueryRow(context.Background(), `SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
				WHERE application_name = $1 AND pid <> pg_backend_pid() ORDER BY random() LIMIT 1) k`, appName(s1.schema)).Scan(&n)
			if err == nil {
				killed.Add(n)
			}
		}
	})
	faults.Go(func() {
		// A transaction that holds a run's row longer than the lock
		// timeout, once.
		time.Sleep(300 * time.Millisecond)
		tx, err := adminPool(t).Begin(context.Background())
		if err != nil {
			return
		}
		defer tx.Rollback(context.Background())
		tx.Exec(context.Background(), "SELECT 1 FROM "+pgx.Identifier{s1.schema, "runs"}.Sanitize()+" WHERE id = 'fan-0' FOR UPDATE")
		time.Sleep(400 * time.Millisecond)
	})
	faults.Go(func() {
		time.Sleep(time.Second)
		p1.setDown(true)
		p2.setDown(true)
		time.Sleep(time.Second)
		p1.setDown(false)
		p2.setDown(false)
	})

	start := time.Now()
	var created sync.WaitGroup
	for i, wf := range wfs {
		eng := []*dagflow.Engine{e1, e2}[i%2]
		created.Go(func() {
			for try := 0; ; try++ {
				_, err := eng.Create(context.Background(), wf)
				if err == nil {
					return
				}
				if try == 20 {
					t.Errorf("Create %s: %v", wf.ID, err)
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		})
	}
	created.Wait()
	wctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for i, wf := range wfs {
		st, err := []*dagflow.Engine{e1, e2}[i%2].Wait(wctx, wf.ID)
		if err != nil {
			t.Fatalf("Wait %s: %v", wf.ID, err)
		}
		if st.State != dagflow.StateCompleted {
			t.Errorf("run %s: %s (%s)", wf.ID, st.State, st.Error)
		}
	}
	stop()
	faults.Wait()
	t.Logf("%d runs ended after %v; %d backends killed", len(wfs), time.Since(start).Round(time.Millisecond), killed.Load())

	// What the store says against what the handlers saw.
	err = s1.View(context.Background(), func(tx store.Tx) error {
		for _, wf := range wfs {
			steps, err := tx.Steps(wf.ID)
			if err != nil {
				return err
			}
			for _, st := range steps {
				if st.State != store.StepCompleted {
					t.Errorf("%s/%s: %s (%s)", wf.ID, st.ID, st.State, st.Error)
					continue
				}
				if st.Attempts-st.Interruptions != 1 {
					t.Errorf("%s/%s: %d attempts, %d interrupted: a failure cost an attempt", wf.ID, st.ID, st.Attempts, st.Interruptions)
				}
				mu.Lock()
				for n := 1; n <= st.Attempts+3; n++ {
					k := key{wf.ID, st.ID, n}
					if starts[k] > 1 {
						t.Errorf("%s/%s: attempt %d started %d times", wf.ID, st.ID, n, starts[k])
					}
					if n > st.Attempts && starts[k] > 0 {
						t.Errorf("%s/%s: attempt %d ran after the step completed on attempt %d", wf.ID, st.ID, n, st.Attempts)
					}
				}
				if ends[key{wf.ID, st.ID, st.Attempts}] != 1 {
					t.Errorf("%s/%s completed on attempt %d, which no handler finished once", wf.ID, st.ID, st.Attempts)
				}
				mu.Unlock()
				if want := fmt.Sprint(st.Attempts); string(st.Result) != want {
					t.Errorf("%s/%s: result %s, want %s (the completing attempt's)", wf.ID, st.ID, st.Result, want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	st1, st2 := s1.Stats(), s2.Stats()
	lmu.Lock()
	out := logs.String()
	lmu.Unlock()
	lost := strings.Count(out, "the connection broke while committing")
	t.Logf("stores: %+v; %+v", st1, st2)
	t.Logf("log lines: %d, of which %d about COMMITs whose answer was lost", strings.Count(out, "\n"), lost)
	if int64(lost) != st1.CommitsLost+st2.CommitsLost {
		t.Errorf("%d log lines about lost COMMITs, the stores counted %d", lost, st1.CommitsLost+st2.CommitsLost)
	}
	if testing.Verbose() {
		t.Log(out)
	}
}

// appName is the application_name of the connections of a test store's
// schema, by which the fault test finds them.
func appName(schema string) string { return "dagflow-test-" + schema }

// openThroughProxyOn is openThroughProxy on a given schema.
func openThroughProxyOn(t *testing.T, schema string, o Options) (*Store, *proxy) {
	o.Schema = schema
	return openProxied(t, o)
}
