package httpstep

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func fastOptions() Options {
	return Options{Secret: []byte("hook"), RetryWaitMin: time.Millisecond, RetryWaitMax: 5 * time.Millisecond}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		replies     []int // status of attempt i; the last one repeats
		maxAttempts int
		wantCalls   int32
		status      int // 0: success
		retryable   bool
	}{
		{"first try", []int{204}, 3, 1, 0, false},
		{"503 then success", []int{503, 503, 200}, 5, 3, 0, false},
		{"gives up", []int{503}, 3, 3, 503, true},
		{"429 and 500 then success", []int{429, 500, 202}, 3, 3, 0, false},
		{"400 is final", []int{400}, 5, 1, 400, false},
		{"maxAttempts 0 means 1", []int{500}, 0, 1, 500, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := []byte(`{"id":"order-1","state":"completed"}`)
			var calls atomic.Int32
			var mu sync.Mutex
			sigs := map[string]bool{}
			srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n := int(calls.Add(1))
				mu.Lock()
				sigs[r.Header.Get(HeaderSignature)] = true
				mu.Unlock()
				if err := Verify(r, []byte("hook")); err != nil {
					t.Errorf("attempt %d: Verify: %v", n, err)
				}
				if got, _ := io.ReadAll(r.Body); string(got) != string(body) {
					t.Errorf("attempt %d: body %q", n, got)
				}
				if got := r.Header.Get(HeaderIdempotencyKey); got != "order-1/onComplete" {
					t.Errorf("attempt %d: Idempotency-Key %q", n, got)
				}
				w.WriteHeader(tt.replies[min(n, len(tt.replies))-1])
				io.WriteString(w, `{"error":"not now"}`)
			}))
			c := newTestClient(t, fastOptions())
			err := c.Deliver(context.Background(), srv.URL, "order-1/onComplete", body, tt.maxAttempts)
			if got := calls.Load(); got != tt.wantCalls {
				t.Errorf("%d attempts, want %d", got, tt.wantCalls)
			}
			if tt.status == 0 {
				if err != nil {
					t.Fatalf("Deliver: %v", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.StatusCode != tt.status || e.Retryable != tt.retryable {
				t.Fatalf("Deliver error %#v; want status %d, retryable %v", err, tt.status, tt.retryable)
			}
			if !strings.Contains(err.Error(), "not now") || !strings.Contains(err.Error(), "attempt(s)") {
				t.Errorf("error %q lacks the reply's text or the attempt count", err)
			}
		})
	}
}

func TestDeliverRetryAfter(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	c := newTestClient(t, fastOptions())
	start := time.Now()
	if err := c.Deliver(context.Background(), srv.URL, "", nil, 2); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 900*time.Millisecond {
		t.Errorf("retried after %v, Retry-After said 1s", d)
	}
}

func TestDeliverBackoff(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, Options{Now: func() time.Time { return clock }})
	resp := func(code int, retryAfter string) *http.Response {
		h := http.Header{}
		if retryAfter != "" {
			h.Set("Retry-After", retryAfter)
		}
		return &http.Response{StatusCode: code, Header: h}
	}
	if got := c.backoff(time.Second, 30*time.Second, 0, resp(429, "120")); got != 2*time.Minute {
		t.Errorf("429 Retry-After 120: %v", got)
	}
	if got := c.backoff(time.Second, 30*time.Second, 0, resp(503, clock.Add(time.Minute).Format(http.TimeFormat))); got != time.Minute {
		t.Errorf("503 Retry-After date: %v", got)
	}
	for attempt := range 10 {
		want := min(time.Second<<attempt, 30*time.Second)
		got := c.backoff(time.Second, 30*time.Second, attempt, resp(500, ""))
		if got < want/2 || got > want {
			t.Errorf("attempt %d: backoff %v, want in [%v, %v]", attempt, got, want/2, want)
		}
	}
	if got := c.backoff(time.Second, 30*time.Second, 0, nil); got < time.Second {
		t.Errorf("transport error backoff %v below min", got)
	}
}

func TestDeliverContext(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	hanging := blockingServer(t)
	c := newTestClient(t, fastOptions())
	for _, u := range []string{srv.URL, hanging.URL} {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		start := time.Now()
		err := c.Deliver(ctx, u, "", nil, 10)
		cancel()
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Deliver returned after %v", d)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Deliver error %v, want context.DeadlineExceeded", err)
		}
	}
}

func TestDeliverUnreachable(t *testing.T) {
	t.Parallel()
	c := newTestClient(t, fastOptions())
	err := c.Deliver(context.Background(), closedURL(t), "", nil, 3)
	var e *Error
	if !errors.As(err, &e) || !e.Retryable || e.StatusCode != 0 || !strings.Contains(e.Message, "after 3 attempt(s)") {
		t.Fatalf("Deliver error %#v", err)
	}
}
