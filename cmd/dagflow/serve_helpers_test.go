package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

// serveProc is a 'dagflow serve' process that a test started.
type serveProc struct {
	url   string // http://127.0.0.1:PORT, without a trailing slash
	token string // sent with every call, when set
	cmd   *exec.Cmd

	mu     sync.Mutex
	stderr strings.Builder
	exited chan struct{} // closed once the process has exited
	err    error         // cmd.Wait's, once exited
}

// startServe starts 'dagflow serve --addr 127.0.0.1:0' with args in the
// environment environ, and waits until it listens. The test's cleanup
// stops it (SIGTERM, then SIGKILL) if it still runs.
func startServe(t *testing.T, environ []string, args ...string) *serveProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = environ
	cmd.Dir = t.TempDir()
	pipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, exited: make(chan struct{})}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if _, rest, ok := strings.Cut(line, "serving on http://"); ok {
				select {
				case addr <- strings.TrimSuffix(strings.Fields(rest)[0], "/"):
				default:
				}
			}
		}
		io.Copy(io.Discard, pipe)
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
			return
		default:
		}
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-p.exited
		}
	})
	select {
	case a := <-addr:
		p.url = "http://" + a
	case <-p.exited:
		t.Fatalf("dagflow serve exited at once (%v):\n%s", p.err, p.errors())
	case <-time.After(30 * time.Second):
		t.Fatalf("dagflow serve did not listen within 30s:\n%s", p.errors())
	}
	return p
}

// errors returns what the process wrote on stderr so far.
func (p *serveProc) errors() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends SIGTERM and returns the exit code and how long the process
// took to exit.
func (p *serveProc) stop(t *testing.T) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("dagflow serve still running 30s after SIGTERM:\n%s", p.errors())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0, time.Since(start)
	case errors.As(p.err, &ee):
		return ee.ExitCode(), time.Since(start)
	}
	t.Fatal(p.err)
	return 0, 0
}

// reply is an answer of the API.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// apiClient has no timeout of its own: calls that wait say how long.
var apiClient = &http.Client{Timeout: 2 * time.Minute}

// call makes an API call with body (a JSON body, sent as application/json,
// when not empty) and the token. headers are name, value pairs set after
// those; an empty value removes the header.
func (p *serveProc) call(t *testing.T, method, path, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return p.do(t, req)
}

func (p *serveProc) do(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := apiClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v\nserver stderr:\n%s", req.Method, req.URL, err, p.errors())
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

// want checks the status of r.
func (r reply) want(t *testing.T, status int) reply {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d:\n%s", r.status, status, r.body)
	}
	if len(r.body) > 0 && r.header.Get("Content-Type") != "application/json" {
		t.Errorf("Content-Type %q, want application/json", r.header.Get("Content-Type"))
	}
	return r
}

// decode decodes the body of r into v, refusing unknown fields: the API's
// JSON is the Go types'.
func (r reply) decode(t *testing.T, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decoding %T: %v\n%s", v, err, r.body)
	}
}

// runStatus decodes a status.
func (r reply) runStatus(t *testing.T) *dagflow.Status {
	t.Helper()
	var st dagflow.Status
	r.decode(t, &st)
	return &st
}

// errorBody is the body of an error.
type errorBody struct {
	Error    string   `json:"error"`
	Problems []string `json:"problems,omitempty"`
}

// apiErr decodes an error body, checking it says something.
func (r reply) apiErr(t *testing.T) errorBody {
	t.Helper()
	var e errorBody
	r.decode(t, &e)
	if e.Error == "" {
		t.Errorf("an error without a message: %s", r.body)
	}
	return e
}

// waitState polls run id until cond holds for its status.
func (p *serveProc) waitState(t *testing.T, id string, cond func(*dagflow.Status) bool) *dagflow.Status {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		st := p.call(t, "GET", "/v1/workflows/"+url.PathEscape(id), "").want(t, 200).runStatus(t)
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: still %s after 30s: %+v", id, st.State, st.Steps)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
