package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/internal/benchdag"
	"github.com/dagflow/dagflow/store/memory"
)

// concurrency is the limit on steps running at once given to every
// contender that has such a knob (-concurrency): errgroup's SetLimit,
// dagflow's WithConcurrency, go-workflows' MaxParallelActivityTasks and
// MaxParallelWorkflowTasks, durabletask-go's WithMaxParallelism, and the
// slots the harness gives DBOS's steps (dbos.go).
var concurrency = 64

// engineLog is the logger given to every engine: errors to stderr, the
// rest dropped.
func engineLog() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// executed counts the step handlers that ran in the current repetition; the
// harness checks it against the workload's step count.
var executed atomic.Int64

// A contender runs workloads. prepare sets up a fresh engine or backend for
// one repetition (not timed); the runner's run is what the harness times.
type contender struct {
	name string
	// class is the storage class whose dagflow contender the ratio
	// compares with: "memory", "file" or "postgres".
	class string
	desc  string
	// postgres says the contender needs the PostgreSQL server
	// (postgres.go); without one it is skipped.
	postgres bool
	// peer says the contender is another project's library.
	peer    bool
	prepare func(ctx context.Context, w *workload, dir string) (runner, error)
}

type runner interface {
	// run runs every workflow of the workload to its end and returns an
	// error unless each one completed.
	run(ctx context.Context) error
	close() error
}

var contenders = []*contender{
	{name: "errgroup", class: "memory", prepare: prepareErrgroup,
		desc: "a hand-written DAG runner (in-degree counters, a central scheduler, errgroup.SetLimit), no persistence: the floor"},
	{name: "dagflow-memory", class: "memory", prepare: prepareDagflow(onMemory),
		desc: "dagflow with store/memory"},
	{name: "dagflow-bolt", class: "file", prepare: prepareDagflow(onBolt),
		desc: "dagflow with store/bolt on a temporary file, fsync on (the default)"},
	{name: "go-workflows-sqlite-mem", class: "memory", peer: true, prepare: prepareGoWorkflows(false),
		desc: "github.com/cschleiden/go-workflows v1.2.0, SQLite backend in memory, monoprocess wrapper"},
	{name: "go-workflows-sqlite-file", class: "file", peer: true, prepare: prepareGoWorkflows(true),
		desc: "github.com/cschleiden/go-workflows v1.2.0, SQLite backend on a temporary file (WAL), monoprocess wrapper"},
	{name: "durabletask-sqlite-mem", class: "memory", peer: true, prepare: prepareDurableTask(false),
		desc: "github.com/microsoft/durabletask-go v0.5.0, SQLite backend in memory"},
	{name: "durabletask-sqlite-file", class: "file", peer: true, prepare: prepareDurableTask(true),
		desc: "github.com/microsoft/durabletask-go v0.5.0, SQLite backend on a temporary file"},
	{name: "dagflow-postgres", class: "postgres", postgres: true, prepare: prepareDagflow(onPostgres),
		desc: "dagflow with store/postgres (its defaults) on a fresh schema of the PostgreSQL server (DAGFLOW_POSTGRES_DSN)"},
	{name: "dbos-postgres", class: "postgres", postgres: true, peer: true, prepare: prepareDBOS,
		desc: "github.com/dbos-inc/dbos-transact-golang v1.9.0 on a fresh schema of the same server: steps with RunAsStep, parallel steps with dbos.Go"},
}

// ---- errgroup ----

type errgroupRunner struct {
	w    *workload
	defs []dagflow.Workflow
}

func prepareErrgroup(ctx context.Context, w *workload, dir string) (runner, error) {
	r := &errgroupRunner{w: w, defs: w.defs}
	for i := range w.defs {
		for _, s := range w.defs[i].Steps {
			if s.Map != nil {
				// A map is data, which a hand-written program walks as the
				// fan-out it is.
				r.defs = make([]dagflow.Workflow, len(w.graphs))
				for k, g := range w.graphs {
					r.defs[k] = g.workflow(w.defs[k].ID, true)
				}
				return r, nil
			}
		}
	}
	return r, nil
}

func (r *errgroupRunner) close() error { return nil }

func (r *errgroupRunner) run(ctx context.Context) error {
	if len(r.defs) == 1 {
		return runOne(&r.defs[0], r.w.shape)
	}
	// Many workflows at once: one goroutine each, as a Go program would.
	var g errgroup.Group
	for i := range r.defs {
		g.Go(func() error { return runOne(&r.defs[i], r.w.shape) })
	}
	return g.Wait()
}

// runOne runs one workflow, keeping each step's result as the engine does.
func runOne(wf *dagflow.Workflow, sh shape) error {
	var mu sync.Mutex
	results := make([]any, len(wf.Steps))
	return benchdag.ErrgroupRun(wf, concurrency, func(i int) error {
		executed.Add(1)
		var res any
		if sh == shapeOrder {
			res = stepResult{Step: wf.Steps[i].ID, OK: true}
		}
		mu.Lock()
		results[i] = res
		mu.Unlock()
		return nil
	})
}

// ---- dagflow ----

type dagflowRunner struct {
	w   *workload
	eng *dagflow.Engine
	// closeStore closes a store the engine was given (the engine
	// closes only a store it opened itself); nil for bolt.
	closeStore func() error
}

// storage says which store a dagflow contender runs on.
type storage int

const (
	onMemory   storage = iota // store/memory
	onBolt                    // store/bolt on a file in the repetition's directory
	onPostgres                // store/postgres on a fresh schema
)

func noop(ctx context.Context, in dagflow.Input) (any, error) {
	executed.Add(1)
	return nil, nil
}

func orderStep(name string) dagflow.HandlerFunc {
	return func(ctx context.Context, in dagflow.Input) (any, error) {
		executed.Add(1)
		return stepResult{Step: name, OK: true}, nil
	}
}

func prepareDagflow(on storage) func(ctx context.Context, w *workload, dir string) (runner, error) {
	return func(ctx context.Context, w *workload, dir string) (runner, error) {
		r := &dagflowRunner{w: w}
		opts := []dagflow.Option{
			dagflow.WithConcurrency(concurrency),
			dagflow.WithLogger(engineLog()),
			dagflow.WithHandler(noopHandler, noop),
			dagflow.WithMaxMapItems(100_000), // map100k-mem's list (the default is 10,000)
		}
		for _, name := range orderSteps {
			opts = append(opts, dagflow.WithHandler(name, orderStep(name)))
		}
		switch on {
		case onMemory:
			m := memory.New()
			r.closeStore = m.Close
			opts = append(opts, dagflow.WithStore(m))
		case onBolt:
			opts = append(opts, dagflow.WithPath(filepath.Join(dir, "dagflow.db")))
		case onPostgres:
			pg, closeStore, err := openPostgresStore(ctx)
			if err != nil {
				return nil, err
			}
			r.closeStore = closeStore
			opts = append(opts, dagflow.WithStore(pg))
		}
		eng, err := dagflow.Open(opts...)
		if err != nil {
			if r.closeStore != nil {
				err = errors.Join(err, r.closeStore())
			}
			return nil, err
		}
		r.eng = eng
		return r, nil
	}
}

func (r *dagflowRunner) run(ctx context.Context) error {
	if len(r.w.defs) == 1 {
		return r.runOne(ctx, &r.w.defs[0])
	}
	var g errgroup.Group
	for i := range r.w.defs {
		g.Go(func() error { return r.runOne(ctx, &r.w.defs[i]) })
	}
	return g.Wait()
}

func (r *dagflowRunner) runOne(ctx context.Context, wf *dagflow.Workflow) error {
	if _, err := r.eng.Create(ctx, *wf); err != nil {
		return err
	}
	st, err := r.eng.Wait(ctx, wf.ID)
	if err != nil {
		return err
	}
	if st.State != dagflow.StateCompleted {
		return fmt.Errorf("run %s ended %s: %s", wf.ID, st.State, st.Error)
	}
	return nil
}

func (r *dagflowRunner) close() error {
	err := r.eng.Close()
	if r.closeStore != nil {
		err = errors.Join(err, r.closeStore())
	}
	return err
}
