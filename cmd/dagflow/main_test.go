package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/store/bolt"
)

// bin is the dagflow binary the tests run, built once by TestMain (with
// -race when the tests run with it).
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "dagflow-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "dagflow")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, ".")...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building dagflow:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

const secret = "test-secret"

// jobs are the order-processing job handlers, served over HTTP with
// httpstep.Handler, checking signatures made with secret.
type jobs struct {
	url string // the server's base URL

	mu    sync.Mutex
	calls map[string]int // by path
	hooks []string       // "<event> <run id> <state>" of each webhook received

	fixed   atomic.Bool   // /jobs/flaky succeeds once set
	entered chan struct{} // /jobs/block signals each call here
	release chan struct{} // /jobs/block returns once this is closed
	blocked atomic.Bool   // /jobs/block blocked once already
	once    sync.Once     // closes release
}

func newJobs(t *testing.T) *jobs {
	t.Helper()
	j := &jobs{calls: map[string]int{}, entered: make(chan struct{}, 16), release: make(chan struct{})}
	mux := http.NewServeMux()
	handle := func(name string, fn func(ctx context.Context, req httpstep.Request) (any, error)) {
		path := "/jobs/" + name
		h, err := httpstep.Handler(func(ctx context.Context, req httpstep.Request) (any, error) {
			j.mu.Lock()
			j.calls[path]++
			j.mu.Unlock()
			return fn(ctx, req)
		}, httpstep.WithSecret([]byte(secret)))
		if err != nil {
			t.Fatal(err)
		}
		mux.Handle(path, h)
	}
	handle("validate-order", func(_ context.Context, req httpstep.Request) (any, error) {
		var order struct {
			OrderID string  `json:"orderId"`
			Amount  float64 `json:"amount"`
		}
		if err := json.Unmarshal(req.Context, &order); err != nil || order.OrderID == "" {
			return nil, httpstep.Permanent(fmt.Errorf("bad order context %s", req.Context))
		}
		return map[string]any{"valid": true, "orderId": order.OrderID, "amount": order.Amount}, nil
	})
	handle("charge-payment", func(_ context.Context, req httpstep.Request) (any, error) {
		if _, ok := req.PreviousSteps["validate-order"]; !ok {
			return nil, httpstep.Permanent(errors.New("the order was not validated"))
		}
		return map[string]any{"chargeId": "ch_1"}, nil
	})
	handle("ship-order", func(context.Context, httpstep.Request) (any, error) {
		return map[string]any{"trackingNumber": "TRK-1"}, nil
	})
	handle("send-confirmation", func(_ context.Context, req httpstep.Request) (any, error) {
		var saw []string
		for id := range req.PreviousSteps {
			saw = append(saw, id)
		}
		slices.Sort(saw)
		return map[string]any{"sent": true, "saw": saw}, nil
	})
	handle("fail", func(context.Context, httpstep.Request) (any, error) {
		return nil, httpstep.Permanent(errors.New("card declined"))
	})
	handle("flaky", func(context.Context, httpstep.Request) (any, error) {
		if !j.fixed.Load() {
			return nil, httpstep.Permanent(errors.New("payment service down"))
		}
		return map[string]any{"chargeId": "ch_2"}, nil
	})
	handle("slow", func(ctx context.Context, _ httpstep.Request) (any, error) {
		select {
		case <-time.After(1500 * time.Millisecond):
			return map[string]any{"chargeId": "ch_4"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	handle("block", func(ctx context.Context, _ httpstep.Request) (any, error) {
		if j.blocked.CompareAndSwap(false, true) {
			j.entered <- struct{}{}
			select {
			case <-j.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return map[string]any{"chargeId": "ch_3"}, nil
	})
	mux.HandleFunc("POST /hooks/{event}", func(w http.ResponseWriter, r *http.Request) {
		if err := httpstep.Verify(r, []byte(secret)); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var st dagflow.Status
		if err := json.NewDecoder(r.Body).Decode(&st); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		j.mu.Lock()
		j.calls[r.URL.Path]++
		j.hooks = append(j.hooks, r.PathValue("event")+" "+st.ID+" "+string(st.State))
		j.mu.Unlock()
		if r.PathValue("event") == "broken" {
			http.Error(w, "no", http.StatusBadRequest)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		j.unblock()
		srv.Close()
	})
	j.url = srv.URL
	return j
}

func (j *jobs) count(name string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.calls["/jobs/"+name]
}

func (j *jobs) unblock() { j.once.Do(func() { close(j.release) }) }

// waitBlocked waits for /jobs/block to be called.
func (j *jobs) waitBlocked(t *testing.T) {
	t.Helper()
	select {
	case <-j.entered:
	case <-time.After(20 * time.Second):
		t.Fatal("the blocking job handler was not called")
	}
}

// orderChain is the hosted docs' order chain: validate-order ->
// charge-payment -> ship-order -> send-confirmation, each step at
// base+"/jobs/"+its id, except the handlers named in swap.
func orderChain(id, base string, swap map[string]string) string {
	url := func(step string) string {
		if h, ok := swap[step]; ok {
			step = h
		}
		return base + "/jobs/" + step
	}
	return fmt.Sprintf(`{
  "id": %q,
  "context": {"orderId": "order_123", "amount": 49.9},
  "steps": [
    {"id": "validate-order", "url": %q},
    {"id": "charge-payment", "url": %q, "dependsOn": ["validate-order"],
     "retries": {"maxAttempts": 3, "backoff": "exponential", "initialInterval": 0.2, "maxInterval": 1}},
    {"id": "ship-order", "url": %q, "dependsOn": ["charge-payment"]},
    {"id": "send-confirmation", "url": %q, "dependsOn": ["ship-order"]}
  ]
}
`, id, url("validate-order"), url("charge-payment"), url("ship-order"), url("send-confirmation"))
}

// writeFile writes a file in dir and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

type result struct {
	code           int
	stdout, stderr string
	took           time.Duration
}

// env is the environment of the commands: the test's, with DAGFLOW_SECRET
// set and the other DAGFLOW_ variables unset, plus extra.
func env(extra ...string) []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DAGFLOW_") && !strings.HasPrefix(kv, "GORACE=") {
			e = append(e, kv)
		}
	}
	e = append(e, "DAGFLOW_SECRET="+secret)
	if raceEnabled {
		// A race report exits 66; skip the second the race runtime
		// otherwise sleeps at every exit.
		e = append(e, "GORACE=atexit_sleep_ms=0")
	}
	return append(e, extra...)
}

// newCommand returns an unstarted dagflow command in dir.
func newCommand(dir string, environ []string, args ...string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = environ
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	return cmd, &stdout, &stderr
}

// dagflowEnv runs dagflow with the environment environ and waits for it.
func dagflowEnv(t *testing.T, environ []string, args ...string) result {
	t.Helper()
	cmd, stdout, stderr := newCommand(t.TempDir(), environ, args...)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("dagflow %s: still running after 30s\nstderr:\n%s", strings.Join(args, " "), stderr)
	}
	return exitResult(t, err, stdout, stderr, time.Since(start))
}

func exitResult(t *testing.T, err error, stdout, stderr *bytes.Buffer, took time.Duration) result {
	t.Helper()
	r := result{stdout: stdout.String(), stderr: stderr.String(), took: took}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if st, ok := ee.Sys().(syscall.WaitStatus); ok && st.Signaled() {
			r.code = 128 + int(st.Signal())
		}
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// dagflowCmd runs dagflow with env() and waits for it.
func dagflowCmd(t *testing.T, args ...string) result {
	t.Helper()
	return dagflowEnv(t, env(), args...)
}

// want checks the exit code and that stderr holds each of msgs.
func (r result) want(t *testing.T, code int, msgs ...string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, m := range msgs {
		if !strings.Contains(r.stderr, m) {
			t.Errorf("stderr lacks %q:\n%s", m, r.stderr)
		}
	}
}

// status decodes the status printed on stdout.
func (r result) status(t *testing.T) *dagflow.Status {
	t.Helper()
	var st dagflow.Status
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&st); err != nil {
		t.Fatalf("stdout is not a status: %v\n%s", err, r.stdout)
	}
	if dec.More() {
		t.Fatalf("stdout has more than a status:\n%s", r.stdout)
	}
	return &st
}

func checkCompleted(t *testing.T, st *dagflow.Status, id string) {
	t.Helper()
	want := []string{"validate-order", "charge-payment", "ship-order", "send-confirmation"}
	if st.ID != id || st.State != dagflow.StateCompleted || !slices.Equal(st.CompletedSteps, want) {
		t.Fatalf("status %s %s, completed steps %v (error %q), want %s completed with %v", st.ID, st.State, st.CompletedSteps, st.Error, id, want)
	}
	for _, step := range want {
		if len(st.Results[step]) == 0 {
			t.Errorf("no result for %s", step)
		}
	}
	if got := compact(st.Results["send-confirmation"]); got != `{"saw":["charge-payment","ship-order","validate-order"],"sent":true}` {
		t.Errorf("send-confirmation result %s", got)
	}
	if got := compact(st.Results["validate-order"]); got != `{"amount":49.9,"orderId":"order_123","valid":true}` {
		t.Errorf("validate-order result %s", got)
	}
}

func compact(raw json.RawMessage) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

func TestRunOrderChain(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	file := writeFile(t, dir, "order.json", orderChain("order-1", j.url, nil))

	r := dagflowCmd(t, "run", "--db", db, file)
	r.want(t, 0)
	checkCompleted(t, r.status(t), "order-1")
	if r.stderr != "" {
		t.Errorf("stderr is not empty:\n%s", r.stderr)
	}
	if !strings.HasPrefix(r.stdout, "{\n  \"id\": \"order-1\",\n") {
		t.Errorf("stdout is not indented JSON:\n%s", r.stdout)
	}

	t.Run("status", func(t *testing.T) {
		r := dagflowCmd(t, "status", "order-1", "--db", db)
		r.want(t, 0)
		checkCompleted(t, r.status(t), "order-1")
	})
	t.Run("run again", func(t *testing.T) {
		// The same file is the same run: it is not run again.
		r := dagflowCmd(t, "run", "--db", db, file)
		r.want(t, 0, "already in the database")
		checkCompleted(t, r.status(t), "order-1")
		if n := j.count("validate-order"); n != 1 {
			t.Errorf("validate-order called %d times, want 1", n)
		}
	})
	t.Run("conflict", func(t *testing.T) {
		other := writeFile(t, t.TempDir(), "other.json", orderChain("order-1", j.url, map[string]string{"ship-order": "fail"}))
		r := dagflowCmd(t, "run", "--db", db, other)
		r.want(t, 2, "other.json", `id "order-1" exists`)
		if strings.Contains(r.stderr, "not creating it again") {
			t.Errorf("a note that the run exists, as if it were the same, before the conflict:\n%s", r.stderr)
		}
	})
	t.Run("read only", func(t *testing.T) {
		// status, list and graph open the file read-only: not a byte of it
		// changes.
		before, err := os.ReadFile(db)
		if err != nil {
			t.Fatal(err)
		}
		dagflowCmd(t, "status", "--db", db, "order-1").want(t, 0)
		dagflowCmd(t, "list", "--db", db).want(t, 0)
		dagflowCmd(t, "graph", "--db", db, "order-1").want(t, 0)
		if after, err := os.ReadFile(db); err != nil || !bytes.Equal(before, after) {
			t.Errorf("the database changed (%v)", err)
		}
		empty := writeFile(t, t.TempDir(), "empty.db", "")
		dagflowCmd(t, "list", "--db", empty).want(t, 3, "the file is empty")
		if fi, err := os.Stat(empty); err != nil || fi.Size() != 0 {
			t.Errorf("list made the empty file a database")
		}
	})
	t.Run("list", func(t *testing.T) {
		r := dagflowCmd(t, "list", "--db", db)
		r.want(t, 0)
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "ID ") ||
			!slices.Equal(strings.Fields(lines[1])[:4], []string{"order-1", "completed", "4/4", "0"}) {
			t.Errorf("list:\n%s", r.stdout)
		}
		r = dagflowCmd(t, "list", "--db", db, "--json", "--state", "completed")
		r.want(t, 0)
		var s dagflow.RunSummary
		if err := json.Unmarshal([]byte(r.stdout), &s); err != nil || s.ID != "order-1" || s.State != "completed" || s.Steps != 4 {
			t.Errorf("list --json: %v\n%s", err, r.stdout)
		}
		r = dagflowCmd(t, "list", "--db", db, "--json", "--state", "failed")
		r.want(t, 0)
		if r.stdout != "" {
			t.Errorf("list --state failed:\n%s", r.stdout)
		}
	})
	t.Run("graph", func(t *testing.T) {
		r := dagflowCmd(t, "graph", "order-1", "--db", db)
		r.want(t, 0)
		for _, s := range []string{
			"digraph \"order-1\" {\n",
			`"validate-order" [label="validate-order\ncompleted", fillcolor=palegreen];`,
			`"validate-order" -> "charge-payment";`,
			`"ship-order" -> "send-confirmation";`,
		} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("dot output lacks %q:\n%s", s, r.stdout)
			}
		}
		r = dagflowCmd(t, "graph", "--db", db, "--format", "mermaid", "order-1")
		r.want(t, 0)
		for _, s := range []string{
			"flowchart LR\n",
			`  s0["validate-order<br/>completed"]`,
			"  class s0 completed\n",
			"  s0 --> s1\n  s1 --> s2\n  s2 --> s3\n",
			"  classDef completed fill:palegreen",
		} {
			if !strings.Contains(r.stdout, s) {
				t.Errorf("mermaid output lacks %q:\n%s", s, r.stdout)
			}
		}
	})
}

func TestGraphFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := writeFile(t, dir, "fan.json", `{"id": "fan", "steps": [
		{"id": "a", "url": "https://jobs.example/a"},
		{"id": "b \"quoted\"", "url": "https://jobs.example/b", "dependsOn": ["a"], "parallel": true},
		{"id": "c", "url": "https://jobs.example/c", "dependsOn": ["a"], "parallel": true},
		{"id": "d", "url": "https://jobs.example/d", "dependsOn": ["b \"quoted\"", "c"]}]}`)
	r := dagflowCmd(t, "graph", file)
	r.want(t, 0)
	want := `digraph "fan" {
  rankdir=LR;
  node [shape=box, style="rounded,filled", fillcolor=white];
  "a";
  "b \"quoted\"";
  "c";
  "d";
  "a" -> "b \"quoted\"";
  "a" -> "c";
  "b \"quoted\"" -> "d";
  "c" -> "d";
}
`
	if r.stdout != want {
		t.Errorf("dot:\n%s\nwant:\n%s", r.stdout, want)
	}
	r = dagflowCmd(t, "graph", "--format=mermaid", file)
	r.want(t, 0)
	want = `%% workflow fan
flowchart LR
  s0["a"]
  s1["b #quot;quoted#quot;"]
  s2["c"]
  s3["d"]
  s0 --> s1
  s0 --> s2
  s1 --> s3
  s2 --> s3
`
	if r.stdout != want {
		t.Errorf("mermaid:\n%s\nwant:\n%s", r.stdout, want)
	}
	dagflowCmd(t, "graph", "--format", "png", file).want(t, 2, "--format")
	dagflowCmd(t, "graph", "--db", filepath.Join(dir, "none.db"), "nope.json").want(t, 2, "nope.json: no such file")

	// A cycle is drawn, to be seen, and named on stderr; other problems are
	// not drawn.
	cycle := writeFile(t, dir, "cycle.json", `{"id": "cy", "steps": [
		{"id": "a", "url": "https://x/a", "dependsOn": ["c"]},
		{"id": "b", "url": "https://x/b", "dependsOn": ["a"]},
		{"id": "c", "url": "https://x/c", "dependsOn": ["b"]}]}`)
	r = dagflowCmd(t, "graph", cycle)
	r.want(t, 0, "cycle.json: cycle: a -> b -> c -> a (drawn all the same; the workflow cannot run)")
	if !strings.Contains(r.stdout, `"c" -> "a";`) || !strings.Contains(r.stdout, `"b" -> "c";`) {
		t.Errorf("the cycle's drawing:\n%s", r.stdout)
	}
	unknown := writeFile(t, dir, "unknown.json", `{"id": "u", "steps": [{"id": "a", "url": "https://x/a", "dependsOn": ["zz"]}]}`)
	dagflowCmd(t, "graph", unknown).want(t, 2, `unknown step "zz"`)

	// Steps of other kinds say what they do.
	kinds := writeFile(t, dir, "kinds.json", `{"id": "k", "context": {"orderId": "o1", "images": ["a", "b"]}, "steps": [
		{"id": "resize", "url": "https://x/resize", "map": {"items": "context.images"}},
		{"id": "ship", "workflow": {"steps": [{"id": "pack", "url": "https://x/pack"}]}, "dependsOn": ["resize"]},
		{"id": "cool-off", "sleep": {"seconds": 60}, "dependsOn": ["ship"]},
		{"id": "approval", "waitForEvent": {"name": "order-approved", "key": "context.orderId"}, "dependsOn": ["cool-off"]}]}`)
	r = dagflowCmd(t, "graph", kinds)
	r.want(t, 0)
	for _, s := range []string{
		`"resize" [label="resize\n(map)"];`,
		`"ship" [label="ship\n(sub-workflow)"];`,
		`"cool-off" [label="cool-off\n(sleep)"];`,
		`"approval" [label="approval\n(wait for event order-approved)"];`,
		`"cool-off" -> "approval";`,
	} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("dot output lacks %q:\n%s", s, r.stdout)
		}
	}
	r = dagflowCmd(t, "graph", "--format", "mermaid", kinds)
	r.want(t, 0)
	if !strings.Contains(r.stdout, `  s3["approval<br/>(wait for event order-approved)"]`) {
		t.Errorf("mermaid output:\n%s", r.stdout)
	}
}

func TestRelativeURLs(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "order.json", orderChain("order-rel", "", nil))

	r := dagflowCmd(t, "run", "--db", filepath.Join(dir, "a.db"), "--base-url", j.url+"/", file)
	r.want(t, 0)
	checkCompleted(t, r.status(t), "order-rel")

	r = dagflowEnv(t, env("DAGFLOW_BASE_URL="+j.url, "DAGFLOW_DB="+filepath.Join(dir, "b.db")), "run", file)
	r.want(t, 0)
	checkCompleted(t, r.status(t), "order-rel")

	r = dagflowCmd(t, "run", "--db", filepath.Join(dir, "c.db"), file)
	r.want(t, 2, `order.json: steps[0].url: "/jobs/validate-order" is relative`, "--base-url")
	if strings.Count(r.stderr, "is relative") != 4 || strings.Contains(r.stderr, "WithHTTP") {
		t.Errorf("want the 4 relative URLs reported, in the command line's words:\n%s", r.stderr)
	}
	dagflowCmd(t, "run", "--db", filepath.Join(dir, "d.db"), "--base-url", "ftp://x", file).want(t, 2, "--base-url: ")
	dagflowEnv(t, env("DAGFLOW_BASE_URL=ftp://x"), "run", "--db", filepath.Join(dir, "e.db"), file).want(t, 2, "$DAGFLOW_BASE_URL: ")
}

func TestFailedRunThenRetry(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	file := writeFile(t, dir, "order.json", orderChain("order-2", j.url, map[string]string{"charge-payment": "flaky"}))

	r := dagflowCmd(t, "run", "--db", db, file)
	r.want(t, 1)
	st := r.status(t)
	if st.State != dagflow.StateFailed || !slices.Equal(st.FailedSteps, []string{"charge-payment"}) ||
		!slices.Equal(st.CompletedSteps, []string{"validate-order"}) {
		t.Fatalf("status %s, failed %v, completed %v", st.State, st.FailedSteps, st.CompletedSteps)
	}
	if !strings.Contains(st.Steps[1].Error, "payment service down") {
		t.Errorf("charge-payment error %q", st.Steps[1].Error)
	}
	dagflowCmd(t, "status", "--db", db, "order-2").want(t, 0)
	dagflowCmd(t, "cancel", "--db", db, "order-2").want(t, 2, `cannot cancel run "order-2": it is failed`)

	j.fixed.Store(true)
	r = dagflowCmd(t, "retry", "--db", db, "order-2")
	r.want(t, 0)
	st = r.status(t)
	if st.State != dagflow.StateCompleted || len(st.FailedSteps) != 0 || st.Generation != 1 {
		t.Fatalf("after retry: %s, failed %v, generation %d", st.State, st.FailedSteps, st.Generation)
	}
	if n := j.count("validate-order"); n != 1 {
		t.Errorf("validate-order called %d times, want 1 (retry keeps completed steps)", n)
	}
	r = dagflowCmd(t, "retry", "--db", db, "order-2")
	r.want(t, 2, `dagflow: cannot retry run "order-2": it is completed`)
	if strings.Contains(r.stderr, "dagflow: dagflow:") {
		t.Errorf("the prefix twice: %s", r.stderr)
	}
	dagflowCmd(t, "retry", "--db", db, "nope").want(t, 2, `no run with id "nope"`)
}

func TestFailingHandler(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "order.json", orderChain("order-3", j.url, map[string]string{"ship-order": "fail"}))
	r := dagflowCmd(t, "run", "--db", filepath.Join(dir, "flows.db"), file)
	r.want(t, 1)
	st := r.status(t)
	if st.State != dagflow.StateFailed || !slices.Equal(st.FailedSteps, []string{"ship-order"}) || st.Error == "" {
		t.Fatalf("status %s, failed %v, error %q", st.State, st.FailedSteps, st.Error)
	}
	if st.Steps[3].State != dagflow.StateSkipped {
		t.Errorf("send-confirmation is %s, want skipped", st.Steps[3].State)
	}
	if !strings.Contains(st.Steps[2].Error, "card declined") {
		t.Errorf("ship-order error %q", st.Steps[2].Error)
	}
	if strings.Contains(r.stderr, "level=") {
		t.Errorf("the engine logged below WARN without -v:\n%s", r.stderr)
	}

	// -v adds what failed; -v -v every run and attempt.
	for _, tt := range []struct {
		args      []string
		want, not []string
	}{
		{[]string{"-v"}, []string{`level=INFO msg="dagflow: attempt failed" run=order-4 step=ship-order attempt=1`,
			`level=INFO msg="dagflow: run ended" run=order-4 state=failed`}, []string{"level=DEBUG"}},
		{[]string{"-v", "-v"}, []string{`level=DEBUG msg="dagflow: run created" run=order-4 steps=4`,
			`level=DEBUG msg="dagflow: attempt completed" run=order-4 step=validate-order attempt=1`,
			"dagflow: attempt failed"}, nil},
	} {
		dir := t.TempDir()
		file := writeFile(t, dir, "order.json", orderChain("order-4", j.url, map[string]string{"ship-order": "fail"}))
		r := dagflowCmd(t, append(append([]string{"run", "--db", filepath.Join(dir, "flows.db")}, tt.args...), file)...)
		// The engine's attempt lines name the map item, -1 for a step
		// that is not a map.
		r.stderr = strings.ReplaceAll(r.stderr, " item=-1 ", " ")
		r.want(t, 1, tt.want...)
		for _, n := range tt.not {
			if strings.Contains(r.stderr, n) {
				t.Errorf("%v: stderr has %q:\n%s", tt.args, n, r.stderr)
			}
		}
	}
}

// Without the secret, the handlers refuse the requests (401), so the engine
// must be signing them with DAGFLOW_SECRET in the other tests.
func TestUnsigned(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	file := writeFile(t, dir, "order.json", orderChain("order-4", j.url, nil))
	r := dagflowEnv(t, env("DAGFLOW_SECRET="), "run", "--db", filepath.Join(dir, "flows.db"), file)
	r.want(t, 1)
	if st := r.status(t); !strings.Contains(st.Steps[0].Error, "401") {
		t.Errorf("validate-order error %q, want a 401", st.Steps[0].Error)
	}
}

// emptyDB makes a dagflow database with no run at path.
func emptyDB(t *testing.T, path string) {
	t.Helper()
	s, err := bolt.Open(path, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	malformed := writeFile(t, dir, "malformed.json", "{\n  \"id\": \"x\",\n  \"steps\": [\n    {\"id\": \"a\" \"url\": \"https://x/a\"}\n  ]\n}\n")
	invalid := writeFile(t, dir, "invalid.json", `{"id": "x", "steps": [
		{"id": "a", "url": "https://x/a", "dependsOn": ["c"]},
		{"id": "b", "url": "https://x/b", "dependsOn": ["a"], "retries": {"maxAttempts": -1}},
		{"id": "c", "url": "https://x/c", "dependsOn": ["b"], "timout": 3}]}`)
	handlers := writeFile(t, dir, "handlers.json", `{"id": "h", "steps": [
		{"id": "a", "url": "https://x/a"}, {"id": "b", "handler": "charge", "dependsOn": ["a"]}]}`)
	valid := writeFile(t, dir, "valid.json", orderChain("v", "", nil))
	nested := writeFile(t, dir, "nested.json", `{"id": "n", "steps": [{"id": "ship", "workflow": {"steps": [
		{"id": "label", "url": "https://x/label"}, {"id": "pack", "handler": "pack"}]}}]}`)

	tests := []struct {
		name string
		args []string
		msgs []string
	}{
		{"malformed", []string{"run", "--db", db, malformed},
			[]string{"malformed.json: invalid JSON at line 4, column 16"}},
		{"invalid", []string{"run", "--db", db, invalid}, []string{
			"invalid.json: steps[2].timout: unknown field (did you mean \"timeout\"?) (line 4, column 57)\n",
			"invalid.json: steps[1].retries.maxAttempts: must be at least 1, got -1\n",
			"invalid.json: cycle: a -> b -> c -> a\n",
		}},
		{"handler steps", []string{"run", "--db", filepath.Join(dir, "h.db"), handlers},
			[]string{`handlers.json: steps[1].handler: no handler named "charge"`, "the command line runs \"url\" steps"}},
		{"no file", []string{"run", "--db", db, filepath.Join(dir, "nope.json")}, []string{"nope.json: no such file"}},
		{"no argument", []string{"run", "--db", db}, []string{"run: missing argument"}},
		{"two arguments", []string{"run", valid, valid}, []string{"unexpected argument"}},
		{"unknown flag", []string{"run", "--nope", valid}, []string{"flag provided but not defined: -nope"}},
		{"unknown command", []string{"walk"}, []string{`unknown command "walk"`}},
		{"no command", nil, []string{"Usage:"}},
		{"validate malformed", []string{"validate", malformed}, []string{"malformed.json: invalid JSON at line 4, column 16"}},
		{"validate invalid", []string{"validate", invalid}, []string{"invalid.json: ", "cycle: "}},
		{"validate handlers", []string{"validate", handlers}, []string{`handlers.json: steps[1].handler`}},
		{"validate handlers in a sub-workflow", []string{"validate", nested}, []string{`nested.json: steps[0].workflow.steps[1].handler: no handler named "pack"`}},
		{"status no db", []string{"status", "--db", filepath.Join(dir, "none.db"), "x"}, []string{"none.db: no such database"}},
		{"list bad state", []string{"list", "--db", db, "--state", "done"}, []string{`--state "done"`}},
		{"empty --db", []string{"list", "--db="}, []string{"--db: give a file name"}},
		{"resume no db", []string{"resume", "--db", filepath.Join(dir, "none.db")}, []string{"none.db: no such database"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := dagflowCmd(t, tc.args...)
			r.want(t, 2, tc.msgs...)
			if r.stdout != "" {
				t.Errorf("stdout is not empty:\n%s", r.stdout)
			}
		})
	}

	t.Run("no database left", func(t *testing.T) {
		// Bad input that only Create finds: the file the command made is
		// removed; one that was there stays.
		fresh := filepath.Join(t.TempDir(), "fresh.db")
		dagflowCmd(t, "run", "--db", fresh, handlers).want(t, 2, "steps[1].handler")
		if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("run on bad input left a database behind: %v", err)
		}
		emptyDB(t, fresh)
		dagflowCmd(t, "run", "--db", fresh, handlers).want(t, 2, "steps[1].handler")
		if _, err := os.Stat(fresh); err != nil {
			t.Errorf("a database that was there was removed: %v", err)
		}
	})
	t.Run("validate ok", func(t *testing.T) {
		r := dagflowCmd(t, "validate", valid)
		r.want(t, 0)
		if r.stdout != "ok\n" {
			t.Errorf("stdout %q", r.stdout)
		}
		dagflowCmd(t, "validate", "--allow-handlers", handlers).want(t, 0)
	})
	t.Run("status unknown id", func(t *testing.T) {
		dagflowCmd(t, "list", "--db", filepath.Join(dir, "none.db")).want(t, 2)
		emptyDB(t, db)
		dagflowCmd(t, "status", "--db", db, "nope").want(t, 2, `no run with id "nope"`)
	})
	t.Run("help", func(t *testing.T) {
		for _, args := range [][]string{{"help"}, {"--help"}, {"help", "run"}, {"run", "--help"}, {"list", "-h"}, {"console", "--help"},
			{"delete", "--help"}, {"help", "prune"}, {"send-event", "-h"}, {"schedule", "--help"}, {"help", "schedule"},
			{"help", "schedule", "add"}, {"schedule", "list", "--help"}, {"schedule", "remove", "-h"}} {
			r := dagflowCmd(t, args...)
			r.want(t, 0)
			if !strings.Contains(r.stdout, "Usage:") || r.stderr != "" {
				t.Errorf("%v: stdout:\n%s\nstderr:\n%s", args, r.stdout, r.stderr)
			}
		}
		r := dagflowCmd(t, "help")
		if !strings.Contains(r.stdout, "Exit codes:") {
			t.Errorf("help does not document the exit codes")
		}
		for _, name := range []string{"delete", "prune", "send-event", "schedule"} {
			if !strings.Contains(r.stdout, "\n  "+name+" ") {
				t.Errorf("help does not list %s", name)
			}
		}
		if r := dagflowCmd(t, "help", "schedule", "add"); !strings.HasPrefix(r.stdout, "Usage: dagflow schedule add ") {
			t.Errorf("help schedule add:\n%s", r.stdout)
		}
		// Flags as the usage lines write them: --db, and -v.
		if r := dagflowCmd(t, "run", "--help"); !strings.Contains(r.stdout, "\n  --db FILE\n") ||
			!strings.Contains(r.stdout, "\n  --base-url URL\n") || !strings.Contains(r.stdout, "\n  -v\t") {
			t.Errorf("run --help lists its flags as:\n%s", r.stdout)
		}
	})
}

// startBlocked starts 'dagflow run' on the order chain whose charge-payment
// blocks, and waits until it does.
func startBlocked(t *testing.T, j *jobs, dir, db, id string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
	t.Helper()
	file := writeFile(t, dir, id+".json", orderChain(id, j.url, map[string]string{"charge-payment": "block"}))
	cmd, stdout, stderr := newCommand(dir, env(), "run", "--db", db, file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	j.waitBlocked(t)
	return cmd, stdout, stderr
}

func TestDatabaseInUse(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	first, stdout, stderr := startBlocked(t, j, dir, db, "order-5")

	other := writeFile(t, dir, "other.json", orderChain("order-6", j.url, nil))
	r := dagflowCmd(t, "run", "--db", db, other)
	r.want(t, 3, "flows.db: the database is in use by another process")
	// About 1s (the engine's open timeout) plus the start of a process,
	// which a loaded machine can stretch: the point is that it does not
	// hang.
	t.Logf("the second run failed after %v", r.took)
	if r.took > 5*time.Second {
		t.Errorf("the second run took %v to fail", r.took)
	}
	dagflowCmd(t, "status", "--db", db, "order-5").want(t, 3, "in use")
	t.Run("other commands", func(t *testing.T) {
		for _, args := range [][]string{
			{"delete", "order-5"},
			{"prune", "--older-than", "1h"},
			{"send-event", "order-approved", "order_123"},
			{"schedule", "add", "nightly", "0 2 * * *", other},
			{"schedule", "list"},
			{"schedule", "remove", "nightly"},
		} {
			t.Run(args[0], func(t *testing.T) {
				t.Parallel()
				r := dagflowCmd(t, append(args, "--db", db)...)
				r.want(t, 3, "flows.db: the database is in use by another process")
				if r.took > 5*time.Second {
					t.Errorf("%q took %v to fail", args, r.took)
				}
			})
		}
	})
	if n := j.count("validate-order"); n != 1 {
		t.Errorf("validate-order called %d times", n)
	}

	j.unblock()
	res := exitResult(t, first.Wait(), stdout, stderr, 0)
	res.want(t, 0)
	checkCompleted(t, res.status(t), "order-5")
}

// TestCrashResume kills 'dagflow run' while its second step runs; 'dagflow
// resume' then finishes the run without running the first step again.
func TestCrashResume(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	cmd, _, _ := startBlocked(t, j, dir, db, "order-7")
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	j.unblock()

	// Looking at the run does not resume it.
	r := dagflowCmd(t, "status", "--db", db, "order-7")
	r.want(t, 0)
	if st := r.status(t); st.State != dagflow.StateRunning || st.Steps[1].State != dagflow.StateRunning {
		t.Errorf("after the crash: run %s, charge-payment %s", st.State, st.Steps[1].State)
	}
	r = dagflowCmd(t, "graph", "--db", db, "order-7")
	r.want(t, 0)
	if !strings.Contains(r.stdout, `"charge-payment" [label="charge-payment\nrunning", fillcolor=lightblue];`) {
		t.Errorf("graph of the crashed run:\n%s", r.stdout)
	}
	if n := j.count("block"); n != 1 {
		t.Fatalf("charge-payment called %d times before resume, want 1", n)
	}

	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	checkCompleted(t, out[0], "order-7")
	if n := j.count("validate-order"); n != 1 {
		t.Errorf("validate-order called %d times, want 1: a completed step ran again", n)
	}
	if n := j.count("block"); n != 2 {
		t.Errorf("charge-payment called %d times, want 2 (the crashed attempt and one more)", n)
	}
	if s := out[0].Steps[1]; s.Attempts != 2 || s.Interruptions != 1 {
		t.Errorf("charge-payment: %d attempts, %d interruptions; want 2 and 1", s.Attempts, s.Interruptions)
	}

	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("a second resume printed:\n%s", r.stdout)
	}
}

// TestInterrupt: SIGINT closes the engine without cancelling the run, which
// resume then finishes.
func TestInterrupt(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	cmd, stdout, stderr := startBlocked(t, j, dir, db, "order-8")
	start := time.Now()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	r := exitResult(t, cmd.Wait(), stdout, stderr, time.Since(start))
	r.want(t, 130, "interrupt", `run "order-8" is left unfinished`, "dagflow resume")
	if r.stdout != "" {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if r.took > 5*time.Second {
		t.Errorf("took %v to stop", r.took)
	}
	st := dagflowCmd(t, "status", "--db", db, "order-8").status(t)
	if st.State != dagflow.StateRunning {
		t.Fatalf("after SIGINT the run is %s", st.State)
	}
	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	checkCompleted(t, out[0], "order-8")
	if n := j.count("validate-order"); n != 1 {
		t.Errorf("validate-order called %d times, want 1", n)
	}
}

// TestConsole serves the console on a database with a run left unfinished by
// a crash, which the console's engine resumes; SIGTERM stops it cleanly even
// with an event stream open, and leaves the run for resume.
func TestConsole(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")

	dagflowCmd(t, "console", "--db", db, "--addr", "0.0.0.0:0", "--actions").want(t, 2, "needs --token")
	dagflowCmd(t, "console", "--db", db, "--addr", "nope").want(t, 2, "--addr")

	crashed, _, _ := startBlocked(t, j, dir, db, "order-c")
	crashed.Process.Kill()
	crashed.Wait()
	j.blocked.Store(false) // block again, in the console's engine

	cmd := exec.Command(bin, "console", "--db", db, "--addr", "127.0.0.1:0", "--actions")
	cmd.Env = env("DAGFLOW_CONSOLE_TOKEN=t0ken")
	cmd.Dir = dir
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	lines := bufio.NewScanner(stderr)
	var url string
	if lines.Scan() {
		line := lines.Text()
		if i := strings.Index(line, "http://"); i >= 0 {
			url = strings.Fields(line[i:])[0]
		}
	}
	if url == "" {
		t.Fatalf("no address on stderr: %v", lines.Err())
	}
	j.waitBlocked(t) // the console's engine resumed the run

	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %s\n%s", path, resp.Status, b)
		}
		return string(b)
	}
	if body := get(""); !strings.Contains(body, "order-c") {
		t.Errorf("the run list lacks order-c:\n%s", body)
	}
	if body := get("runs/order-c/status"); !strings.Contains(body, `"state":"running"`) {
		t.Errorf("status: %s", body)
	}
	stream, err := http.Get(url + "runs/order-c/events")
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Body.Close()
	if _, err := bufio.NewReader(stream.Body).ReadString('\n'); err != nil {
		t.Fatalf("reading the event stream: %v", err)
	}

	// Another process cannot open the database the console holds.
	dagflowCmd(t, "list", "--db", db).want(t, 3, "in use")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(stderr)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("console exited with %v:\n%s", err, rest)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the console took %v to stop", took)
	}
	if !strings.Contains(string(rest), "console stopped") {
		t.Errorf("stderr after SIGTERM:\n%s", rest)
	}

	r := dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	if n := j.count("validate-order"); n != 1 {
		t.Errorf("validate-order called %d times, want 1", n)
	}
}

// TestResumeGoHandlers: a run left unfinished with Go handler steps still to
// run cannot finish from the command line; resume says so instead of waiting
// for ever.
func TestResumeGoHandlers(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "flows.db")
	entered := make(chan struct{})
	eng, err := dagflow.Open(dagflow.WithPath(db),
		dagflow.WithHandler("charge", func(ctx context.Context, _ dagflow.Input) (any, error) {
			close(entered)
			<-ctx.Done()
			return nil, ctx.Err()
		}))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = eng.Create(ctx, dagflow.Workflow{ID: "go-1", Steps: []dagflow.Step{
		{ID: "charge", Handler: "charge", Retries: &dagflow.RetryConfig{MaxAttempts: 3}}}})
	if err != nil {
		eng.Close()
		t.Fatal(err)
	}
	<-entered
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	r := dagflowCmd(t, "resume", "--db", db)
	r.want(t, 1, `run "go-1" cannot finish here`, `["charge"]`)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 || out[0].State != dagflow.StateRunning {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
}

// TestCancelThenRetry cancels a run a crash left unfinished, then retries it.
func TestCancelThenRetry(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	crashed, _, _ := startBlocked(t, j, dir, db, "order-9")
	crashed.Process.Kill()
	crashed.Wait()
	// Opening the database resumes the run before cancel can cancel it
	// (the engine has no way to open without resuming): let the resumed
	// attempt block, or the run could complete first.
	j.blocked.Store(false)

	r := dagflowCmd(t, "cancel", "--db", db, "order-9")
	r.want(t, 1)
	st := r.status(t)
	if st.State != dagflow.StateCancelled || !slices.Equal(st.CompletedSteps, []string{"validate-order"}) {
		t.Fatalf("after cancel: %s, completed %v", st.State, st.CompletedSteps)
	}
	dagflowCmd(t, "cancel", "--db", db, "order-9").want(t, 2, `cannot cancel run "order-9": it is cancelled`)
	dagflowCmd(t, "cancel", "--db", db, "nope").want(t, 2, `no run with id "nope"`)

	j.unblock()
	r = dagflowCmd(t, "retry", "--db", db, "order-9")
	r.want(t, 0)
	checkCompleted(t, r.status(t), "order-9")
	if n := j.count("validate-order"); n != 1 {
		t.Errorf("validate-order called %d times, want 1", n)
	}
}

// TestWebhooks: run waits for the webhook of the run's end to be delivered
// before it exits, and says when it could not be.
func TestWebhooks(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	hooks := `"onComplete": "/hooks/done", "onError": "/hooks/failed",`
	ok := writeFile(t, dir, "ok.json", strings.Replace(orderChain("order-h1", "", nil), "{", "{"+hooks, 1))
	r := dagflowCmd(t, "run", "--db", db, "--base-url", j.url, ok)
	r.want(t, 0)
	failing := writeFile(t, dir, "fail.json", strings.Replace(orderChain("order-h2", "", map[string]string{"ship-order": "fail"}), "{", "{"+hooks, 1))
	r = dagflowCmd(t, "run", "--db", db, "--base-url", j.url, failing)
	r.want(t, 1)
	j.mu.Lock()
	got := slices.Clone(j.hooks)
	j.mu.Unlock()
	if want := []string{"done order-h1 completed", "failed order-h2 failed"}; !slices.Equal(got, want) {
		t.Errorf("webhooks received %q, want %q", got, want)
	}

	broken := writeFile(t, dir, "broken.json", strings.Replace(orderChain("order-h3", "", nil), "{", `{"onComplete": "/hooks/broken",`, 1))
	r = dagflowCmd(t, "run", "--db", db, "--base-url", j.url, broken)
	// A 400 is a reply another try cannot mend: the engine gives up at once and says so.
	r.want(t, 0, `run "order-h3": gave up on the complete webhook to /hooks/broken after 1 attempts`, "400 Bad Request")
	checkCompleted(t, r.status(t), "order-h3")
}

// TestResumeSendsWebhooks: a webhook that could not be delivered when its
// run ended stays in the database, and 'dagflow resume' sends it, with no
// run left to resume, and waits for it.
func TestResumeSendsWebhooks(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	// A receiver that is not listening yet: an address free a moment ago.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	hook := fmt.Sprintf(`{"onComplete": "http://%s/hooks/later",`, addr)
	file := writeFile(t, dir, "order.json", strings.Replace(orderChain("order-h4", j.url, nil), "{", hook, 1))
	r := dagflowCmd(t, "run", "--db", db, file)
	r.want(t, 0, `the complete webhook to http://`+addr+`/hooks/later is not delivered yet`, "dagflow resume")

	var mu sync.Mutex
	var got []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /hooks/later", func(w http.ResponseWriter, r *http.Request) {
		var st dagflow.Status
		err := httpstep.Verify(r, []byte(secret))
		if err == nil {
			err = json.NewDecoder(r.Body).Decode(&st)
		}
		mu.Lock()
		got = append(got, fmt.Sprintf("%s %s %v", st.ID, st.State, err))
		mu.Unlock()
	})
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the address was taken meanwhile: %v", err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	if strings.TrimSpace(r.stdout) != "[]" || strings.Contains(r.stderr, "not delivered") {
		t.Errorf("resume printed %s\nstderr:\n%s", r.stdout, r.stderr)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"order-h4 completed <nil>"}; !slices.Equal(got, want) {
		t.Errorf("the receiver got %q, want %q", got, want)
	}
}

// TestOtherRunsFinish: a command resumes every unfinished run of the file
// as it opens it; when its own run has ended, it lets the attempts of the
// others that it started finish, rather than cut them short and have the
// next command send them to the job handlers again.
func TestOtherRunsFinish(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	slowRun := writeFile(t, dir, "slow.json", orderChain("order-s1", j.url, map[string]string{"charge-payment": "slow"}))
	cmd, stdout, stderr := newCommand(dir, env(), "run", "--db", db, slowRun)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); j.count("slow") == 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the slow step did not start")
		}
	}
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	exitResult(t, cmd.Wait(), stdout, stderr, 0).want(t, 130)

	// Another run: the command takes up order-s1's slow step again, and
	// waits for it once its own run has ended.
	quick := writeFile(t, dir, "quick.json", orderChain("order-s2", j.url, nil))
	r := dagflowCmd(t, "run", "--db", db, quick)
	r.want(t, 0, "waiting for the attempts of other runs under way to finish")
	checkCompleted(t, r.status(t), "order-s2")
	if n := j.count("slow"); n != 2 {
		t.Errorf("the slow step was sent %d times, want 2 (cut by the interrupt, then finished)", n)
	}
	st := dagflowCmd(t, "status", "--db", db, "order-s1").status(t)
	if st.Steps[1].State != dagflow.StateCompleted || st.Steps[2].State != dagflow.StatePending {
		t.Errorf("order-s1: charge-payment %s, ship-order %s; want completed, then pending (not started)",
			st.Steps[1].State, st.Steps[2].State)
	}
	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	if n := j.count("slow"); n != 2 {
		t.Errorf("resume sent the slow step again (%d times in all)", n)
	}
}

// TestCrashDefaultAttempts: a step with the default single attempt whose
// process is killed mid-attempt is not failed by the crash: resume runs it
// again as attempt 2, and the status counts the interruption.
func TestCrashDefaultAttempts(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	chain := orderChain("order-11", j.url, map[string]string{"charge-payment": "block"})
	retries := `,
     "retries": {"maxAttempts": 3, "backoff": "exponential", "initialInterval": 0.2, "maxInterval": 1}`
	if !strings.Contains(chain, retries) {
		t.Fatal("orderChain changed: update the retries this test removes")
	}
	file := writeFile(t, dir, "order.json", strings.Replace(chain, retries, "", 1))
	cmd, _, _ := newCommand(dir, env(), "run", "--db", db, file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j.waitBlocked(t)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	j.unblock()

	st := dagflowCmd(t, "status", "--db", db, "order-11").status(t)
	if s := st.Steps[1]; st.State != dagflow.StateRunning || s.State != dagflow.StateRunning || s.Attempts != 1 || s.Interruptions != 0 {
		t.Errorf("after the crash: run %s, charge-payment %s with %d attempts, %d interruptions", st.State, s.State, s.Attempts, s.Interruptions)
	}

	r := dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	checkCompleted(t, out[0], "order-11")
	if s := out[0].Steps[1]; s.State != dagflow.StateCompleted || s.Attempts != 2 || s.Interruptions != 1 {
		t.Errorf("charge-payment: %s, %d attempts, %d interruptions; want completed, 2 and 1", s.State, s.Attempts, s.Interruptions)
	}
	if n := j.count("block"); n != 2 {
		t.Errorf("charge-payment called %d times, want 2 (the crashed attempt, then attempt 2)", n)
	}
}

// TestInterruptDefaultAttempts: Engine.Close does not count an attempt
// that fails because of the shutdown, and 'dagflow run' relies on that:
// SIGINT cancels nothing, resume finishes the run. A step with the default
// single attempt runs again on resume, rather than fail as "interrupted"
// (as it did when the attempt cut short by Close was counted).
func TestInterruptDefaultAttempts(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	chain := strings.Replace(orderChain("order-10", j.url, map[string]string{"charge-payment": "block"}),
		`"maxAttempts": 3`, `"maxAttempts": 1`, 1)
	file := writeFile(t, dir, "order.json", chain)
	cmd, stdout, stderr := newCommand(dir, env(), "run", "--db", db, file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j.waitBlocked(t)
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	exitResult(t, cmd.Wait(), stdout, stderr, 0).want(t, 130)

	r := dagflowCmd(t, "resume", "--db", db)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	if st := out[0]; st.State != dagflow.StateCompleted {
		t.Errorf("after SIGINT (Engine.Close) and resume, the run is %s: %s", st.State, st.Error)
	}
	// Engine.Close hands the attempt it cut short back uncounted: it runs
	// again as the same attempt, and is not an interruption (a crash is:
	// TestCrashDefaultAttempts).
	if s := out[0].Steps[1]; s.Attempts != 1 || s.Interruptions != 0 {
		t.Errorf("charge-payment after SIGINT and resume: %d attempts, %d interruptions; want 1 and 0", s.Attempts, s.Interruptions)
	}
	if n := j.count("block"); n != 2 {
		t.Errorf("charge-payment called %d times, want 2 (the interrupted attempt, then again)", n)
	}
}
