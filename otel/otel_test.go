package dagflowotel_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
	dagflowotel "github.com/dagflow/dagflow/otel"
	"github.com/dagflow/dagflow/store/memory"
)

// jobServer is an HTTP job handler that keeps the traceparent of each
// request.
type jobServer struct {
	*httptest.Server
	mu      sync.Mutex
	parents []string
}

func newJobServer(t *testing.T) *jobServer {
	s := &jobServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		s.mu.Lock()
		s.parents = append(s.parents, r.Header.Get("traceparent"))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"success": true, "result": "shipped"}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jobServer) traceparents() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.parents)
}

// observed is an engine wired to in-memory exporters.
type observed struct {
	eng    *dagflow.Engine
	spans  *tracetest.SpanRecorder
	reader *sdkmetric.ManualReader
	tp     *sdktrace.TracerProvider
}

func newObserved(t *testing.T, opts ...dagflow.Option) *observed {
	t.Helper()
	o := &observed{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	o.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(o.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(o.reader))
	t.Cleanup(func() {
		o.tp.Shutdown(context.Background())
		mp.Shutdown(context.Background())
	})
	base := []dagflow.Option{
		dagflow.WithStore(memory.New()),
		dagflow.WithLogger(slog.New(slog.DiscardHandler)),
		dagflowotel.New(o.tp, mp),
	}
	eng, err := dagflow.Open(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	o.eng = eng
	return o
}

// run creates wf under a span of the caller's, waits for the run, and
// returns the caller's span context.
func (o *observed) run(t *testing.T, wf dagflow.Workflow) (*dagflow.Status, trace.SpanContext) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cctx, caller := o.tp.Tracer("test").Start(ctx, "caller")
	_, err := o.eng.Create(cctx, wf)
	caller.End()
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	st, err := o.eng.Wait(ctx, wf.ID)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return st, caller.SpanContext()
}

func spansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

func sameSpan(a, b trace.SpanContext) bool {
	return a.TraceID() == b.TraceID() && a.SpanID() == b.SpanID()
}

func TestTracesAndMetrics(t *testing.T) {
	jobs := newJobServer(t)
	o := newObserved(t, dagflow.WithHTTP(httpstep.Options{}))
	tracer := o.tp.Tracer("handler")
	handle := func(name string, h dagflow.HandlerFunc) {
		if err := o.eng.Handle(name, h); err != nil {
			t.Fatal(err)
		}
	}
	handle("ok", func(ctx context.Context, in dagflow.Input) (any, error) { return in.StepID, nil })
	handle("flaky", func(ctx context.Context, in dagflow.Input) (any, error) {
		if in.Attempt == 1 {
			return nil, errors.New("flaky: try again")
		}
		return "fine", nil
	})
	handle("item", func(ctx context.Context, in dagflow.Input) (any, error) {
		_, span := tracer.Start(ctx, "item work") // a child of the attempt's span
		span.End()
		return in.Index, nil
	})
	handle("boom", func(ctx context.Context, in dagflow.Input) (any, error) {
		return nil, dagflow.Permanent(errors.New("boom"))
	})

	st, caller := o.run(t, dagflow.Workflow{ID: "order-1", Steps: []dagflow.Step{
		{ID: "a", Handler: "ok"},
		{ID: "b", Handler: "flaky", DependsOn: []string{"a"},
			Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: time.Millisecond}},
		{ID: "m", Handler: "item", DependsOn: []string{"a"}, Parallel: true,
			Map: &dagflow.Map{Items: dagflow.MapItems{List: []byte(`[10, 20, 30]`)}}},
		{ID: "h", URL: jobs.URL + "/ship", DependsOn: []string{"b"}},
	}})
	if st.State != dagflow.StateCompleted {
		t.Fatalf("order-1 ended %s: %s", st.State, st.Error)
	}
	bad, _ := o.run(t, dagflow.Workflow{ID: "bad-1", Steps: []dagflow.Step{{ID: "x", Handler: "boom"}}})
	if bad.State != dagflow.StateFailed {
		t.Fatalf("bad-1 ended %s", bad.State)
	}
	// Close waits for the workers, so that every hook has been called.
	if err := o.eng.Close(); err != nil {
		t.Fatal(err)
	}
	spans := o.spans.Ended()

	// The creation span: a producer span under the caller's.
	creates := spansNamed(spans, "dagflow.create order-1")
	if len(creates) != 1 {
		t.Fatalf("%d dagflow.create order-1 spans, want 1", len(creates))
	}
	create := creates[0]
	if create.SpanKind() != trace.SpanKindProducer {
		t.Errorf("create span kind %v, want producer", create.SpanKind())
	}
	if !sameSpan(create.Parent(), caller) {
		t.Errorf("create span's parent %v, want the caller's span %v", create.Parent(), caller)
	}
	if got := attrs(create)["dagflow.workflow.id"].AsString(); got != "order-1" {
		t.Errorf("create span dagflow.workflow.id = %q", got)
	}

	// Step spans: consumer spans, each the root of its own trace, linked to
	// the creation span.
	checkStep := func(s sdktrace.ReadOnlySpan, stepID, kind string) map[attribute.Key]attribute.Value {
		t.Helper()
		if s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("%s: kind %v, want consumer", s.Name(), s.SpanKind())
		}
		if s.Parent().IsValid() {
			t.Errorf("%s: has parent %v, want a root span", s.Name(), s.Parent())
		}
		if l := s.Links(); len(l) != 1 || !sameSpan(l[0].SpanContext, create.SpanContext()) {
			t.Errorf("%s: links %+v, want one to the creation span %v", s.Name(), l, create.SpanContext())
		}
		a := attrs(s)
		if a["dagflow.workflow.id"].AsString() != "order-1" || a["dagflow.step.id"].AsString() != stepID ||
			a["dagflow.step.kind"].AsString() != kind {
			t.Errorf("%s: attributes %v", s.Name(), a)
		}
		return a
	}
	as := spansNamed(spans, "dagflow.step a")
	if len(as) != 1 {
		t.Fatalf("%d spans of step a, want 1", len(as))
	}
	a := checkStep(as[0], "a", "handler")
	if a["dagflow.step.attempt"].AsInt64() != 1 || a["dagflow.step.outcome"].AsString() != "completed" {
		t.Errorf("step a: attributes %v", a)
	}
	if _, ok := a["dagflow.step.item"]; ok {
		t.Errorf("step a, not a map, has dagflow.step.item")
	}
	if as[0].Status().Code != codes.Unset {
		t.Errorf("step a: status %v", as[0].Status())
	}

	bs := spansNamed(spans, "dagflow.step b")
	if len(bs) != 2 {
		t.Fatalf("%d spans of step b, want 2", len(bs))
	}
	slices.SortFunc(bs, func(x, y sdktrace.ReadOnlySpan) int {
		return int(attrs(x)["dagflow.step.attempt"].AsInt64() - attrs(y)["dagflow.step.attempt"].AsInt64())
	})
	for i, s := range bs {
		a := checkStep(s, "b", "handler")
		if a["dagflow.step.attempt"].AsInt64() != int64(i+1) {
			t.Errorf("step b span %d: attempt %v", i, a["dagflow.step.attempt"])
		}
	}
	if s := bs[0].Status(); s.Code != codes.Error || !strings.Contains(s.Description, "flaky: try again") {
		t.Errorf("step b attempt 1: status %+v, want Error with the handler's error", s)
	}
	if got := attrs(bs[0])["dagflow.step.outcome"].AsString(); got != "failed" {
		t.Errorf("step b attempt 1: outcome %q", got)
	}
	if s := bs[1].Status(); s.Code != codes.Unset {
		t.Errorf("step b attempt 2: status %+v", s)
	}

	ms := spansNamed(spans, "dagflow.step m")
	if len(ms) != 3 {
		t.Fatalf("%d spans of step m, want 3 (one per item)", len(ms))
	}
	var items []int64
	mapSpans := map[trace.SpanID]bool{}
	for _, s := range ms {
		a := checkStep(s, "m", "handler")
		v, ok := a["dagflow.step.item"]
		if !ok {
			t.Errorf("map item span without dagflow.step.item: %v", a)
		}
		items = append(items, v.AsInt64())
		mapSpans[s.SpanContext().SpanID()] = true
	}
	slices.Sort(items)
	if !slices.Equal(items, []int64{0, 1, 2}) {
		t.Errorf("map items %v, want [0 1 2]", items)
	}
	inner := spansNamed(spans, "item work")
	if len(inner) != 3 {
		t.Fatalf("%d handler spans, want 3", len(inner))
	}
	for _, s := range inner {
		if !mapSpans[s.Parent().SpanID()] {
			t.Errorf("a handler's span has parent %v, not its attempt's span", s.Parent())
		}
	}

	// The HTTP step's request carried the attempt span's traceparent.
	hs := spansNamed(spans, "dagflow.step h")
	if len(hs) != 1 {
		t.Fatalf("%d spans of step h, want 1", len(hs))
	}
	checkStep(hs[0], "h", "http")
	got := jobs.traceparents()
	if len(got) != 1 {
		t.Fatalf("the job server got %d requests, want 1", len(got))
	}
	sent := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(),
		propagation.MapCarrier{"traceparent": got[0]}))
	if !sameSpan(sent, hs[0].SpanContext()) {
		t.Errorf("traceparent %q, want the span of step h %v", got[0], hs[0].SpanContext())
	}

	// The failed run: its step's span is an error, its end says so.
	xs := spansNamed(spans, "dagflow.step x")
	if len(xs) != 1 || xs[0].Status().Code != codes.Error || !strings.Contains(xs[0].Status().Description, "boom") {
		t.Errorf("step x spans %v", xs)
	} else if ev := xs[0].Events(); len(ev) != 1 || ev[0].Name != "exception" {
		t.Errorf("step x events %+v, want one exception", ev)
	}

	// The ends of the runs.
	for _, c := range []struct {
		id    string
		state dagflow.State
		code  codes.Code
	}{{"order-1", dagflow.StateCompleted, codes.Unset}, {"bad-1", dagflow.StateFailed, codes.Error}} {
		ends := spansNamed(spans, "dagflow.end "+c.id)
		if len(ends) != 1 {
			t.Errorf("%d dagflow.end %s spans, want 1", len(ends), c.id)
			continue
		}
		e := ends[0]
		if got := attrs(e)["dagflow.run.state"].AsString(); got != string(c.state) {
			t.Errorf("dagflow.end %s: dagflow.run.state %q, want %q", c.id, got, c.state)
		}
		if e.Status().Code != c.code {
			t.Errorf("dagflow.end %s: status %v, want %v", c.id, e.Status().Code, c.code)
		}
		if len(e.Links()) != 1 {
			t.Errorf("dagflow.end %s: %d links, want 1", c.id, len(e.Links()))
		}
	}
	if l := spansNamed(spans, "dagflow.end order-1"); len(l) == 1 && len(l[0].Links()) == 1 &&
		!sameSpan(l[0].Links()[0].SpanContext, create.SpanContext()) {
		t.Errorf("dagflow.end order-1 links to %v, want the creation span", l[0].Links()[0].SpanContext)
	}

	// Metrics.
	var rm metricdata.ResourceMetrics
	if err := o.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	ms2 := metricsByName(rm)

	attempts := sumByAttrs(t, ms2["dagflow.step.attempts"], "dagflow.step.id", "dagflow.step.outcome")
	wantAttempts := map[string]int64{
		"a/completed": 1, "b/failed": 1, "b/completed": 1, "m/completed": 3, "h/completed": 1, "x/failed": 1,
	}
	if !mapsEqual(attempts, wantAttempts) {
		t.Errorf("dagflow.step.attempts = %v, want %v", attempts, wantAttempts)
	}
	h, ok := ms2["dagflow.step.duration"].Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("dagflow.step.duration is %T, want a float64 histogram", ms2["dagflow.step.duration"].Data)
	}
	if ms2["dagflow.step.duration"].Unit != "s" {
		t.Errorf("dagflow.step.duration unit %q", ms2["dagflow.step.duration"].Unit)
	}
	var count uint64
	for _, dp := range h.DataPoints {
		count += dp.Count
		if dp.Sum < 0 {
			t.Errorf("negative duration sum %v", dp.Sum)
		}
		if v, _ := dp.Attributes.Value("dagflow.step.kind"); v.AsString() == "" {
			t.Errorf("duration point without dagflow.step.kind: %v", dp.Attributes)
		}
	}
	if count != 8 {
		t.Errorf("dagflow.step.duration counts %d attempts, want 8", count)
	}
	runs := sumByAttrs(t, ms2["dagflow.runs.ended"], "dagflow.run.state")
	if want := map[string]int64{"completed": 1, "failed": 1}; !mapsEqual(runs, want) {
		t.Errorf("dagflow.runs.ended = %v, want %v", runs, want)
	}
}

func metricsByName(rm metricdata.ResourceMetrics) map[string]metricdata.Metrics {
	m := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		for _, x := range sm.Metrics {
			m[x.Name] = x
		}
	}
	return m
}

// sumByAttrs returns a counter's values keyed by the values of keys,
// joined with "/".
func sumByAttrs(t *testing.T, m metricdata.Metrics, keys ...attribute.Key) map[string]int64 {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s is %T, want an int64 sum", m.Name, m.Data)
	}
	if !sum.IsMonotonic {
		t.Errorf("%s is not monotonic", m.Name)
	}
	out := map[string]int64{}
	for _, dp := range sum.DataPoints {
		var parts []string
		for _, k := range keys {
			v, _ := dp.Attributes.Value(k)
			parts = append(parts, v.Emit())
		}
		out[strings.Join(parts, "/")] += dp.Value
	}
	return out
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestNoProviders: with the global providers (no-ops unless set), the
// hooks do nothing visible and the engine runs as without them.
func TestNoProviders(t *testing.T) {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflowotel.New(nil, nil),
		dagflow.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("ok", func(ctx context.Context, in dagflow.Input) (any, error) { return 1, nil })
	ctx := context.Background()
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "w", Steps: []dagflow.Step{{ID: "a", Handler: "ok"}}}); err != nil {
		t.Fatal(err)
	}
	st, err := eng.Wait(ctx, "w")
	if err != nil || st.State != dagflow.StateCompleted {
		t.Fatalf("Wait = %v, %v", st, err)
	}
}
