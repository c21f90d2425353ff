package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

// lockedBuffer is a strings.Builder safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeInProcess runs serve inside the test process, where TestMain's
// goleak check sees any goroutine it leaves behind, with short server
// timeouts: a client that sends its headers slowly is cut off, and the
// shutdown ends a call waiting for a run. Not parallel: it sets
// serveTimeouts.
func TestServeInProcess(t *testing.T) {
	old := serveTimeouts
	serveTimeouts.readHeader, serveTimeouts.read, serveTimeouts.idle = 300*time.Millisecond, time.Second, time.Second
	t.Cleanup(func() { serveTimeouts = old })

	var stderr lockedBuffer
	c := &cli{stdout: &stderr, stderr: &stderr, getenv: func(string) string { return "" }, signal: new(atomic.Value)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	exited := make(chan int, 1)
	go func() {
		exited <- c.main(ctx, []string{"serve", "--db", filepath.Join(t.TempDir(), "flows.db"), "--addr", "127.0.0.1:0"})
	}()
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; time.Sleep(10 * time.Millisecond) {
		if _, rest, ok := strings.Cut(stderr.String(), "serving on http://"); ok {
			addr = strings.TrimSuffix(strings.Fields(rest)[0], "/")
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen:\n%s", stderr.String())
		}
	}
	p := &serveProc{url: "http://" + addr}

	t.Run("slow client", func(t *testing.T) {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("GET /v1/workflows HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		line, _ := bufio.NewReader(conn).ReadString('\n')
		if took := time.Since(start); took > 3*time.Second || strings.Contains(line, "200") {
			t.Errorf("a client that never ends its headers got %q after %v", line, took)
		}
	})

	// A run that sleeps for an hour, and a call waiting for its end.
	p.call(t, "POST", "/v1/workflows", `{"id": "nap", "steps": [{"id": "nap", "sleep": {"seconds": 3600}}]}`).want(t, 201)
	waited := make(chan *dagflow.Status, 1)
	go func() {
		resp, err := http.Get(p.url + "/v1/workflows/nap?wait=5m")
		if err != nil {
			waited <- nil
			return
		}
		defer resp.Body.Close()
		var st dagflow.Status
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&st) != nil {
			waited <- nil
			return
		}
		waited <- &st
	}()
	time.Sleep(200 * time.Millisecond)
	cancel()
	select {
	case code := <-exited:
		if code != 0 {
			t.Fatalf("serve exited %d:\n%s", code, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("serve did not stop:\n%s", stderr.String())
	}
	select {
	case st := <-waited:
		if st == nil || st.ID != "nap" || st.State.Final() {
			t.Errorf("the waiting call got %+v", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting call did not end with the server")
	}
	if !strings.Contains(stderr.String(), "serve stopped") {
		t.Errorf("stderr:\n%s", stderr.String())
	}
}
