package dagflowotel

import (
	"context"
	"net/http"

	"github.com/hashicorp/go-cleanhttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Transport returns an http.RoundTripper that sends the W3C trace context of
// each request's context in the traceparent (and tracestate) header, then
// sends the request with base. A nil base means a pooled transport of its
// own (go-cleanhttp's, what httpstep uses when given no client). Requests
// whose context has no span go out unchanged.
//
// The engine's own requests need it not: [New] has the engine send the
// header on every HTTP step. Transport is for the application's other HTTP
// clients, which make requests from a handler's context.
//
// The returned RoundTripper is safe for concurrent use if base is.
func Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = cleanhttp.DefaultPooledTransport()
	}
	return &transport{base: base}
}

type transport struct {
	base http.RoundTripper
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(req.Context()).IsValid() {
		return t.base.RoundTrip(req)
	}
	// A RoundTripper must not change the request it is given.
	r := req.Clone(req.Context())
	InjectHeader(r.Context(), r.Header)
	return t.base.RoundTrip(r)
}

// CloseIdleConnections closes the idle connections of the base transport,
// if it has such a method (http.Client.CloseIdleConnections calls it).
func (t *transport) CloseIdleConnections() {
	if c, ok := t.base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}

// InjectHeader sets the W3C traceparent (and tracestate) headers of h from
// the span in ctx; it leaves h alone when ctx has no span. It is what
// [Transport] does to each request, for clients that set headers
// themselves.
func InjectHeader(ctx context.Context, h http.Header) {
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
}
