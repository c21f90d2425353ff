// Package dagflowotel gives a dagflow engine OpenTelemetry traces and
// metrics. It lives in a module of its own, so that an application that
// imports the engine does not get OpenTelemetry in its module graph.
//
//	eng, err := dagflow.Open(
//		dagflow.WithPath("flows.db"),
//		dagflowotel.New(tracerProvider, meterProvider),
//	)
//
// [New] returns one dagflow.Option (a dagflow.WithHooks); nil providers
// mean the otel package's global ones.
//
// # Spans
//
//   - "dagflow.create <workflowId>", of kind producer, when Engine.Create
//     is called: a child of the span in Create's context. Its W3C
//     traceparent is stored with the run.
//   - "dagflow.step <stepId>", of kind consumer, for each attempt of a
//     handler or HTTP step, compensations included. A run outlives any
//     span, so the attempt's span is the root of a trace of its own with a
//     link to the run's creation span. Attributes: dagflow.workflow.id (the
//     run's id), dagflow.step.id, dagflow.step.attempt, dagflow.step.kind
//     ("handler" or "http"), dagflow.step.item (a map item's index, only
//     for map items), dagflow.step.compensation (only when true) and
//     dagflow.step.outcome. A failed attempt has status Error and an
//     exception event, its error text cut to 1 KiB. The span is in the
//     handler's context: a Go handler's own spans are its children.
//   - "dagflow.end <workflowId>", of kind internal and no duration, when a
//     run ends, with dagflow.workflow.id and dagflow.run.state (status
//     Error when the run failed), linked to the creation span when this
//     process created the run or ran one of its attempts (the last 4096
//     such runs are remembered).
//
// # Trace context for HTTP steps
//
// Every HTTP step's request (and webhook) carries the attempt's W3C
// traceparent header, so that the job handler's spans join the attempt's
// trace. [Transport] does the same for the application's own HTTP clients.
// The format is always W3C Trace Context, whatever the global propagator.
//
// # Metrics
//
//   - dagflow.step.duration (histogram, seconds): attempts' durations, by
//     dagflow.step.id, dagflow.step.kind, dagflow.step.compensation and
//     dagflow.step.outcome.
//   - dagflow.step.attempts (counter): attempts that ended, with the same
//     attributes. dagflow.step.outcome is "completed" or "failed"
//     ("timed_out" and "cancelled" when the engine's error wraps
//     context.DeadlineExceeded or context.Canceled).
//   - dagflow.runs.ended (counter): runs that reached a final state, by
//     dagflow.run.state.
//   - dagflow.steps.backlog (gauge): steps ready but not started, each time
//     the engine counts them (Hooks.Backlog).
//
// Run ids are not metric attributes: there would be a series per run.
package dagflowotel
