package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
)

// nextjsDir is the example: job handlers written as Next.js route handlers,
// served by a node:http adapter, and a program that creates the order saga
// through /v1.
var nextjsDir = filepath.Join("..", "..", "examples", "nextjs")

// nodeEnv is the environment of the example's node processes: the test's,
// without DAGFLOW_ variables, plus extra.
func nodeEnv(extra ...string) []string {
	var e []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DAGFLOW_") {
			e = append(e, kv)
		}
	}
	return append(e, extra...)
}

// nodeJobs is the example's job server, started by startNodeJobs.
type nodeJobs struct {
	url   string
	mu    sync.Mutex
	lines []string // of its stdout
}

func (n *nodeJobs) printed(s string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, l := range n.lines {
		if l == s {
			return true
		}
	}
	return false
}

// startNodeJobs starts 'node server.js' of the example on a free port.
func startNodeJobs(t *testing.T, node string) *nodeJobs {
	t.Helper()
	cmd := exec.Command(node, "server.js")
	cmd.Dir = nextjsDir
	cmd.Env = nodeEnv("DAGFLOW_SECRET="+secret, "PORT=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	n := &nodeJobs{}
	listening := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			n.mu.Lock()
			n.lines = append(n.lines, sc.Text())
			n.mu.Unlock()
			if u, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				listening <- u
			}
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		cmd.Wait()
		if t.Failed() {
			t.Logf("node server.js stderr:\n%s", stderr.String())
		}
	})
	select {
	case n.url = <-listening:
	case <-done:
		t.Fatalf("node server.js exited:\n%s", stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatal("node server.js did not listen within 20s")
	}
	return n
}

// TestNextJSExample runs examples/nextjs: its job handlers on node, 'dagflow
// serve' with its base URL and DAGFLOW_SECRET, and its program that creates
// two orders through /v1: one ships, the other has no address, and the saga
// undoes its payment and reservation. The handlers check every request's
// Dagflow-Signature, and receive the runs' webhooks.
func TestNextJSExample(t *testing.T) {
	t.Parallel()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH: examples/nextjs needs Node.js 20 or later (Debian: apt-get install nodejs)")
	}
	jobs := startNodeJobs(t, node)

	t.Run("signatures", func(t *testing.T) {
		body := []byte(`{"workflowId": "w", "stepId": "s", "attempt": 1, "context": {"orderId": "o"}, "previousSteps": {}}`)
		for _, tc := range []struct {
			name, sig string
			status    int
		}{
			{"none", "", 401},
			{"another secret", httpstep.Sign([]byte("other"), time.Now(), body), 401},
			{"too old", httpstep.Sign([]byte(secret), time.Now().Add(-10*time.Minute), body), 401},
			{"malformed", "t=1,v1=zz", 401},
			{"good", httpstep.Sign([]byte(secret), time.Now(), body), 200},
		} {
			req, _ := http.NewRequest("POST", jobs.url+"/api/jobs/reserve-inventory", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if tc.sig != "" {
				req.Header.Set(httpstep.HeaderSignature, tc.sig)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("%s signature: status %d, want %d", tc.name, resp.StatusCode, tc.status)
			}
		}
	})

	p := startServe(t, env("DAGFLOW_API_TOKEN="+apiToken), "--db", filepath.Join(t.TempDir(), "flows.db"), "--base-url", jobs.url)
	p.token = apiToken
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	orders := exec.CommandContext(ctx, node, "create-orders.js")
	orders.Dir = nextjsDir
	orders.Env = nodeEnv("DAGFLOW_URL="+p.url, "DAGFLOW_API_TOKEN="+apiToken)
	var stdout, stderr bytes.Buffer
	orders.Stdout, orders.Stderr = &stdout, &stderr
	if err := orders.Run(); err != nil {
		t.Fatalf("node create-orders.js: %v\nstdout:\n%s\nstderr:\n%s\nserve:\n%s", err, &stdout, &stderr, p.errors())
	}
	var printed []dagflow.Status
	reply{body: stdout.Bytes()}.decode(t, &printed)
	if len(printed) != 2 {
		t.Fatalf("create-orders.js printed %d statuses", len(printed))
	}

	shipped := p.call(t, "GET", "/v1/workflows/order_123", "").want(t, 200).runStatus(t)
	compactRaw := cmp.Transformer("compact", func(r json.RawMessage) string { return compact(r) })
	if diff := cmp.Diff(&printed[0], shipped, compactRaw); diff != "" {
		t.Errorf("order_123 as the program printed it and as the API says (-printed +API):\n%s", diff)
	}
	got := orderOutcome(t, shipped)
	want := outcome{State: dagflow.StateCompleted, Completed: []string{"reserve-inventory", "charge-payment", "ship-order", "send-confirmation"},
		Failed: []string{}, Compensated: []string{}, Charge: got.Charge, Amount: 49.9,
		Confirmation: confirmation{SentTo: "ada@example.com", TrackingNumber: "TRK-order_123", ChargeID: got.Charge}}
	if diff := cmp.Diff(want, got); diff != "" || got.Charge == "" {
		t.Errorf("order_123 (-want +got):\n%s", diff)
	}

	failed := p.call(t, "GET", "/v1/workflows/order_124", "").want(t, 200).runStatus(t)
	got = orderOutcome(t, failed)
	want = outcome{State: dagflow.StateFailed, Completed: []string{"reserve-inventory", "charge-payment"}, Failed: []string{"ship-order"},
		Compensated: []string{"charge-payment", "reserve-inventory"}, Charge: got.Charge, Amount: 49.9}
	if diff := cmp.Diff(want, got); diff != "" || got.Charge == "" {
		t.Errorf("order_124 (-want +got):\n%s", diff)
	}
	if !strings.Contains(failed.Error, "order_124 has no shipping address") {
		t.Errorf("order_124's error: %q", failed.Error)
	}

	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		done := jobs.printed("webhook order-done order_123 completed")
		failed := jobs.printed("webhook order-failed order_124 failed compensated=charge-payment,reserve-inventory")
		if done && failed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhooks received: order-done %v, order-failed %v", done, failed)
		}
	}
	if code, _ := p.stop(t); code != 0 {
		t.Errorf("serve exited %d:\n%s", code, p.errors())
	}
}

// outcome is what TestNextJSExample checks of an order's run.
type outcome struct {
	State                          dagflow.State
	Completed, Failed, Compensated []string
	Charge                         string  // charge-payment's chargeId
	Amount                         float64 // and amount
	Confirmation                   confirmation
}

// confirmation is the result of send-confirmation.
type confirmation struct {
	SentTo         string `json:"sentTo"`
	TrackingNumber string `json:"trackingNumber"`
	ChargeID       string `json:"chargeId"`
}

func orderOutcome(t *testing.T, st *dagflow.Status) outcome {
	t.Helper()
	o := outcome{State: st.State, Completed: st.CompletedSteps, Failed: st.FailedSteps, Compensated: st.CompensatedSteps}
	var charge struct {
		ChargeID string  `json:"chargeId"`
		Amount   float64 `json:"amount"`
	}
	reply{body: st.Results["charge-payment"]}.decode(t, &charge)
	o.Charge, o.Amount = charge.ChargeID, charge.Amount
	if raw, ok := st.Results["send-confirmation"]; ok {
		reply{body: raw}.decode(t, &o.Confirmation)
	}
	return o
}
