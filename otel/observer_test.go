package dagflowotel

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dagflow/dagflow"
)

// The engine does not call Backlog on its own yet: these tests call the
// hooks as the engine would.

func TestBacklogGauge(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	h := newObserver(sdktrace.NewTracerProvider(), mp).hooks()
	h.Backlog(7)
	h.Backlog(3)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "dagflow.steps.backlog" {
				continue
			}
			g, ok := m.Data.(metricdata.Gauge[int64])
			if !ok || len(g.DataPoints) != 1 || g.DataPoints[0].Value != 3 {
				t.Fatalf("dagflow.steps.backlog = %+v, want a gauge at 3", m.Data)
			}
			return
		}
	}
	t.Fatal("no dagflow.steps.backlog")
}

func TestOutcome(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, "completed"},
		{fmt.Errorf("x"), "failed"},
		{fmt.Errorf("attempt timed out: %w", context.DeadlineExceeded), "timed_out"},
		{fmt.Errorf("cancelled: %w", context.Canceled), "cancelled"},
	} {
		if got := outcomeOf(c.err); got != c.want {
			t.Errorf("outcomeOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}

func TestTraceparentRoundTrip(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	_, span := tp.Tracer("t").Start(context.Background(), "s")
	span.End()
	s := traceparent(span.SpanContext())
	want := fmt.Sprintf("00-%s-%s-01", span.SpanContext().TraceID(), span.SpanContext().SpanID())
	if s != want {
		t.Fatalf("traceparent = %q, want %q", s, want)
	}
	sc := parseTraceparent(s)
	if sc.TraceID() != span.SpanContext().TraceID() || sc.SpanID() != span.SpanContext().SpanID() || !sc.IsRemote() {
		t.Errorf("parseTraceparent(%q) = %v", s, sc)
	}
	for _, bad := range []string{"", "00-x-y-01", "garbage"} {
		if parseTraceparent(bad).IsValid() {
			t.Errorf("parseTraceparent(%q) is valid", bad)
		}
	}
}

// TestAttemptEndedForeignContext: AttemptEnded with a context that
// AttemptStarted did not make records nothing and does not panic.
func TestAttemptEndedForeignContext(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	o := newObserver(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), nil)
	o.attemptEnded(context.Background(), dagflow.AttemptInfo{StepID: "a", Item: -1}, fmt.Errorf("x"))
	if n := len(rec.Ended()); n != 0 {
		t.Errorf("%d spans ended", n)
	}
}

// TestCompensationAndLongError: a compensation's span says so, and a long
// error is cut.
func TestCompensationAndLongError(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	o := newObserver(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)), nil)
	info := dagflow.AttemptInfo{WorkflowID: "w", StepID: "charge", Kind: "http", Attempt: 1, Item: -1, Compensation: true}
	ctx := o.attemptStarted(context.Background(), info)
	long := make([]byte, 100_000)
	for i := range long {
		long[i] = 'e'
	}
	o.attemptEnded(ctx, info, fmt.Errorf("%s", long))
	spans := rec.Ended()
	if len(spans) != 1 {
		t.Fatalf("%d spans", len(spans))
	}
	s := spans[0]
	var comp bool
	for _, kv := range s.Attributes() {
		if kv.Key == attrCompensation {
			comp = kv.Value.AsBool()
		}
	}
	if !comp {
		t.Errorf("compensation span attributes %v", s.Attributes())
	}
	if n := len(s.Status().Description); n > maxErrorText+3 {
		t.Errorf("status description is %d bytes", n)
	}
	if len(s.Links()) != 0 {
		t.Errorf("a run without a trace: links %v", s.Links())
	}
}

func TestLinkCache(t *testing.T) {
	var c linkCache
	sc := func(i int) trace.SpanContext {
		var tid trace.TraceID
		var sid trace.SpanID
		tid[0], tid[1], sid[0] = byte(i), byte(i>>8), 1
		return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid})
	}
	for i := range maxLinks {
		c.put(fmt.Sprint(i), sc(i))
	}
	// "0" is taken and put again: it is now the newest.
	if got, ok := c.take("0"); !ok || got.TraceID() != sc(0).TraceID() {
		t.Fatalf("take(0) = %v, %v", got, ok)
	}
	if _, ok := c.take("0"); ok {
		t.Fatal("take(0) twice")
	}
	c.put("0", sc(0))
	// The next put forgets the oldest, "1"; "0"'s old slot forgets
	// nothing.
	c.put("new", sc(9999))
	if _, ok := c.take("1"); ok {
		t.Error("the oldest run was kept past maxLinks")
	}
	if _, ok := c.take("0"); !ok {
		t.Error("a run put again was forgotten by its old slot")
	}
	if len(c.m) > maxLinks {
		t.Errorf("%d entries, more than %d", len(c.m), maxLinks)
	}
}

func TestTransport(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("traceparent"))
		mu.Unlock()
	}))
	defer srv.Close()
	rt := Transport(nil)
	defer rt.(*transport).CloseIdleConnections()
	client := &http.Client{Transport: rt}

	_, span := sdktrace.NewTracerProvider().Tracer("t").Start(context.Background(), "s")
	defer span.End()
	for _, ctx := range []context.Context{context.Background(), trace.ContextWithSpan(context.Background(), span)} {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if req.Header.Get("traceparent") != "" {
			t.Error("the transport changed the caller's request")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0] != "" || got[1] != traceparent(span.SpanContext()) {
		t.Errorf("traceparents sent %q, want none then %q", got, traceparent(span.SpanContext()))
	}
}
