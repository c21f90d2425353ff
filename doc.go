// Package dagflow runs workflow DAGs inside your application's process:
// durable, fast, and with nothing else to run.
//
// An application opens an [Engine] on a store, registers Go step handlers (or
// points steps at HTTP job handlers), and creates runs of workflows:
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
// A step does one kind of work. A Go handler registered with [Engine.Handle]
// (field "handler"; [Typed] adapts a handler that takes the context as a Go
// value), or an HTTP job handler (field "url") that the engine POSTs the
// step's input to, signed and with an idempotency key (see package
// httpstep), make attempts: each has the step's timeout, a failed one is
// retried under the step's retry policy (exponential, linear or fixed
// backoff with full jitter), a handler that panics fails its attempt with a
// [*PanicError] that never reaches the application, and a handler that
// ignores its context and returns after the deadline has timed out. Every
// attempt gets an [Input]: the run's id and context, the attempt and the
// round (Generation), and the results of the step's ancestors, the steps it
// depends on directly or not (Input.PreviousSteps; a workflow's
// "previousSteps": "all" sends every step completed so far instead). It
// returns a JSON-encodable result or an error; wrap an error with
// [Permanent] when another attempt cannot help.
//
// Steps marked "parallel" run at the same time as other ready steps, up to
// the engine's concurrency; ready steps not marked parallel run one at a time
// within a run, in the order they are declared.
//
// Four more kinds of step hold no worker while they wait:
//
//   - "map" ([Map]) runs a handler, URL or sub-workflow once per item of a
//     list taken from the run with a path ("context.items",
//     "steps.list.result.images") or written in the step: each item has its
//     own attempts, retries and idempotency key ("<workflowId>/<stepId>/<index>"),
//     at most maxConcurrency are under way, failed items may be tolerated,
//     and the step's result is the items' results in order (null for an
//     item that failed). [Engine.Items] lists them.
//   - "workflow" runs a sub-workflow as a child run "<parentId>/<stepId>"
//     (under a map, "<parentId>/<stepId>/<index>"), whose context is the
//     parent's with its own laid over it; the step completes with the
//     child's results, or fails with its error. Cancelling or timing out the
//     parent cancels its children.
//   - "sleep" ([Sleep]) waits for a duration or until a time; it survives
//     restarts and ends at the time first set.
//   - "waitForEvent" ([WaitForEvent]) waits for [Engine.SendEvent] to send an
//     event with its name and a key that matches the value at its key path;
//     the event's payload is its result. An event sent after the run was
//     created but before the wait started is kept for it.
//
// [Engine.Schedule] creates a run of a workflow at each tick of a cron
// expression; a workflow's "concurrency" lets at most a given number of runs
// with the same key value be under way at once, the others waiting pending
// in creation order.
//
// # Failure and sagas
//
// When a step fails for good, the workflow's onStepFailure policy decides:
// "fail" (the default) starts no new step, lets the attempts under way
// finish (sleeps, waits and child runs end at once, children cancelled), and
// fails the run; "continue" skips the steps downstream of the failed one
// (except those with allowFailedDeps, which run and see which dependencies
// failed) and runs every independent branch to its end, then fails the run
// with every result it reached. A step that a cancelled or timed-out run cut
// short, or never started, ends cancelled; one that never started because
// another step failed ends skipped. [Status].Cause says why a run stopped.
//
// A saga ("saga": true) that fails, times out or is cancelled compensates
// each unit of work that completed and has a compensation, one at a time, in
// reverse order of completion, each with the step's retry policy: a step, each
// completed item of a map step, and a sub-workflow that is itself a saga,
// which rolls back by its own compensations. A step that never completed is
// never compensated. A compensation that fails for good is recorded, and the
// rollback goes on; [Engine.Retry] of such a run compensates the failed ones
// again, to finish the rollback.
//
// [Engine.Cancel] cancels a run's attempts (their contexts, and so their HTTP
// requests) and ends it cancelled. [Engine.Retry] runs a failed or cancelled
// run again: the steps that did not complete and every step downstream of
// them (a fan-in that aggregated a partial set runs again), each with a new
// attempt budget, keeping the results upstream; a map step runs only the
// items that failed. [Engine.Rerun] runs one step and everything downstream
// of it again. Either starts a new round of the run: Input.Generation
// counts them, attempts count from 1 again, and the idempotency key gains
// "/retry-<generation>", so that a job handler that keeps its replies by
// key does the work again in the new round.
//
// # Storage
//
// Runs live in a [store.Store]: a bbolt file ([WithPath], store/bolt, the
// durable default); store/memory for tests and runs that need no durability;
// store/postgres (its own module) for several engine processes sharing the
// work; or a store of your own that passes store/storetest. Every state change
// is committed before anything depends on it: an attempt is recorded as
// started before its handler runs, and a step's completion is committed in
// the same transaction that starts the steps it unblocks. Changes made at
// the same moment share one commit (one fsync).
//
// When an engine opens a store, runs left running resume: completed steps
// never run again, and an attempt that was under way when its engine died
// runs again as the next attempt. An interruption is not the step's failure:
// it does not count against maxAttempts (the status counts interruptions
// apart), so a crash never fails a single-attempt step; [WithMaxInterruptions]
// stops a step whose attempts keep killing their process. Delivery is
// therefore at least once, which is what the idempotency key is for. Register
// handlers before resumption with [WithHandler], or with [Engine.Handle] just
// after Open: steps whose handler is missing wait for it, and the status and
// the engine's log say so. On a shared store every step is claimed under a
// lease with a fencing token, so that a step's outcome is recorded once even
// when an engine dies. There, while attempts end often, an engine also claims
// up to half its concurrency of steps ahead, which start the moment running
// attempts end, while those attempts' outcomes commit: the status shows them
// running, with their claim as their start, and their timeouts count from
// when they start. One that finds no worker within a second is given back,
// and shows as not started, without counting an attempt. [Engine.Delete] and
// [WithRetention] keep a store from growing forever.
//
// # Stopping
//
// [Engine.Close] cancels the contexts of the attempts under way and waits for
// their handlers to return; an attempt cut short so is not counted, and runs
// again (as the same attempt) when an engine next opens the store.
// [Engine.Shutdown] lets them finish first, starting nothing new, for as long
// as its context allows.
//
// # Testing
//
// Package dagflowtest has an engine on the memory store with a clock the test
// moves, handlers that play a script of results and errors, and assertions
// on runs.
package dagflow
