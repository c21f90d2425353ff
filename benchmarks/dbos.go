package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
)

// dbosSlots bounds the DBOS steps under way in the process at the
// concurrency limit. DBOS has no such knob of its own (a queue's
// WithWorkerConcurrency bounds workflows, not steps, and a queue is polled,
// every second by default), so the workflows below take a slot before
// each step and give it back when the step's outcome is recorded, as
// dagflow's WithConcurrency and the other peers' parallelism options
// count steps. prepareDBOS sets it for the repetition.
var dbosSlots chan struct{}

// dbosNoop is DBOS's no-op step.
func dbosNoop(ctx context.Context) (any, error) {
	executed.Add(1)
	return nil, nil
}

// DBOSDAG runs the graph registered under id. A chain is RunAsStep after
// RunAsStep. Any other DAG (a fan-out too) is walked in the order of its
// step indexes: the workflow waits until the steps a step depends on have
// ended, takes a slot, and starts it with dbos.Go (DBOS's way to run
// steps at the same time); a goroutine per started step waits for its
// outcome, returns the slot and marks the step done. dbos.Go numbers a
// step when it is called, so a workflow must start its steps in the same
// order on every execution for recovery to find them: starting them in
// index order keeps it so. A step therefore waits for the dependencies of
// the steps before it, but the random DAG's dependencies are drawn among
// all earlier steps, and a step can start while up to concurrency-1
// others before it are under way.
func DBOSDAG(ctx dbos.Context, id string) (int, error) {
	pg, err := lookupGraph(id)
	if err != nil {
		return 0, err
	}
	g := pg.g
	if pg.shape == shapeChain {
		for i := range g {
			if _, err := dbosStep(ctx, stepID(i), dbosNoop); err != nil {
				return 0, err
			}
		}
		return len(g), nil
	}
	done := make([]chan struct{}, len(g))
	for i := range done {
		done[i] = make(chan struct{})
	}
	var (
		wg       sync.WaitGroup
		failOnce sync.Once
		failed   = make(chan struct{})
		first    error
	)
	fail := func(err error) {
		failOnce.Do(func() { first = err; close(failed) })
	}
walk:
	for i, deps := range g {
		for _, j := range deps {
			select {
			case <-done[j]:
			case <-failed:
				break walk
			}
		}
		select {
		case dbosSlots <- struct{}{}:
		case <-ctx.Done():
			fail(ctx.Err())
			break walk
		}
		ch, err := dbos.Go(ctx, dbosNoop, dbos.WithStepName(stepID(i)))
		if err != nil {
			<-dbosSlots
			fail(err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := <-ch
			<-dbosSlots
			if o.Err != nil {
				fail(fmt.Errorf("step %s: %w", stepID(i), o.Err))
				return
			}
			close(done[i])
		}()
	}
	wg.Wait()
	if first != nil {
		return 0, first
	}
	return len(g), nil
}

// dbosStep runs fn as the step name, in a slot.
func dbosStep[R any](ctx dbos.Context, name string, fn dbos.Step[R]) (R, error) {
	select {
	case dbosSlots <- struct{}{}:
	case <-ctx.Done():
		return *new(R), ctx.Err()
	}
	defer func() { <-dbosSlots }()
	return dbos.RunAsStep(ctx, fn, dbos.WithStepName(name))
}

// dbosOrderStep is the order step name.
func dbosOrderStep(name string) dbos.Step[stepResult] {
	return func(ctx context.Context) (stepResult, error) {
		executed.Add(1)
		return stepResult{Step: name, OK: true}, nil
	}
}

// DBOSOrder runs the order chain for one order, a step after the other,
// and returns the last step's result.
func DBOSOrder(ctx dbos.Context, o order) (stepResult, error) {
	var last stepResult
	for _, name := range orderSteps {
		var err error
		if last, err = dbosStep(ctx, name, dbosOrderStep(name)); err != nil {
			return stepResult{}, err
		}
	}
	return last, nil
}

type dbosRunner struct {
	w      *workload
	ctx    dbos.Context
	schema string
}

// prepareDBOS launches DBOS on a fresh schema of the PostgreSQL server
// (DBOS creates its tables there, about 130 migrations, untimed), with
// DBOS's defaults otherwise: a pool of 20 connections, steps without
// retries.
func prepareDBOS(ctx context.Context, w *workload, dir string) (runner, error) {
	registerGraphs(w)
	dbosSlots = make(chan struct{}, concurrency)
	schema := freshSchema("bench_dbos_")
	dctx, err := dbos.NewContext(context.Background(), dbos.Config{
		AppName:        "dagflow-benchmarks",
		DatabaseURL:    postgresDSN(),
		DatabaseSchema: schema,
		Logger:         engineLog(),
	})
	if err != nil {
		return nil, errors.Join(err, dropSchema(schema))
	}
	dbos.RegisterWorkflow(dctx, DBOSDAG)
	dbos.RegisterWorkflow(dctx, DBOSOrder)
	if err := dbos.Launch(dctx); err != nil {
		return nil, errors.Join(err, dbos.Shutdown(dctx, 10*time.Second), dropSchema(schema))
	}
	return &dbosRunner{w: w, ctx: dctx, schema: schema}, nil
}

// run starts every workflow at once (one goroutine each, each with its
// workflow id), then waits for them in turn: a handle of a workflow this
// process runs gets its result on a channel, without polling.
func (r *dbosRunner) run(ctx context.Context) error {
	type result interface {
		wait(opts ...dbos.GetResultOption) error
	}
	handles := make([]result, len(r.w.defs))
	err := startAll(r.w, func(i int) error {
		opt := dbos.WithWorkflowID(r.w.defs[i].ID)
		if r.w.shape == shapeOrder {
			h, err := dbos.RunWorkflow(r.ctx, DBOSOrder, r.w.orders[i], opt)
			handles[i] = dbosHandle[stepResult]{h}
			return err
		}
		h, err := dbos.RunWorkflow(r.ctx, DBOSDAG, r.w.defs[i].ID, opt)
		handles[i] = dbosHandle[int]{h}
		return err
	})
	if err != nil {
		return err
	}
	for i, h := range handles {
		var opts []dbos.GetResultOption
		if d, ok := ctx.Deadline(); ok {
			opts = append(opts, dbos.WithHandleTimeout(time.Until(d)))
		}
		if err := h.wait(opts...); err != nil {
			return fmt.Errorf("workflow %s: %w", r.w.defs[i].ID, err)
		}
	}
	return nil
}

type dbosHandle[R any] struct{ h dbos.WorkflowHandle[R] }

func (d dbosHandle[R]) wait(opts ...dbos.GetResultOption) error {
	_, err := d.h.GetResult(opts...)
	return err
}

func (r *dbosRunner) close() error {
	return errors.Join(dbos.Shutdown(r.ctx, 10*time.Second), dropSchema(r.schema))
}
