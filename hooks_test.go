package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
)

// hookServer receives webhooks, checking their signatures.
type hookServer struct {
	*httptest.Server
	status atomic.Int64 // reply status; 0 means 200
	mu     sync.Mutex
	got    []received
}

type received struct {
	key    string
	status dagflow.Status
}

func newHookServer(t *testing.T, secret []byte) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := httpstep.Verify(r, secret); err != nil {
			t.Errorf("webhook signature: %v", err)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if code := h.status.Load(); code != 0 {
			http.Error(w, "not now", int(code))
			return
		}
		body, _ := io.ReadAll(r.Body)
		var st dagflow.Status
		if err := json.Unmarshal(body, &st); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.got = append(h.got, received{r.Header.Get("Idempotency-Key"), st})
		h.mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

func (h *hookServer) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if got := h.received(); len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d webhooks received, want %d", len(h.received()), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func fastHTTP(base string, secret []byte) dagflow.Option {
	return dagflow.WithHTTP(httpstep.Options{BaseURL: base, Secret: secret, RetryWaitMin: 5 * time.Millisecond, RetryWaitMax: 20 * time.Millisecond})
}

func TestWebhooks(t *testing.T) {
	secret := []byte("s3cret")
	hooks := newHookServer(t, secret)
	eng := newEngine(t, fastHTTP(hooks.URL, secret))
	mustHandle(t, eng, "ok", func(ctx context.Context, in dagflow.Input) (any, error) { return "fine", nil })
	mustHandle(t, eng, "bad", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, errors.New("nope") })
	run(t, eng, dagflow.Workflow{ID: "good", OnComplete: "/hooks/done", OnError: "/hooks/failed", Steps: []dagflow.Step{step("a", "ok")}})
	run(t, eng, dagflow.Workflow{ID: "bad", OnComplete: hooks.URL + "/hooks/done", OnError: "/hooks/failed", Steps: []dagflow.Step{step("a", "bad")}})
	got := hooks.wait(t, 2)
	byID := map[string]received{}
	for _, g := range got {
		byID[g.status.ID] = g
	}
	if g := byID["good"]; g.status.State != dagflow.StateCompleted || string(g.status.Results["a"]) != `"fine"` || g.key != "good/complete/0" {
		t.Errorf("onComplete: %+v", g)
	}
	if g := byID["bad"]; g.status.State != dagflow.StateFailed || g.status.Error == "" || g.key != "bad/error/0" {
		t.Errorf("onError: %+v", g)
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(hooks.received()); n != 2 {
		t.Errorf("%d webhooks, want exactly 2", n)
	}
	wh, err := eng.Webhooks(ctxT(t), "good")
	if err != nil || len(wh) != 1 || wh[0].DeliveredAt.IsZero() || wh[0].Event != "complete" {
		t.Errorf("Webhooks(good) = %+v, %v", wh, err)
	}
}

// TestWebhookSurvivesRestart: a webhook whose receiver is down is kept in
// the store and delivered by the next engine.
func TestWebhookSurvivesRestart(t *testing.T) {
	secret := []byte("k")
	hooks := newHookServer(t, secret)
	hooks.status.Store(http.StatusServiceUnavailable)
	path := filepath.Join(t.TempDir(), "flows.db")
	eng := openBolt(t, path, fastHTTP(hooks.URL, secret))
	mustHandle(t, eng, "ok", func(ctx context.Context, in dagflow.Input) (any, error) { return 1, nil })
	run(t, eng, dagflow.Workflow{ID: "w", OnComplete: "/done", Steps: []dagflow.Step{step("a", "ok")}})
	var wh []dagflow.Webhook
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		if wh, err = eng.Webhooks(ctxT(t), "w"); err != nil {
			t.Fatal(err)
		}
		if len(wh) == 1 && wh[0].LastError != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if len(wh) != 1 || wh[0].LastError == "" || !wh[0].DeliveredAt.IsZero() {
		t.Fatalf("undelivered webhook: %+v", wh)
	}
	eng.Close()

	hooks.status.Store(0)
	eng2 := openBolt(t, path, fastHTTP(hooks.URL, secret))
	defer eng2.Close()
	got := hooks.wait(t, 1)
	if got[0].status.ID != "w" || got[0].status.State != dagflow.StateCompleted {
		t.Errorf("delivered %+v", got[0])
	}
}

func TestWebhookGivesUp(t *testing.T) {
	secret := []byte("k")
	hooks := newHookServer(t, secret)
	hooks.status.Store(http.StatusBadGateway)
	eng := newEngine(t, fastHTTP(hooks.URL, secret), dagflow.WithWebhookAttempts(1))
	mustHandle(t, eng, "ok", func(ctx context.Context, in dagflow.Input) (any, error) { return 1, nil })
	run(t, eng, dagflow.Workflow{ID: "w", OnComplete: "/done", Steps: []dagflow.Step{step("a", "ok")}})
	deadline := time.Now().Add(10 * time.Second)
	for {
		wh, _ := eng.Webhooks(ctxT(t), "w")
		if len(wh) == 1 && wh[0].Attempts == 1 && wh[0].NextAt.IsZero() && wh[0].LastError != "" {
			break // given up, kept in the store with its error
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook: %+v", wh)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestWebhookCutShortByClose: a webhook whose delivery Close cuts short is
// not counted as an attempt, and the next engine to open the store sends
// it at once.
func TestWebhookCutShortByClose(t *testing.T) {
	secret := []byte("s")
	entered, release := make(chan struct{}, 1), make(chan struct{})
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			entered <- struct{}{}
			select { // held until the engine gives up on it
			case <-r.Context().Done():
			case <-release:
			}
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	path := filepath.Join(t.TempDir(), "flows.db")
	open := func() *dagflow.Engine {
		eng, err := dagflow.Open(dagflow.WithPath(path), fastHTTP(srv.URL, secret), dagflow.WithLogger(testLogger(t)),
			dagflow.WithHandler("h", (&recorder{}).handle))
		if err != nil {
			t.Fatal(err)
		}
		return eng
	}
	eng := open()
	run(t, eng, dagflow.Workflow{ID: "cut", OnComplete: "/done", Steps: []dagflow.Step{step("a", "h")}})
	select {
	case <-entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the webhook was not sent")
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	eng = open()
	defer eng.Close()
	ctx := ctxT(t)
	for {
		hooks, err := eng.Webhooks(ctx, "cut")
		if err != nil || len(hooks) != 1 {
			t.Fatalf("webhooks %+v, %v", hooks, err)
		}
		if !hooks[0].DeliveredAt.IsZero() {
			if hooks[0].Attempts != 1 || calls.Load() != 2 {
				t.Errorf("delivered after %d attempts and %d requests; want the one cut short left uncounted: 1 and 2",
					hooks[0].Attempts, calls.Load())
			}
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("not delivered after reopening: %+v", hooks[0])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
