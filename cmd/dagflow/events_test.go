package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
)

// approvalFlow is a workflow that waits for the event "order-approved" with
// its order id as key, then ships: first, when gate is set, a step at
// base+"/jobs/"+gate.
func approvalFlow(id, orderID, base, gate string) string {
	steps := fmt.Sprintf(`
    {"id": "approval", "waitForEvent": {"name": "order-approved", "key": "context.orderId"}},
    {"id": "ship-order", "url": %q, "dependsOn": ["approval"]}`, base+"/jobs/ship-order")
	if gate != "" {
		steps = fmt.Sprintf(`
    {"id": "charge-payment", "url": %q},
    {"id": "approval", "waitForEvent": {"name": "order-approved", "key": "context.orderId"}, "dependsOn": ["charge-payment"]},
    {"id": "ship-order", "url": %q, "dependsOn": ["approval"]}`, base+"/jobs/"+gate, base+"/jobs/ship-order")
	}
	return fmt.Sprintf(`{"id": %q, "context": {"orderId": %q}, "steps": [%s]}`, id, orderID, steps)
}

// sentEvent is what send-event prints.
type sentEvent struct {
	Name     string     `json:"name"`
	Key      string     `json:"key"`
	Received []received `json:"received"`
}

func (r result) sent(t *testing.T) sentEvent {
	t.Helper()
	var out sentEvent
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("send-event printed %v:\n%s", err, r.stdout)
	}
	return out
}

// TestSendEvent: a run left waiting for an event in the database receives it
// from send-event, which runs nothing; resume then finishes it.
func TestSendEvent(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	eng, err := dagflow.Open(dagflow.WithPath(db), dagflow.WithLogger(discardLogger()))
	if err != nil {
		t.Fatal(err)
	}
	for _, spec := range []string{approvalFlow("w1", "order_123", j.url, ""), approvalFlow("w2", "order_999", j.url, "")} {
		wf, err := dagflow.ParseWorkflow([]byte(spec))
		if err != nil {
			eng.Close()
			t.Fatal(err)
		}
		if _, err := eng.Create(context.Background(), wf); err != nil {
			eng.Close()
			t.Fatal(err)
		}
		dagflowtest.WaitFor(t, eng, wf.ID, func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateWaiting })
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}

	payload := writeFile(t, dir, "approved.json", `{"by": "alice", "note": "<ok>"}`+"\n")
	r := dagflowCmd(t, "send-event", "--db", db, "order-approved", "order_123", payload)
	r.want(t, 0, "the runs go on when a command next opens the database: 'dagflow resume --db "+db+"'")
	if got := r.sent(t); got.Name != "order-approved" || got.Key != "order_123" ||
		len(got.Received) != 1 || got.Received[0].Run != "w1" || got.Received[0].Step != "approval" || got.Received[0].Item != nil {
		t.Errorf("send-event printed %+v", got)
	}
	if n := j.count("ship-order"); n != 0 {
		t.Errorf("send-event ran ship-order (%d calls)", n)
	}
	st := dagflowCmd(t, "status", "--db", db, "w1").status(t)
	if st.Steps[0].State != dagflow.StateCompleted || compact(st.Steps[0].Result) != `{"by":"alice","note":"<ok>"}` ||
		st.Steps[1].State != dagflow.StatePending {
		t.Errorf("w1 after the event: approval %s %s, ship-order %s", st.Steps[0].State, st.Steps[0].Result, st.Steps[1].State)
	}
	st = dagflowCmd(t, "status", "--db", db, "w2").status(t)
	if s := st.Steps[0]; s.State != dagflow.StateWaiting || s.Event == nil || s.Event.Key != "order_999" {
		t.Errorf("w2, which waits for another key: approval %s %+v", s.State, s.Event)
	}

	r = dagflowCmd(t, "graph", "--db", db, "w2")
	r.want(t, 0)
	if want := `"approval" [label="approval\n(wait for event order-approved)\nwaiting", fillcolor=lightyellow];`; !strings.Contains(r.stdout, want) {
		t.Errorf("graph of w2 lacks %s:\n%s", want, r.stdout)
	}

	// resume finishes w1; w2 can only go on with an event, which nothing
	// can send while resume holds the database: resume says so instead of
	// waiting until the wait times out.
	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 1, `run "w2" waits for event "order-approved" with key "order_999" (its step "approval")`,
		"'dagflow send-event --db "+db+" order-approved order_999 [PAYLOAD.json]'")
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 2 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	if out[0].ID != "w1" || out[0].State != dagflow.StateCompleted || compact(out[0].Results["approval"]) != `{"by":"alice","note":"<ok>"}` {
		t.Errorf("w1 after resume: %s %s %v", out[0].ID, out[0].State, out[0].Results)
	}
	if out[1].ID != "w2" || out[1].State != dagflow.StateRunning {
		t.Errorf("w2 after resume: %s %s", out[1].ID, out[1].State)
	}
	if r.took > 10*time.Second {
		t.Errorf("resume took %v", r.took)
	}

	// No payload: null.
	r = dagflowCmd(t, "send-event", "order-approved", "order_999", "--db", db)
	r.want(t, 0)
	dagflowCmd(t, "resume", "--db", db).want(t, 0)
	st = dagflowCmd(t, "status", "--db", db, "w2").status(t)
	if st.State != dagflow.StateCompleted || compact(st.Results["approval"]) != "null" {
		t.Errorf("w2: %s, approval's result %s", st.State, st.Results["approval"])
	}
	if n := j.count("ship-order"); n != 2 {
		t.Errorf("ship-order called %d times, want 2", n)
	}
}

// TestSendEventBeforeWait: an event sent to a run whose step does not wait
// yet is kept, and received when the wait starts. 'dagflow run' does not wait
// for a run that can only go on with an event.
func TestSendEventBeforeWait(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	file := writeFile(t, dir, "order.json", approvalFlow("order-e", "order_7", j.url, "block"))
	cmd, _, _ := newCommand(dir, env(), "run", "--db", db, file)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	j.waitBlocked(t)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	r := dagflowCmd(t, "send-event", "--db", db, "order-approved", "order_7", "-")
	// stdin is empty: the payload file "-" is bad input.
	r.want(t, 2, "<stdin>: empty")
	r = dagflowCmd(t, "send-event", "--db", db, "order-approved", "order_7")
	r.want(t, 0, `no step waits for event "order-approved" with key "order_7" now; it is kept for 7 days`)
	if got := r.sent(t); len(got.Received) != 0 || got.Received == nil {
		t.Errorf("send-event printed %s", r.stdout)
	}

	j.unblock()
	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	if st := out[0]; st.State != dagflow.StateCompleted || compact(st.Results["approval"]) != "null" {
		t.Errorf("after resume: %s, approval's result %s (error %q)", st.State, st.Results["approval"], st.Error)
	}

	// run stops waiting when the run waits for an event only.
	other := writeFile(t, dir, "other.json", approvalFlow("order-f", "order_8", j.url, ""))
	r = dagflowCmd(t, "run", "--db", db, other)
	r.want(t, 1, `run "order-f" waits for event "order-approved" with key "order_8" (its step "approval")`)
	if st := r.status(t); st.State != dagflow.StateRunning || st.Steps[0].State != dagflow.StateWaiting {
		t.Errorf("run printed %s, approval %s", st.State, st.Steps[0].State)
	}
	dagflowCmd(t, "send-event", "--db", db, "order-approved", "order_8").want(t, 0)
	dagflowCmd(t, "resume", "--db", db).want(t, 0)
}

func TestSendEventBadInput(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	emptyDB(t, db)
	bad := writeFile(t, dir, "bad.json", `{"by": `)
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"send-event", "--db", db, "order-approved"}, "send-event: missing argument"},
		{[]string{"send-event", "--db", db, "a", "b", "c", "d"}, `send-event: unexpected argument "d"`},
		{[]string{"send-event", "--db", db, "", "k"}, "the event's NAME is empty"},
		{[]string{"send-event", "--db", db, " padded", "k"}, "send-event: name: "},
		{[]string{"send-event", "--db", db, "a", "k", bad}, "bad.json: not valid JSON"},
		{[]string{"send-event", "--db", db, "a", "k", filepath.Join(dir, "none.json")}, "none.json: no such file"},
		{[]string{"send-event", "--db", filepath.Join(dir, "none.db"), "a", "k"}, "none.db: no such database"},
	} {
		r := dagflowCmd(t, tc.args...)
		r.want(t, 2, tc.msg)
		if r.stdout != "" {
			t.Errorf("%q: stdout:\n%s", tc.args, r.stdout)
		}
	}
}

// TestEventInChildRun: 'dagflow run' stops waiting for a run whose only way
// on is an event that a step of its child run waits for, even when a later
// step waits for the serial slot that the sub-workflow step holds.
func TestEventInChildRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	file := writeFile(t, dir, "parent.json", `{"id": "p1", "context": {"orderId": "order 1"}, "steps": [
		{"id": "ship", "workflow": {"steps": [{"id": "approval", "waitForEvent": {"name": "approved", "key": "context.orderId"}}]}},
		{"id": "nap", "sleep": {"seconds": 0.01}}]}`)
	r := dagflowCmd(t, "run", "--db", db, file)
	r.want(t, 1, `run "p1" waits for event "approved" with key "order 1" (step "approval" of its child run "p1/ship")`,
		`'dagflow send-event --db `+db+` approved 'order 1' [PAYLOAD.json]'`)
	if st := r.status(t); st.State != dagflow.StateRunning || st.Steps[0].Run != "p1/ship" || st.Steps[1].State != dagflow.StatePending {
		t.Errorf("run printed %s: ship %s, nap %s", st.State, st.Steps[0].State, st.Steps[1].State)
	}
	if r.took > 10*time.Second {
		t.Errorf("run took %v", r.took)
	}
	r = dagflowCmd(t, "send-event", "--db", db, "approved", "order 1")
	r.want(t, 0)
	if got := r.sent(t); len(got.Received) != 1 || got.Received[0].Run != "p1/ship" || got.Received[0].Step != "approval" {
		t.Errorf("send-event printed %s", r.stdout)
	}
	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 || out[0].ID != "p1" || out[0].State != dagflow.StateCompleted {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
}
