package httpstep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// mustHandler is Handler for tests, which fails the test on an error.
func mustHandler(t *testing.T, fn func(ctx context.Context, req Request) (any, error), opts ...HandlerOption) http.Handler {
	t.Helper()
	h, err := Handler(fn, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestHandlerFailsClosed: a handler without a secret serves nothing unless
// it is told to serve unsigned requests.
func TestHandlerFailsClosed(t *testing.T) {
	t.Parallel()
	fn := func(context.Context, Request) (any, error) { return nil, nil }
	for name, opts := range map[string][]HandlerOption{
		"no option":    nil,
		"empty secret": {WithSecret([]byte(""))},
		"nil secret":   {WithSecret(nil)},
	} {
		if h, err := Handler(fn, opts...); !errors.Is(err, ErrNoVerification) || h != nil {
			t.Errorf("%s: Handler = %v, %v; want ErrNoVerification", name, h, err)
		}
	}
	if _, err := Handler(fn, WithoutVerification()); err != nil {
		t.Errorf("WithoutVerification: %v", err)
	}
	if _, err := Handler(nil, WithoutVerification()); err == nil {
		t.Error("Handler(nil) returned no error")
	}
}

func TestHandlerWithCall(t *testing.T) {
	t.Parallel()
	secret := []byte("whsec")
	in := Request{
		WorkflowID:    "order-1",
		StepID:        "refund",
		Attempt:       2,
		Context:       json.RawMessage(`{"orderId":"o1"}`),
		PreviousSteps: map[string]PreviousStep{"charge": {Result: json.RawMessage(`{"id":"ch_1"}`)}},
		Compensation:  true,
		Result:        json.RawMessage(`{"id":"ch_1"}`),
		Generation:    1,
		Item:          json.RawMessage(`{"sku":"a"}`),
		Index:         3,

		FailedDependencies: []string{"reserve"},
		IdempotencyKey:     "order-1/refund/compensation",
	}
	body, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	fn := func(ctx context.Context, req Request) (any, error) {
		if diff := cmp.Diff(in, req); diff != "" {
			return nil, Permanent(fmt.Errorf("request mismatch (-want +got):\n%s", diff))
		}
		switch req.WorkflowID {
		case "order-1":
			return map[string]string{"refund": "re_1"}, nil
		}
		return nil, nil
	}
	mux := http.NewServeMux()
	mux.Handle("/ok", mustHandler(t, fn, WithSecret(secret)))
	mux.Handle("/fail", mustHandler(t, func(context.Context, Request) (any, error) {
		return nil, errors.New("gateway timeout")
	}, WithSecret(secret)))
	mux.Handle("/permanent", mustHandler(t, func(context.Context, Request) (any, error) {
		return nil, fmt.Errorf("charge: %w", Permanent(errors.New("card stolen")))
	}, WithSecret(secret)))
	mux.Handle("/unencodable", mustHandler(t, func(context.Context, Request) (any, error) {
		return make(chan int), nil
	}, WithoutVerification()))
	mux.Handle("/small", mustHandler(t, fn, WithMaxRequestBytes(10), WithoutVerification()))
	srv := newServer(t, mux)

	signed := newTestClient(t, Options{BaseURL: srv.URL, Secret: secret})
	wrongKey := newTestClient(t, Options{BaseURL: srv.URL, Secret: []byte("other")})
	unsigned := newTestClient(t, Options{BaseURL: srv.URL})

	tests := []struct {
		name      string
		c         *Client
		path      string
		result    string
		status    int
		retryable bool
		msg       string
	}{
		{"success", signed, "/ok", `{"refund":"re_1"}`, 0, false, ""},
		{"error", signed, "/fail", "", 200, true, "job failed: gateway timeout"},
		{"permanent", signed, "/permanent", "", 422, false, "charge: card stolen"},
		{"wrong secret", wrongKey, "/ok", "", 401, false, "bad signature"},
		{"unsigned", unsigned, "/ok", "", 401, false, "missing Dagflow-Signature header"},
		{"unencodable result", unsigned, "/unencodable", "", 500, true, "encode result"},
		{"too large", unsigned, "/small", "", 413, false, "request body too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := tt.c.Call(context.Background(), tt.path, "order-1/refund/compensation", body)
			if tt.status == 0 {
				if err != nil || string(r.Result) != tt.result {
					t.Fatalf("Call = %s, %v; want %s", r.Result, err, tt.result)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Call error = %v, want *Error", err)
			}
			if e.StatusCode != tt.status || e.Retryable != tt.retryable || !strings.Contains(e.Message, tt.msg) {
				t.Errorf("error %d %v %q; want %d %v %q", e.StatusCode, e.Retryable, e.Message, tt.status, tt.retryable, tt.msg)
			}
		})
	}
}

func TestHandlerRejects(t *testing.T) {
	t.Parallel()
	var called atomic.Bool
	srv := newServer(t, mustHandler(t, func(context.Context, Request) (any, error) {
		called.Store(true)
		return nil, nil
	}, WithoutVerification()))
	tests := []struct {
		method, body string
		status       int
		msg          string
	}{
		{http.MethodGet, "", 405, "method GET not allowed"},
		{http.MethodPut, `{}`, 405, "method PUT not allowed"},
		{http.MethodPost, `{"workflowId":`, 400, "decode request"},
		{http.MethodPost, `[1]`, 400, "not a JSON object"},
		{http.MethodPost, ``, 400, "not a JSON object"},
		{http.MethodPost, `{"attempt":"one"}`, 400, "decode request"},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, srv.URL, strings.NewReader(tt.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var got struct {
			Success *bool
			Error   string
		}
		if resp.StatusCode != tt.status || json.Unmarshal(b, &got) != nil || got.Success == nil || *got.Success ||
			!strings.Contains(got.Error, tt.msg) || resp.Header.Get("Content-Type") != "application/json" {
			t.Errorf("%s %q: %d %s; want %d with %q", tt.method, tt.body, resp.StatusCode, b, tt.status, tt.msg)
		}
		if tt.status == 405 && resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("405 without Allow: POST")
		}
	}
	srv.Client().CloseIdleConnections()
	if called.Load() {
		t.Error("fn was called for a rejected request")
	}
}

func TestPermanent(t *testing.T) {
	t.Parallel()
	if Permanent(nil) != nil {
		t.Error("Permanent(nil) != nil")
	}
	base := errors.New("card stolen")
	err := fmt.Errorf("charge: %w", Permanent(base))
	if !IsPermanent(err) || !errors.Is(err, base) || err.Error() != "charge: card stolen" {
		t.Errorf("Permanent wrapping broken: %v", err)
	}
	if IsPermanent(base) || IsPermanent(nil) {
		t.Error("IsPermanent true for a plain error")
	}
}
