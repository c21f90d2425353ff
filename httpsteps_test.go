package dagflow_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
)

// jobServer serves HTTP job handlers written with httpstep.Handler.
func jobServer(t *testing.T, secret []byte, jobs map[string]func(ctx context.Context, req httpstep.Request) (any, error)) *httptest.Server {
	mux := http.NewServeMux()
	verify := httpstep.WithSecret(secret)
	if secret == nil {
		verify = httpstep.WithoutVerification()
	}
	for path, fn := range jobs {
		h, err := httpstep.Handler(fn, verify)
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle(path, h)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestHTTPSteps(t *testing.T) {
	secret := []byte("job-secret")
	var mu sync.Mutex
	var keys []string
	var chargeTries atomic.Int64
	var refundReq httpstep.Request
	srv := jobServer(t, secret, map[string]func(ctx context.Context, req httpstep.Request) (any, error){
		"/api/jobs/validate-order": func(ctx context.Context, req httpstep.Request) (any, error) {
			return map[string]any{"valid": true}, nil
		},
		"/api/jobs/charge-payment": func(ctx context.Context, req httpstep.Request) (any, error) {
			mu.Lock()
			keys = append(keys, req.StepID+"#"+string(rune('0'+req.Attempt)))
			mu.Unlock()
			if chargeTries.Add(1) == 1 {
				return nil, errors.New("gateway timeout") // success:false, retryable
			}
			if _, ok := req.PreviousSteps["validate-order"]; !ok {
				return nil, httpstep.Permanent(errors.New("validate-order result missing"))
			}
			return map[string]any{"chargeId": "ch_1"}, nil
		},
		"/api/jobs/create-shipment": func(ctx context.Context, req httpstep.Request) (any, error) {
			return nil, httpstep.Permanent(errors.New("address undeliverable"))
		},
		"/api/jobs/refund-payment": func(ctx context.Context, req httpstep.Request) (any, error) {
			mu.Lock()
			refundReq = req
			mu.Unlock()
			return "refunded", nil
		},
	})
	var seenKeys []string
	var km sync.Mutex
	// Wrap the server to see headers.
	inner := srv.Config.Handler
	srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		km.Lock()
		seenKeys = append(seenKeys, r.Header.Get("Idempotency-Key"))
		km.Unlock()
		inner.ServeHTTP(w, r)
	})
	eng := newEngine(t, dagflow.WithHTTP(httpstep.Options{BaseURL: srv.URL + "/api/", Secret: secret}))
	wf, err := dagflow.ParseWorkflow([]byte(`{
	  "id": "order-http", "saga": true, "context": {"orderId": "order_123"},
	  "steps": [
	    {"id": "validate-order", "url": "jobs/validate-order"},
	    {"id": "charge-payment", "url": "/api/jobs/charge-payment", "dependsOn": ["validate-order"],
	     "retries": {"maxAttempts": 3, "backoff": "fixed", "initialInterval": 0.01},
	     "compensation": "jobs/refund-payment"},
	    {"id": "create-shipment", "url": "jobs/create-shipment", "dependsOn": ["charge-payment"],
	     "retries": {"maxAttempts": 3, "initialInterval": 0.01}}
	  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	st := run(t, eng, wf)
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	want := map[string]dagflow.State{"validate-order": dagflow.StateCompleted, "charge-payment": dagflow.StateCompensated, "create-shipment": dagflow.StateFailed}
	if d := cmp.Diff(want, stepStates(st)); d != "" {
		t.Errorf("states (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"charge-payment#1", "charge-payment#2"}, keys); d != "" {
		t.Errorf("charge attempts (-want +got):\n%s", d)
	}
	if st.Steps[2].Attempts != 1 || !strings.Contains(st.Steps[2].Error, "address undeliverable") {
		t.Errorf("a permanent (422) reply was retried or lost its error: %+v", st.Steps[2])
	}
	if !refundReq.Compensation || string(refundReq.Result) != `{"chargeId":"ch_1"}` || string(refundReq.Context) != `{"orderId":"order_123"}` {
		t.Errorf("refund request %+v", refundReq)
	}
	wantKeys := []string{"order-http/validate-order", "order-http/charge-payment", "order-http/charge-payment",
		"order-http/create-shipment", "order-http/charge-payment/compensation"}
	if d := cmp.Diff(wantKeys, seenKeys); d != "" {
		t.Errorf("idempotency keys (-want +got):\n%s", d)
	}
	hist, _ := eng.Attempts(ctxT(t), "order-http")
	for _, a := range hist {
		if a.StatusCode == 0 || a.Duration <= 0 {
			t.Errorf("attempt %s#%d lacks status code or duration: %+v", a.StepID, a.Number, a)
		}
	}
}

// TestHTTPStepCancelAbortsRequest: Cancel aborts the HTTP request under way.
func TestHTTPStepCancelAbortsRequest(t *testing.T) {
	arrived := make(chan struct{})
	aborted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		close(arrived)
		select {
		case <-r.Context().Done():
			close(aborted)
		case <-time.After(10 * time.Second):
		}
	}))
	defer srv.Close()
	eng := newEngine(t)
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "c", Steps: []dagflow.Step{{ID: "slow", URL: srv.URL}}}); err != nil {
		t.Fatal(err)
	}
	<-arrived
	if _, err := eng.Cancel(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aborted:
	case <-time.After(5 * time.Second):
		t.Fatal("the request was not aborted")
	}
	st, _ := eng.Wait(ctx, "c")
	if st.State != dagflow.StateCancelled || st.Steps[0].State != dagflow.StateCancelled {
		t.Errorf("state %s, step %s", st.State, st.Steps[0].State)
	}
}

// TestHTTPStepBadReplies: each bad reply is a failed attempt with a clear
// error in the step's status.
func TestHTTPStepBadReplies(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/notjson", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>oops</html>")) })
	mux.HandleFunc("/loop", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		// Read the body: the server notices a client that went away only
		// once it reads again.
		io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	mux.HandleFunc("/huge", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"success":true,"result":"` + strings.Repeat("x", 2<<20) + `"}`))
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	eng := newEngine(t, dagflow.WithHTTP(httpstep.Options{BaseURL: srv.URL}))
	tests := []struct {
		url, want string
		timeout   time.Duration
	}{
		{"/notjson", "reply is not the job protocol", 0},
		{"/loop", "redirect", 0},
		{"/hang", "attempt timed out after 100ms", 100 * time.Millisecond},
		{"/huge", "exceeds", 0},
		{closedURL + "/x", "connect", 0},
	}
	for i, tc := range tests {
		id := "bad-" + string(rune('a'+i))
		st := run(t, eng, dagflow.Workflow{ID: id, Steps: []dagflow.Step{{ID: "s", URL: tc.url, Timeout: tc.timeout}}})
		if st.State != dagflow.StateFailed || !strings.Contains(st.Steps[0].Error, tc.want) {
			t.Errorf("%s: state %s, error %q; want it to mention %q", tc.url, st.State, st.Steps[0].Error, tc.want)
		}
	}
}
