package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/microsoft/durabletask-go/api"
	"github.com/microsoft/durabletask-go/backend"
	"github.com/microsoft/durabletask-go/backend/sqlite"
	"github.com/microsoft/durabletask-go/task"
)

// DTNoop is durabletask-go's no-op activity.
func DTNoop(ctx task.ActivityContext) (any, error) {
	executed.Add(1)
	return nil, nil
}

// DTDAG runs the graph registered under the orchestration's input: a chain
// activity by activity, a fan-out with tasks awaited together. For any
// other DAG it schedules the steps in index order, each once its
// dependencies are awaited: durabletask-go v0.5.0 has no coroutines and no
// way to wait for whichever task ends first, so a step waits for the
// dependencies of the steps before it too.
func DTDAG(ctx *task.OrchestrationContext) (any, error) {
	var id string
	if err := ctx.GetInput(&id); err != nil {
		return nil, err
	}
	pg, err := lookupGraph(id)
	if err != nil {
		return nil, err
	}
	g := pg.g
	switch pg.shape {
	case shapeChain:
		for range g {
			if err := ctx.CallActivity(DTNoop).Await(nil); err != nil {
				return nil, err
			}
		}
	case shapeFan:
		if err := ctx.CallActivity(DTNoop).Await(nil); err != nil {
			return nil, err
		}
		leaves := make([]task.Task, len(g)-2)
		for i := range leaves {
			leaves[i] = ctx.CallActivity(DTNoop)
		}
		for _, t := range leaves {
			if err := t.Await(nil); err != nil {
				return nil, err
			}
		}
		if err := ctx.CallActivity(DTNoop).Await(nil); err != nil {
			return nil, err
		}
	default:
		tasks := make([]task.Task, len(g))
		for i, deps := range g {
			for _, j := range deps {
				if err := tasks[j].Await(nil); err != nil {
					return nil, err
				}
			}
			tasks[i] = ctx.CallActivity(DTNoop)
		}
		for _, t := range tasks {
			if err := t.Await(nil); err != nil {
				return nil, err
			}
		}
	}
	return nil, nil
}

func dtOrderStep(name string) task.Activity {
	return func(ctx task.ActivityContext) (any, error) {
		executed.Add(1)
		return stepResult{Step: name, OK: true}, nil
	}
}

// DTOrder runs the order chain for one order.
func DTOrder(ctx *task.OrchestrationContext) (any, error) {
	var o order
	if err := ctx.GetInput(&o); err != nil {
		return nil, err
	}
	for _, name := range orderSteps {
		var res stepResult
		if err := ctx.CallActivity(name, task.WithActivityInput(o)).Await(&res); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

type dtRunner struct {
	w      *workload
	wk     backend.TaskHubWorker
	c      backend.TaskHubClient
	cancel context.CancelFunc
}

func prepareDurableTask(file bool) func(ctx context.Context, w *workload, dir string) (runner, error) {
	return func(ctx context.Context, w *workload, dir string) (runner, error) {
		registerGraphs(w)
		r := task.NewTaskRegistry()
		if err := r.AddOrchestrator(DTDAG); err != nil {
			return nil, err
		}
		if err := r.AddOrchestrator(DTOrder); err != nil {
			return nil, err
		}
		if err := r.AddActivity(DTNoop); err != nil {
			return nil, err
		}
		for _, name := range orderSteps {
			if err := r.AddActivityN(name, dtOrderStep(name)); err != nil {
				return nil, err
			}
		}
		path := "" // in memory
		if file {
			path = filepath.Join(dir, "durabletask.sqlite")
		}
		log := quietLogger{}
		be := sqlite.NewSqliteBackend(sqlite.NewSqliteOptions(path), log)
		exec := task.NewTaskExecutor(r)
		// Both workers default to one work item at a time.
		ow := backend.NewOrchestrationWorker(be, exec, log, backend.WithMaxParallelism(int32(concurrency)))
		aw := backend.NewActivityTaskWorker(be, exec, log, backend.WithMaxParallelism(int32(concurrency)))
		wk := backend.NewTaskHubWorker(be, ow, aw, log)
		wctx, cancel := context.WithCancel(context.Background())
		if err := wk.Start(wctx); err != nil {
			cancel()
			return nil, err
		}
		return &dtRunner{w: w, wk: wk, c: backend.NewTaskHubClient(be), cancel: cancel}, nil
	}
}

func (r *dtRunner) run(ctx context.Context) error {
	ids := make([]api.InstanceID, len(r.w.defs))
	err := startAll(r.w, func(i int) (err error) {
		opts := []api.NewOrchestrationOptions{api.WithInstanceID(api.InstanceID(r.w.defs[i].ID))}
		if r.w.shape == shapeOrder {
			ids[i], err = r.c.ScheduleNewOrchestration(ctx, DTOrder, append(opts, api.WithInput(r.w.orders[i]))...)
		} else {
			ids[i], err = r.c.ScheduleNewOrchestration(ctx, DTDAG, append(opts, api.WithInput(r.w.defs[i].ID))...)
		}
		return err
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		for {
			md, err := r.c.FetchOrchestrationMetadata(ctx, id)
			if err != nil {
				return err
			}
			if md.IsComplete() {
				if md.RuntimeStatus != api.RUNTIME_STATUS_COMPLETED {
					msg := ""
					if md.FailureDetails != nil {
						msg = md.FailureDetails.ErrorMessage
					}
					return fmt.Errorf("orchestration %s ended %v: %s", id, md.RuntimeStatus, msg)
				}
				break
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(pollEvery):
			}
		}
	}
	return nil
}

// close stops the workers. durabletask-go v0.5.0's SQLite backend has no
// Close: its database stays open (an in-memory one stays allocated) until
// the process exits.
func (r *dtRunner) close() error {
	err := r.wk.Shutdown(context.Background())
	r.cancel()
	return err
}

// quietLogger drops durabletask-go's log lines but errors (its default
// logger writes every worker start and stop at INFO).
type quietLogger struct{}

func (quietLogger) Debug(v ...any)                 {}
func (quietLogger) Debugf(format string, v ...any) {}
func (quietLogger) Info(v ...any)                  {}
func (quietLogger) Infof(format string, v ...any)  {}
func (quietLogger) Warn(v ...any)                  {}
func (quietLogger) Warnf(format string, v ...any)  {}
func (quietLogger) Error(v ...any)                 { fmt.Fprintln(os.Stderr, append([]any{"durabletask:"}, v...)...) }
func (quietLogger) Errorf(format string, v ...any) {
	fmt.Fprintf(os.Stderr, "durabletask: "+format+"\n", v...)
}
