package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"time"

	"github.com/cschleiden/go-workflows/backend"
	"github.com/cschleiden/go-workflows/backend/monoprocess"
	"github.com/cschleiden/go-workflows/backend/sqlite"
	"github.com/cschleiden/go-workflows/client"
	"github.com/cschleiden/go-workflows/core"
	"github.com/cschleiden/go-workflows/worker"
	"github.com/cschleiden/go-workflows/workflow"
)

// peerGraphs holds the graphs of the workflows the peers run, by workflow
// id. Peers' workflows are code, not data: a workflow function gets the id
// as its input and looks its graph up here (the map does not change while
// a run is under way, so replays see the same graph).
var peerGraphs sync.Map // string -> *peerGraph

type peerGraph struct {
	shape shape
	g     graph
}

func registerGraphs(w *workload) {
	if w.shape == shapeOrder {
		return
	}
	for i := range w.defs {
		peerGraphs.Store(w.defs[i].ID, &peerGraph{shape: w.shape, g: w.graphs[i]})
	}
}

func lookupGraph(id string) (*peerGraph, error) {
	v, ok := peerGraphs.Load(id)
	if !ok {
		return nil, fmt.Errorf("no graph for workflow %q", id)
	}
	return v.(*peerGraph), nil
}

// pollEvery is how often the harness asks a peer's backend whether a
// workflow instance has finished. The peers' own wait calls back off to
// 1 s (go-workflows) or start at 100 ms and grow to 10 s (durabletask-go),
// which would add up to that much to every run.
const pollEvery = 5 * time.Millisecond

// gwActivity are the options of every go-workflows activity: one attempt,
// like a dagflow step without retries (the default is three).
var gwActivity = workflow.ActivityOptions{RetryOptions: workflow.RetryOptions{MaxAttempts: 1}}

// GWNoop is the no-op activity.
func GWNoop(ctx context.Context) error {
	executed.Add(1)
	return nil
}

// GWDAG runs the graph registered under id: a chain activity by
// activity, a fan-out with futures, any other DAG with one workflow
// coroutine per step that waits on its dependencies' done channels.
func GWDAG(ctx workflow.Context, id string) error {
	pg, err := lookupGraph(id)
	if err != nil {
		return err
	}
	g := pg.g
	switch pg.shape {
	case shapeChain:
		for range g {
			if _, err := workflow.ExecuteActivity[any](ctx, gwActivity, GWNoop).Get(ctx); err != nil {
				return err
			}
		}
		return nil
	case shapeFan:
		if _, err := workflow.ExecuteActivity[any](ctx, gwActivity, GWNoop).Get(ctx); err != nil {
			return err
		}
		leaves := make([]workflow.Future[any], len(g)-2)
		for i := range leaves {
			leaves[i] = workflow.ExecuteActivity[any](ctx, gwActivity, GWNoop)
		}
		for _, f := range leaves {
			if _, err := f.Get(ctx); err != nil {
				return err
			}
		}
		_, err := workflow.ExecuteActivity[any](ctx, gwActivity, GWNoop).Get(ctx)
		return err
	default:
		done := make([]workflow.Channel[struct{}], len(g))
		for i := range done {
			done[i] = workflow.NewChannel[struct{}]()
		}
		var first error
		wg := workflow.NewWaitGroup()
		wg.Add(len(g))
		for i := range g {
			workflow.Go(ctx, func(ctx workflow.Context) {
				defer wg.Done()
				for _, j := range g[i] {
					done[j].Receive(ctx) // returns once j's channel is closed
				}
				if _, err := workflow.ExecuteActivity[any](ctx, gwActivity, GWNoop).Get(ctx); err != nil {
					if first == nil {
						first = err
					}
					return // dependents wait for ever; the run fails below
				}
				done[i].Close()
			})
		}
		wg.Wait(ctx)
		return first
	}
}

// The order chain's activities: go-workflows names an activity after its
// function, so each step is a function of its own.
func GWValidateOrder(ctx context.Context, o order) (stepResult, error) {
	return gwOrderStep(orderSteps[0])
}
func GWChargePayment(ctx context.Context, o order) (stepResult, error) {
	return gwOrderStep(orderSteps[1])
}
func GWShipOrder(ctx context.Context, o order) (stepResult, error) { return gwOrderStep(orderSteps[2]) }
func GWSendConfirmation(ctx context.Context, o order) (stepResult, error) {
	return gwOrderStep(orderSteps[3])
}
func GWArchiveOrder(ctx context.Context, o order) (stepResult, error) {
	return gwOrderStep(orderSteps[4])
}

func gwOrderStep(name string) (stepResult, error) {
	executed.Add(1)
	return stepResult{Step: name, OK: true}, nil
}

var gwOrderActivities = []any{GWValidateOrder, GWChargePayment, GWShipOrder, GWSendConfirmation, GWArchiveOrder}

// GWOrder runs the order chain for one order.
func GWOrder(ctx workflow.Context, o order) error {
	for _, a := range gwOrderActivities {
		if _, err := workflow.ExecuteActivity[stepResult](ctx, gwActivity, a, o).Get(ctx); err != nil {
			return err
		}
	}
	return nil
}

type gwRunner struct {
	w      *workload
	b      backend.Backend
	wk     *worker.Worker
	c      *client.Client
	cancel context.CancelFunc
}

func prepareGoWorkflows(file bool) func(ctx context.Context, w *workload, dir string) (runner, error) {
	return func(ctx context.Context, w *workload, dir string) (runner, error) {
		registerGraphs(w)
		bopts := sqlite.WithBackendOptions(
			backend.WithLogger(engineLog()),
			// The default fails a workflow past 10,000 history events;
			// a 10,000-step fan-out has three times that.
			backend.WithMaxHistorySize(1<<40),
		)
		var sb backend.Backend
		if file {
			sb = sqlite.NewSqliteBackend(filepath.Join(dir, "go-workflows.sqlite"), bopts)
		} else {
			sb = sqlite.NewInMemoryBackend(bopts)
		}
		// The monoprocess wrapper wakes the worker's pollers through
		// channels when the same process creates work, instead of waiting
		// out the polling interval (go-workflows' own bench does this).
		b := monoprocess.NewMonoprocessBackend(sb)

		o := worker.DefaultOptions
		o.MaxParallelActivityTasks = concurrency
		o.MaxParallelWorkflowTasks = concurrency
		// Keep every running instance's executor cached (default 128), so
		// that 1,000 concurrent order workflows are not replayed.
		o.WorkflowExecutorCacheSize = 2048
		// A cached executor expires this long after its last use (default
		// 10 s), and expiry closes it even in the middle of a workflow
		// task: a task of the 10,000-step random DAG runs longer than that,
		// and the run then fails on replay ("previous workflow execution
		// scheduled an activity which could not be found").
		o.WorkflowExecutorCacheTTL = time.Hour
		wk := worker.New(b, &o)
		if err := wk.RegisterWorkflow(GWDAG); err != nil {
			return nil, err
		}
		if err := wk.RegisterWorkflow(GWOrder); err != nil {
			return nil, err
		}
		if err := wk.RegisterActivity(GWNoop); err != nil {
			return nil, err
		}
		for _, a := range gwOrderActivities {
			if err := wk.RegisterActivity(a); err != nil {
				return nil, err
			}
		}
		wctx, cancel := context.WithCancel(context.Background())
		if err := wk.Start(wctx); err != nil {
			cancel()
			b.Close()
			return nil, err
		}
		return &gwRunner{w: w, b: b, wk: wk, c: client.New(b), cancel: cancel}, nil
	}
}

func (r *gwRunner) run(ctx context.Context) error {
	insts := make([]*workflow.Instance, len(r.w.defs))
	err := startAll(r.w, func(i int) (err error) {
		opts := client.WorkflowInstanceOptions{InstanceID: r.w.defs[i].ID}
		if r.w.shape == shapeOrder {
			insts[i], err = r.c.CreateWorkflowInstance(ctx, opts, GWOrder, r.w.orders[i])
		} else {
			insts[i], err = r.c.CreateWorkflowInstance(ctx, opts, GWDAG, r.w.defs[i].ID)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, inst := range insts {
		for {
			s, err := r.c.GetWorkflowInstanceState(ctx, inst)
			if err != nil {
				return err
			}
			if s == core.WorkflowInstanceStateFinished {
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pollEvery):
			}
		}
		if _, err := client.GetWorkflowResult[any](ctx, r.c, inst, time.Second); err != nil {
			return fmt.Errorf("workflow %s: %w", inst.InstanceID, err)
		}
	}
	return nil
}

func (r *gwRunner) close() error {
	r.cancel()
	err := r.wk.WaitForCompletion()
	return errors.Join(err, r.b.Close())
}
