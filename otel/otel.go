package dagflowotel

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/dagflow/dagflow"
)

// scope names the tracer and the meter.
const scope = "github.com/dagflow/dagflow/otel"

// The attributes of spans and metrics.
const (
	attrWorkflowID   = attribute.Key("dagflow.workflow.id")
	attrStepID       = attribute.Key("dagflow.step.id")
	attrAttempt      = attribute.Key("dagflow.step.attempt")
	attrKind         = attribute.Key("dagflow.step.kind")
	attrItem         = attribute.Key("dagflow.step.item")
	attrCompensation = attribute.Key("dagflow.step.compensation")
	attrOutcome      = attribute.Key("dagflow.step.outcome")
	attrRunState     = attribute.Key("dagflow.run.state")
)

// The values of dagflow.step.outcome.
const (
	outcomeCompleted = "completed"
	outcomeFailed    = "failed"
	outcomeTimedOut  = "timed_out"
	outcomeCancelled = "cancelled"
)

// durationBuckets are the bounds of dagflow.step.duration, in seconds: from
// a quick handler to an hour-long one (a step's default timeout is five
// minutes).
var durationBuckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600}

// New returns the Option that gives an engine OpenTelemetry traces and
// metrics: give it to dagflow.Open with the engine's other options. It is a
// single dagflow.WithHooks option, so it combines with hooks of your own.
// A nil tp or mp means the global provider of the otel package
// (otel.GetTracerProvider, otel.GetMeterProvider) as it is when New is
// called.
//
// The option also makes HTTP steps and webhooks send the attempt's W3C
// trace context (traceparent) through dagflow.Hooks.HTTPHeader, whatever
// HTTP client the engine uses.
func New(tp trace.TracerProvider, mp metric.MeterProvider) dagflow.Option {
	return dagflow.WithHooks(newObserver(tp, mp).hooks())
}

// observer turns the engine's hooks into spans and measurements. It is safe
// for concurrent use: the engine calls its hooks from many goroutines.
type observer struct {
	tracer   trace.Tracer
	duration metric.Float64Histogram
	attempts metric.Int64Counter
	runs     metric.Int64Counter
	backlog  metric.Int64Gauge
	links    linkCache
}

func newObserver(tp trace.TracerProvider, mp metric.MeterProvider) *observer {
	if tp == nil {
		tp = otel.GetTracerProvider()
	}
	if mp == nil {
		mp = otel.GetMeterProvider()
	}
	o := &observer{tracer: tp.Tracer(scope)}
	m := mp.Meter(scope)
	var err error
	// The instruments' names are valid, so errors are not expected; a
	// provider that returns one still returns a usable instrument, as the
	// metric API requires, and the error goes to otel's error handler.
	o.duration, err = m.Float64Histogram("dagflow.step.duration",
		metric.WithUnit("s"),
		metric.WithDescription("How long step attempts took, from the handler's start to its outcome."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	handle(err)
	o.attempts, err = m.Int64Counter("dagflow.step.attempts",
		metric.WithUnit("{attempt}"),
		metric.WithDescription("Step attempts that ended, by outcome."))
	handle(err)
	o.runs, err = m.Int64Counter("dagflow.runs.ended",
		metric.WithUnit("{run}"),
		metric.WithDescription("Runs that reached a final state, by state."))
	handle(err)
	o.backlog, err = m.Int64Gauge("dagflow.steps.backlog",
		metric.WithUnit("{step}"),
		metric.WithDescription("Steps ready to run but not started, as the engine last counted them."))
	handle(err)
	return o
}

func handle(err error) {
	if err != nil {
		otel.Handle(err)
	}
}

func (o *observer) hooks() dagflow.Hooks {
	return dagflow.Hooks{
		RunCreated:     o.runCreated,
		AttemptStarted: o.attemptStarted,
		AttemptEnded:   o.attemptEnded,
		RunEnded:       o.runEnded,
		Backlog:        o.setBacklog,
		HTTPHeader:     InjectHeader,
	}
}

// runCreated starts and ends the creation span, a child of the span in
// Create's context, and returns its traceparent for the engine to keep with
// the run.
func (o *observer) runCreated(ctx context.Context, runID string) string {
	_, span := o.tracer.Start(ctx, "dagflow.create "+runID,
		trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attrWorkflowID.String(runID)))
	defer span.End()
	sc := span.SpanContext()
	if !sc.IsValid() {
		return ""
	}
	o.links.put(runID, sc)
	return traceparent(sc)
}

// attempt is what attemptStarted leaves in the handler's context for
// attemptEnded.
type attempt struct {
	span  trace.Span
	start time.Time
}

type attemptKey struct{}

// attemptStarted starts the attempt's span, linked to the run's creation
// span, and returns the handler's context with it.
func (o *observer) attemptStarted(ctx context.Context, a dagflow.AttemptInfo) context.Context {
	attrs := []attribute.KeyValue{
		attrWorkflowID.String(a.WorkflowID),
		attrStepID.String(a.StepID),
		attrAttempt.Int(a.Attempt),
		attrKind.String(a.Kind),
	}
	if a.Item >= 0 {
		attrs = append(attrs, attrItem.Int(a.Item))
	}
	if a.Compensation {
		attrs = append(attrs, attrCompensation.Bool(true))
	}
	// The run outlives any span: the attempt's span starts a trace of its
	// own (the engine's context has no span anyway) and links to the
	// creation span.
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attrs...),
	}
	if sc := parseTraceparent(a.Trace); sc.IsValid() {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		o.links.put(a.WorkflowID, sc)
	}
	ctx, span := o.tracer.Start(ctx, "dagflow.step "+a.StepID, opts...)
	return context.WithValue(ctx, attemptKey{}, &attempt{span: span, start: time.Now()})
}

// attemptEnded ends the attempt's span and records its duration and
// outcome.
func (o *observer) attemptEnded(ctx context.Context, a dagflow.AttemptInfo, err error) {
	at, _ := ctx.Value(attemptKey{}).(*attempt)
	if at == nil {
		// Not a context attemptStarted made: nothing to end or time.
		return
	}
	elapsed := time.Since(at.start)
	outcome := outcomeOf(err)
	at.span.SetAttributes(attrOutcome.String(outcome))
	if err != nil {
		msg := truncate(err.Error(), maxErrorText)
		at.span.RecordError(errors.New(msg))
		at.span.SetStatus(codes.Error, msg)
	}
	at.span.End()
	set := metric.WithAttributeSet(attribute.NewSet(
		attrStepID.String(a.StepID),
		attrKind.String(a.Kind),
		attrCompensation.Bool(a.Compensation),
		attrOutcome.String(outcome),
	))
	o.duration.Record(ctx, elapsed.Seconds(), set)
	o.attempts.Add(ctx, 1, set)
}

// outcomeOf names how an attempt ended. The engine hands the hooks the
// attempt's error text only, so that a timed-out or cancelled attempt is
// "failed" unless its error wraps context.DeadlineExceeded or
// context.Canceled.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return outcomeCompleted
	case errors.Is(err, context.DeadlineExceeded):
		return outcomeTimedOut
	case errors.Is(err, context.Canceled):
		return outcomeCancelled
	default:
		return outcomeFailed
	}
}

// runEnded counts the run by its final state and records a span for its
// end, linked to its creation span when this process has seen it.
func (o *observer) runEnded(runID string, state dagflow.State) {
	ctx := context.Background()
	o.runs.Add(ctx, 1, metric.WithAttributes(attrRunState.String(string(state))))
	opts := []trace.SpanStartOption{
		trace.WithNewRoot(),
		trace.WithSpanKind(trace.SpanKindInternal),
		trace.WithAttributes(attrWorkflowID.String(runID), attrRunState.String(string(state))),
	}
	if sc, ok := o.links.take(runID); ok {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
	}
	_, span := o.tracer.Start(ctx, "dagflow.end "+runID, opts...)
	if state == dagflow.StateFailed {
		span.SetStatus(codes.Error, "the run failed")
	}
	span.End()
}

func (o *observer) setBacklog(n int) {
	o.backlog.Record(context.Background(), int64(n))
}

// maxErrorText bounds the error text put on a span: a step's error may be
// large (a reply body), and the engine keeps it whole anyway.
const maxErrorText = 1024

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// traceContext is the W3C Trace Context propagator, the format the engine
// keeps with a run and sends to HTTP steps.
var traceContext propagation.TraceContext

// traceparent returns the W3C traceparent of sc.
func traceparent(sc trace.SpanContext) string {
	c := propagation.MapCarrier{}
	traceContext.Inject(trace.ContextWithSpanContext(context.Background(), sc), c)
	return c["traceparent"]
}

// parseTraceparent returns the span context of a W3C traceparent, or an
// invalid one when s is empty or malformed.
func parseTraceparent(s string) trace.SpanContext {
	if s == "" {
		return trace.SpanContext{}
	}
	ctx := traceContext.Extract(context.Background(), propagation.MapCarrier{"traceparent": s})
	return trace.SpanContextFromContext(ctx)
}

// maxLinks bounds the creation spans kept for the spans of runs' ends.
const maxLinks = 4096

// linkCache keeps the creation span of the runs this process has created
// or run an attempt of, so that a run's end can link to it: the engine
// tells RunEnded the run's id only. It holds at most maxLinks runs,
// forgetting the oldest first; a run it forgot ends with an unlinked span.
type linkCache struct {
	mu    sync.Mutex
	m     map[string]linkEntry
	order []string // a ring of the ids in m, oldest at next
	next  int
}

type linkEntry struct {
	sc   trace.SpanContext
	slot int
}

func (c *linkCache) put(runID string, sc trace.SpanContext) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]linkEntry)
		c.order = make([]string, maxLinks)
	}
	if e, ok := c.m[runID]; ok {
		e.sc = sc
		c.m[runID] = e
		return
	}
	if old := c.order[c.next]; old != "" {
		if e, ok := c.m[old]; ok && e.slot == c.next {
			delete(c.m, old)
		}
	}
	c.order[c.next] = runID
	c.m[runID] = linkEntry{sc: sc, slot: c.next}
	c.next = (c.next + 1) % maxLinks
}

func (c *linkCache) take(runID string) (trace.SpanContext, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[runID]
	if ok {
		delete(c.m, runID)
	}
	return e.sc, ok
}
