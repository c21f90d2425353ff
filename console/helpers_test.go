package console_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// newEngine opens an engine on a memory store with the handlers the tests
// use, closed when the test ends.
func newEngine(t testing.TB, opts ...dagflow.Option) *dagflow.Engine {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng, err := dagflow.Open(append([]dagflow.Option{dagflow.WithStore(memory.New()), dagflow.WithLogger(logger)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	for name, h := range map[string]dagflow.HandlerFunc{
		"ok": func(ctx context.Context, in dagflow.Input) (any, error) {
			in.Logger().Info("working on it", "step", in.StepID)
			return map[string]any{"step": in.StepID, "ok": true}, nil
		},
		"fail": func(ctx context.Context, in dagflow.Input) (any, error) {
			in.Logger().Warn("about to fail", "attempt", in.Attempt)
			return nil, dagflow.Permanent(errors.New("card declined"))
		},
		"echo": func(ctx context.Context, in dagflow.Input) (any, error) {
			var c struct {
				Result any `json:"result"`
			}
			if err := in.DecodeContext(&c); err != nil {
				return nil, err
			}
			return c.Result, nil
		},
		"block": func(ctx context.Context, in dagflow.Input) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		},
	} {
		if err := eng.Handle(name, h); err != nil {
			t.Fatal(err)
		}
	}
	return eng
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// runWF creates a workflow and waits for its end.
func runWF(t testing.TB, eng *dagflow.Engine, wf dagflow.Workflow) *dagflow.Status {
	t.Helper()
	if _, err := eng.Create(ctxT(t), wf); err != nil {
		t.Fatalf("Create %s: %v", wf.ID, err)
	}
	st, err := eng.Wait(ctxT(t), wf.ID)
	if err != nil {
		t.Fatalf("Wait %s: %v", wf.ID, err)
	}
	return st
}

func step(id, handler string, deps ...string) dagflow.Step {
	return dagflow.Step{ID: id, Handler: handler, DependsOn: deps}
}

// pipeline is a workflow that completes: a fan-out and a join.
func pipeline(id string) dagflow.Workflow {
	return dagflow.Workflow{ID: id, Context: []byte(`{"orderId":"order_123"}`), Steps: []dagflow.Step{
		step("extract", "ok"), step("clean", "ok", "extract"), step("enrich", "ok", "extract"),
		step("score", "ok", "clean", "enrich"), step("publish", "ok", "score"),
	}}
}

// failing is a workflow that fails at its second step.
func failing(id string) dagflow.Workflow {
	return dagflow.Workflow{ID: id, Steps: []dagflow.Step{
		step("validate", "ok"), step("charge", "fail", "validate"), step("ship", "ok", "charge"),
	}}
}

// serve mounts h under /flows/ of a test server.
func serve(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/flows/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// reply is a response with its body read.
type reply struct {
	*http.Response
	body string
}

func (r reply) String() string { return r.body }

// do sends a request and reads the reply, following no redirect.
func do(t testing.TB, req *http.Request) reply {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return reply{res, string(b)}
}

func get(t testing.TB, u string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return do(t, req)
}

// postForm posts a form with optional headers.
func postForm(t testing.TB, u string, form url.Values, header http.Header, cookies ...*http.Cookie) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	for _, c := range cookies {
		req.AddCookie(c)
	}
	return do(t, req)
}

func wantCode(t testing.TB, r reply, code int) {
	t.Helper()
	if r.StatusCode != code {
		t.Fatalf("%s %s: status %d, want %d; body:\n%.2000s", r.Request.Method, r.Request.URL, r.StatusCode, code, r.body)
	}
}

// waitState polls a run until it is in state.
func waitState(t testing.TB, eng *dagflow.Engine, id string, state dagflow.State) *dagflow.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := eng.Status(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State == state {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s is %s, want %s", id, st.State, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
