// Package dagflow runs workflow DAGs inside your application's process:
// durable, fast, and with nothing else to run.
//
// An application opens an [Engine], registers Go step handlers (or points
// steps at HTTP job handlers), and creates runs of workflows:
//
//	eng, err := dagflow.Open(dagflow.WithPath("flows.db"))
//	if err != nil { ... }
//	defer eng.Close()
//	eng.Handle("charge", func(ctx context.Context, in dagflow.Input) (any, error) {
//		return map[string]any{"charged": true}, nil
//	})
//	st, err := eng.Create(ctx, dagflow.Workflow{ID: "order-1", Steps: []dagflow.Step{
//		{ID: "charge", Handler: "charge"},
//	}})
//	st, err = eng.Wait(ctx, "order-1")
//
// The engine validates the dependency graph, runs every step whose
// dependencies are done on a bounded pool of workers, records every state
// change in a [store.Store] before anything depends on it, resumes unfinished
// runs when it opens, retries failed attempts with backoff, enforces step and
// workflow timeouts, compensates sagas in reverse order, and calls the
// onComplete and onError webhooks. The workflow JSON, the step input, the HTTP
// job protocol and the status JSON are the hosted platform's: a workflow file
// written for it loads unchanged with [ParseWorkflow].
//
// # Steps
//
// A step is a Go handler registered with [Engine.Handle] (field "handler"), or
// an HTTP job handler (field "url") that the engine POSTs the step's input to,
// signed and with an idempotency key (see package httpstep). Every step gets
// an [Input]: the run's id and context, its attempt number, and the results of
// every step completed before it started (Input.PreviousSteps, shared, never
// copied). It returns a JSON-encodable result or an error; wrap an error with
// [Permanent] when another attempt cannot help. Steps marked "parallel" run at
// the same time as other ready steps, up to the engine's concurrency; ready
// steps not marked parallel run one at a time within a run, in the order they
// are declared. A step's attempts are retried under its retry policy with
// exponential, linear or fixed backoff and full jitter; each attempt has the
// step's timeout, and the whole run has the workflow's. A handler that panics
// fails its attempt with a [*PanicError]; the panic never reaches the
// application, and its stack goes to the attempt's logs. A handler that
// ignores its context and returns after the attempt's deadline has timed
// out, whatever it returns.
//
// # Failure and sagas
//
// When a step fails for good, the workflow's onStepFailure policy decides:
// "fail" (the default) starts no new step, lets running steps finish their
// attempt, and fails the run; "continue" skips the steps downstream of the
// failed one (except those with allowFailedDeps, which run and see which
// dependencies failed) and runs every independent branch to its end, then
// fails the run with every result it reached. A saga ("saga": true) that
// fails, times out or is cancelled compensates each completed step that has a
// compensation, one at a time, in reverse order of completion, each with the
// step's retry policy; a step that never completed is never compensated.
// [Engine.Cancel] cancels a run's running attempts (their contexts, and so
// their HTTP requests) and ends it cancelled; [Engine.Retry] runs a failed or
// cancelled run's failed, skipped and cancelled steps again and keeps every
// completed result.
//
// # Storage
//
// Runs live in a [store.Store]: by default a bbolt file (store/bolt, see
// [WithPath]); [store/memory] for tests and runs that need no durability;
// store/postgres for several engine processes sharing the work; or a store of
// your own that passes store/storetest. Every state change is committed before
// anything depends on it: an attempt is recorded as started before its handler
// runs, so a step's maxAttempts holds across crashes, and a step's completion
// is committed in the same transaction that starts the steps it unblocks.
// Changes made at the same moment share one commit (one fsync). When an engine
// opens a store, runs left running resume: completed steps never run again,
// and an attempt that was under way when the process died runs again as the
// next attempt (delivery is at least once, which is what the idempotency key
// is for). Register handlers before that with [WithHandler], or with
// [Engine.Handle] just after Open: steps whose handler is missing wait for it
// (the engine's log says which). On a shared store every step is claimed
// under a lease with a fencing token, so that a step's outcome is recorded
// once even when an engine dies.
//
// # Stopping
//
// [Engine.Close] cancels the contexts of the attempts under way and waits for
// their handlers to return; an attempt cut short so is not counted, and runs
// again (as the same attempt) when an engine next opens the store.
// [Engine.Shutdown] lets them finish first, starting nothing new, for as long
// as its context allows.
package dagflow
