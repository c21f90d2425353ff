package flow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
)

// The tests of the rules run the state machine on the memory store with an
// Env of their own: a plan per run, no jitter, a clock the test sets. Each
// table row says: given these records, this outcome, these records and
// effects follow.

type env struct {
	plans map[string]*flow.Plan
	owner string
	lease time.Duration
}

func (e *env) Plan(_ store.Tx, id string) (*flow.Plan, error) {
	if p, ok := e.plans[id]; ok {
		return p, nil
	}
	return nil, fmt.Errorf("no plan for %q", id)
}
func (e *env) Context(store.Tx, string) (json.RawMessage, error) { return json.RawMessage(`{}`), nil }
func (e *env) Child(store.Tx, *store.Run, int, int, json.RawMessage) (json.RawMessage, *flow.Plan, error) {
	return nil, nil, errors.New("no children here")
}
func (e *env) Webhooks(store.Tx, *store.Run, *flow.Plan) ([]store.Webhook, error) { return nil, nil }
func (e *env) CanRun(*flow.Plan, int, bool) bool                                  { return true }
func (e *env) Jitter(d time.Duration) time.Duration                               { return d } // the interval itself
func (e *env) Limits() flow.Limits {
	return flow.Limits{Owner: e.owner, Lease: e.lease, MaxInterruptions: 3, MaxMapItems: 100}
}

// harness runs transactions of the state machine on a memory store.
type harness struct {
	t   *testing.T
	s   *memory.Store
	env *env
	now time.Time
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newHarness(t *testing.T) *harness {
	s := memory.New()
	t.Cleanup(func() { s.Close() })
	return &harness{t: t, s: s, env: &env{plans: map[string]*flow.Plan{}, owner: "e1"}, now: t0}
}

// do runs fn in a transaction and returns its effects; it fails the test on
// an error.
func (h *harness) do(fn func(x *flow.Txn) error) flow.Effects {
	h.t.Helper()
	eff, err := h.try(fn)
	if err != nil {
		h.t.Fatal(err)
	}
	return eff
}

func (h *harness) try(fn func(x *flow.Txn) error) (flow.Effects, error) {
	var eff flow.Effects
	err := h.s.Update(context.Background(), func(tx store.Tx) error {
		x := flow.Begin(tx, h.env, h.now, &eff)
		if err := fn(x); err != nil {
			return err
		}
		return x.Flush()
	})
	return eff, err
}

// create makes run id of plan p.
func (h *harness) create(id string, p *flow.Plan) {
	h.t.Helper()
	h.env.plans[id] = p
	h.do(func(x *flow.Txn) error {
		return x.Create(store.Run{ID: id, CreatedAt: h.now}, json.RawMessage(`{}`), p, "")
	})
}

// claim claims up to n due records and returns the claims by step id.
func (h *harness) claim(n int) map[string]flow.Claim {
	h.t.Helper()
	eff := h.do(func(x *flow.Txn) error { return x.Claim(n) })
	out := map[string]flow.Claim{}
	for _, c := range eff.Claimed {
		out[c.StepID] = c
	}
	return out
}

// states returns the state of each step of a run.
func (h *harness) states(id string) map[string]store.StepState {
	h.t.Helper()
	out := map[string]store.StepState{}
	h.s.View(context.Background(), func(tx store.Tx) error {
		steps, err := tx.Steps(id)
		for _, st := range steps {
			out[st.ID] = st.State
		}
		return err
	})
	return out
}

func (h *harness) step(id string, i int) store.Step {
	h.t.Helper()
	var st store.Step
	h.s.View(context.Background(), func(tx store.Tx) (err error) { st, err = tx.Step(id, i, 0); return })
	return st
}

func (h *harness) run(id string) store.Run {
	h.t.Helper()
	var r store.Run
	h.s.View(context.Background(), func(tx store.Tx) (err error) { r, err = tx.Run(id); return })
	return r
}

// plan builds a plan: steps named by their deps ("b<-a,c"), all parallel
// unless marked "!" (serial), with retry policy r.
func plan(r flow.Retry, specs ...string) *flow.Plan {
	p := &flow.Plan{Timeout: time.Hour}
	index := map[string]int32{}
	for i, s := range specs {
		id, deps, _ := cut(s, "<-")
		serial := false
		if id[len(id)-1] == '!' {
			id, serial = id[:len(id)-1], true
		}
		index[id] = int32(i)
		sp := flow.StepPlan{ID: id, Parallel: !serial, Retry: &r, Timeout: time.Minute, Handler: "h"}
		for _, d := range split(deps) {
			sp.Deps = append(sp.Deps, index[d])
		}
		p.Steps = append(p.Steps, sp)
	}
	for i := range p.Steps {
		for _, d := range p.Steps[i].Deps {
			p.Steps[d].Dependents = append(p.Steps[d].Dependents, int32(i))
		}
	}
	return p
}

func cut(s, sep string) (string, string, bool) {
	for i := 0; i+len(sep) <= len(s); i++ {
		if s[i:i+len(sep)] == sep {
			return s[:i], s[i+len(sep):], true
		}
	}
	return s, "", false
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for {
		a, b, ok := cut(s, ",")
		out = append(out, a)
		if !ok {
			return out
		}
		s = b
	}
}

var once = flow.Retry{MaxAttempts: 1, Initial: time.Second, Max: time.Minute}

// TestDependencyCounting: a step becomes ready when its last dependency
// completes, not before; a step whose dependency failed is skipped under
// policy "continue", and so on downstream.
func TestDependencyCounting(t *testing.T) {
	h := newHarness(t)
	h.create("r", plan(once, "a", "b<-a", "c<-a", "d<-b,c", "e<-d"))
	c := h.claim(10)
	if len(c) != 1 || c["a"].StepID != "a" {
		t.Fatalf("first claims %v", c)
	}
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["a"]), flow.Outcome{Result: json.RawMessage(`1`)}) })
	c = h.claim(10)
	if len(c) != 2 {
		t.Fatalf("after a: claims %v", c)
	}
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["b"]), flow.Outcome{}) })
	if st := h.step("r", 3); st.State != store.StepPending || st.Waiting != 1 {
		t.Errorf("d after b: %s waiting %d", st.State, st.Waiting)
	}
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["c"]), flow.Outcome{}) })
	if st := h.step("r", 3); st.State != store.StepReady || st.Waiting != 0 {
		t.Errorf("d after b and c: %s waiting %d", st.State, st.Waiting)
	}

	// "continue": a failure skips what is downstream, not the rest.
	p := plan(once, "a", "b<-a", "c<-b", "x")
	p.Continue = true
	h.create("k", p)
	c = h.claim(10)
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["a"]), flow.Outcome{Err: "boom"}) })
	want := map[string]store.StepState{"a": store.StepFailed, "b": store.StepSkipped, "c": store.StepSkipped, "x": store.StepRunning}
	if d := cmp.Diff(want, h.states("k")); d != "" {
		t.Errorf("states under continue (-want +got):\n%s", d)
	}
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["x"]), flow.Outcome{}) })
	if r := h.run("k"); r.State != store.RunFailed || r.Error != `step "a" failed: boom` {
		t.Errorf("run %s %q", r.State, r.Error)
	}
}

func ptr[T any](v T) *T { return &v }

// TestSerialSlot: ready steps not marked parallel run one at a time, in
// declaration order.
func TestSerialSlot(t *testing.T) {
	h := newHarness(t)
	h.create("r", plan(once, "c!", "a!", "b!", "p"))
	c := h.claim(10)
	var got []string
	for id := range c {
		got = append(got, id)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"c", "p"}) {
		t.Fatalf("claimed %v, want the first serial step and the parallel one", got)
	}
	if r := h.run("r"); r.Serial != 0 || !slices.Equal(r.SerialQueue, []int{1, 2}) {
		t.Errorf("serial %d, queue %v", r.Serial, r.SerialQueue)
	}
	order := []string{"c"}
	cur := c["c"]
	for range 2 {
		eff := h.do(func(x *flow.Txn) error {
			if err := x.Finish(&cur, flow.Outcome{}); err != nil {
				return err
			}
			return x.Continue(1)
		})
		if len(eff.Claimed) != 1 {
			t.Fatalf("after %s: claimed %v", cur.StepID, eff.Claimed)
		}
		cur = eff.Claimed[0]
		order = append(order, cur.StepID)
	}
	if !slices.Equal(order, []string{"c", "a", "b"}) {
		t.Errorf("serial order %v", order)
	}
}

// TestRetries: a failed attempt is retried after the backoff interval (no
// jitter here), capped at the run's deadline, and fails for good past
// maxAttempts or when permanent; Retry-After is honoured.
func TestRetries(t *testing.T) {
	r := flow.Retry{MaxAttempts: 3, Kind: flow.Exponential, Initial: time.Second, Max: 10 * time.Second}
	tests := []struct {
		name     string
		outcomes []flow.Outcome
		waits    []time.Duration // DueAt - now after each failure
		final    store.StepState
	}{
		{"exponential", []flow.Outcome{{Err: "x"}, {Err: "x"}, {Err: "x"}}, []time.Duration{time.Second, 2 * time.Second}, store.StepFailed},
		{"permanent", []flow.Outcome{{Err: "x", Permanent: true}}, nil, store.StepFailed},
		{"retry-after", []flow.Outcome{{Err: "x", RetryAfter: 7 * time.Second}, {}}, []time.Duration{7 * time.Second}, store.StepCompleted},
		{"succeeds", []flow.Outcome{{Err: "x"}, {}}, []time.Duration{time.Second}, store.StepCompleted},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.create("r", plan(r, "a"))
			var waits []time.Duration
			for _, o := range tc.outcomes {
				c := h.claim(1)
				if len(c) != 1 {
					t.Fatalf("nothing to claim at %v", h.now)
				}
				h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["a"]), o) })
				if st := h.step("r", 0); st.State == store.StepReady {
					waits = append(waits, st.DueAt.Sub(h.now))
					h.now = st.DueAt
				}
			}
			if d := cmp.Diff(tc.waits, waits); d != "" {
				t.Errorf("waits (-want +got):\n%s", d)
			}
			if st := h.step("r", 0); st.State != tc.final {
				t.Errorf("final state %s", st.State)
			}
		})
	}
	// Capped at the deadline.
	h := newHarness(t)
	p := plan(flow.Retry{MaxAttempts: 3, Initial: time.Hour, Max: time.Hour}, "a")
	p.Timeout = 10 * time.Minute
	h.create("r", p)
	c := h.claim(1)
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["a"]), flow.Outcome{Err: "x"}) })
	if st := h.step("r", 0); !st.DueAt.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("retry due %v, want the deadline", st.DueAt)
	}
}

func TestRetryInterval(t *testing.T) {
	for _, tc := range []struct {
		r        flow.Retry
		failures int
		want     time.Duration
	}{
		{flow.Retry{Kind: flow.Exponential, Initial: time.Second, Max: time.Minute}, 1, time.Second},
		{flow.Retry{Kind: flow.Exponential, Initial: time.Second, Max: time.Minute}, 4, 8 * time.Second},
		{flow.Retry{Kind: flow.Exponential, Initial: time.Second, Max: time.Minute}, 100, time.Minute},
		{flow.Retry{Kind: flow.Linear, Initial: time.Second, Max: time.Minute}, 3, 3 * time.Second},
		{flow.Retry{Kind: flow.Fixed, Initial: 5 * time.Second, Max: time.Minute}, 9, 5 * time.Second},
		{flow.Retry{Kind: flow.Linear, Initial: time.Hour, Max: 2 * time.Hour}, 1 << 40, 2 * time.Hour},
	} {
		if got := tc.r.Interval(tc.failures); got != tc.want {
			t.Errorf("%+v.Interval(%d) = %v, want %v", tc.r, tc.failures, got, tc.want)
		}
	}
}

// TestStopping: under policy "fail", a step that fails for good stops the
// run: what has not started is skipped, what runs finishes, then the run
// fails.
func TestStopping(t *testing.T) {
	h := newHarness(t)
	h.create("r", plan(once, "a", "b", "c<-a"))
	c := h.claim(10)
	eff := h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["a"]), flow.Outcome{Err: "boom"}) })
	if len(eff.Stopped) != 1 || eff.Stopped[0].Cancel {
		t.Errorf("stopped %+v, want one that lets b finish", eff.Stopped)
	}
	r := h.run("r")
	if r.Phase != store.PhaseStopping || r.Cause != store.CauseFailed || r.State != store.RunRunning {
		t.Fatalf("run %s %s %s", r.State, r.Phase, r.Cause)
	}
	if st := h.states("r"); st["c"] != store.StepSkipped || st["b"] != store.StepRunning {
		t.Errorf("states %v", st)
	}
	eff = h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["b"]), flow.Outcome{}) })
	if r := h.run("r"); r.State != store.RunFailed || len(eff.Finished) != 1 {
		t.Errorf("run %s, finished %v", r.State, eff.Finished)
	}
	// Cancel: what has not started is cancelled, what runs is told to stop.
	h.create("x", plan(once, "a", "b<-a"))
	c = h.claim(10)
	eff = h.do(func(x *flow.Txn) error { _, err := x.Cancel("x", "cancelled"); return err })
	if len(eff.Stopped) != 1 || !eff.Stopped[0].Cancel || eff.Stopped[0].Cause != store.CauseCancelled {
		t.Errorf("stopped %+v", eff.Stopped)
	}
	h.do(func(x *flow.Txn) error {
		return x.Finish(ptr(c["a"]), flow.Outcome{Err: "cancelled: context canceled", Permanent: true})
	})
	want := map[string]store.StepState{"a": store.StepCancelled, "b": store.StepCancelled}
	if d := cmp.Diff(want, h.states("x")); d != "" {
		t.Errorf("after cancel (-want +got):\n%s", d)
	}
	if r := h.run("x"); r.State != store.RunCancelled {
		t.Errorf("run %s", r.State)
	}
}

// TestCompensationOrder: a saga compensates the completed steps that have a
// compensation, one at a time, in reverse order of completion; a failed
// compensation is recorded and the rollback goes on.
func TestCompensationOrder(t *testing.T) {
	h := newHarness(t)
	p := plan(once, "a", "b", "c", "d<-a,b,c")
	p.Saga = true
	for i := range 3 {
		p.Steps[i].HasComp = true
		p.Steps[i].CompHandler = "undo"
	}
	h.create("r", p)
	c := h.claim(10)
	for _, id := range []string{"b", "c", "a"} { // completion order
		h.do(func(x *flow.Txn) error { return x.Finish(ptr(c[id]), flow.Outcome{}) })
	}
	c = h.claim(10)
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["d"]), flow.Outcome{Err: "boom", Permanent: true}) })
	if r := h.run("r"); r.Phase != store.PhaseCompensating || len(r.CompQueue) != 2 {
		t.Fatalf("run %s, queue %v", r.Phase, r.CompQueue)
	}
	var order []string
	for range 3 {
		c := h.claim(10)
		if len(c) != 1 {
			t.Fatalf("compensations claimed at once: %v", c)
		}
		for id, cl := range c {
			if !cl.Comp {
				t.Fatalf("claimed %s, not a compensation", id)
			}
			order = append(order, id)
			o := flow.Outcome{}
			if id == "c" {
				o = flow.Outcome{Err: "refund down", Permanent: true}
			}
			h.do(func(x *flow.Txn) error { return x.Finish(&cl, o) })
		}
	}
	if !slices.Equal(order, []string{"a", "c", "b"}) {
		t.Errorf("compensation order %v, want reverse completion a, c, b", order)
	}
	r := h.run("r")
	if r.State != store.RunFailed || r.Error != `step "d" failed: boom; compensation of step "c" failed: refund down` {
		t.Errorf("run %s %q", r.State, r.Error)
	}
	// Retry finishes the rollback: only c again.
	h.do(func(x *flow.Txn) error { return x.Retry("r") })
	c = h.claim(10)
	if len(c) != 1 || !c["c"].Comp {
		t.Fatalf("retry claims %v", c)
	}
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["c"]), flow.Outcome{}) })
	if r := h.run("r"); r.State != store.RunFailed || r.Error != `step "d" failed: boom` {
		t.Errorf("after finishing the rollback: %s %q", r.State, r.Error)
	}
	if _, err := h.try(func(x *flow.Txn) error { return x.Retry("r") }); !errors.Is(err, flow.ErrRolledBack) {
		t.Errorf("Retry of a rolled-back saga: %v", err)
	}
}

// TestRedrive: Retry runs again what did not complete and everything
// downstream, keeps what completed upstream, and starts a new generation.
func TestRedrive(t *testing.T) {
	h := newHarness(t)
	p := plan(once, "a", "b", "fan<-a,b", "after<-fan")
	p.Continue = true
	p.Steps[2].AllowFailedDeps = true
	h.create("r", p)
	c := h.claim(10)
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["a"]), flow.Outcome{Result: json.RawMessage(`"a"`)}) })
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["b"]), flow.Outcome{Err: "down"}) })
	c = h.claim(10)
	h.do(func(x *flow.Txn) error {
		return x.Finish(ptr(c["fan"]), flow.Outcome{Result: json.RawMessage(`"partial"`)})
	})
	c = h.claim(10)
	h.do(func(x *flow.Txn) error { return x.Finish(ptr(c["after"]), flow.Outcome{}) })
	if r := h.run("r"); r.State != store.RunFailed {
		t.Fatalf("run %s", r.State)
	}
	eff := h.do(func(x *flow.Txn) error { return x.Retry("r") })
	if !slices.Equal(eff.Redriven, []string{"r"}) {
		t.Errorf("redriven %v", eff.Redriven)
	}
	want := map[string]store.StepState{"a": store.StepCompleted, "b": store.StepReady, "fan": store.StepPending, "after": store.StepPending}
	if d := cmp.Diff(want, h.states("r")); d != "" {
		t.Errorf("after Retry (-want +got):\n%s", d)
	}
	r := h.run("r")
	if r.Generation != 1 || r.Done != 1 || r.State != store.RunRunning {
		t.Errorf("run gen %d done %d state %s", r.Generation, r.Done, r.State)
	}
	if st := h.step("r", 0); string(st.Result) != `"a"` {
		t.Errorf("a lost its result: %s", st.Result)
	}
	// A claim of the first generation is refused in the second.
	if _, err := h.try(func(x *flow.Txn) error { return x.Finish(ptr(c["after"]), flow.Outcome{}) }); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("an old generation's claim: %v", err)
	}
}

// TestFencing: a claim whose lease another engine took over cannot record
// its outcome; the interrupted attempt runs again as the next attempt,
// without counting against maxAttempts, until the interruptions' limit.
func TestFencing(t *testing.T) {
	h := newHarness(t)
	h.env.lease = 30 * time.Second
	h.create("r", plan(once, "a"))
	first := h.claim(1)["a"]
	h.now = h.now.Add(time.Minute) // the lease ran out
	h.env.owner = "e2"
	second := h.claim(1)["a"]
	if second.Attempt != 2 || second.Token == first.Token {
		t.Fatalf("takeover: attempt %d token %d (first %d)", second.Attempt, second.Token, first.Token)
	}
	if st := h.step("r", 0); st.Interruptions != 1 || st.Attempts != 2 {
		t.Errorf("after the takeover: attempts %d, interruptions %d", st.Attempts, st.Interruptions)
	}
	h.env.owner = "e1"
	if _, err := h.try(func(x *flow.Txn) error { return x.Finish(&first, flow.Outcome{}) }); !errors.Is(err, store.ErrLeaseLost) {
		t.Errorf("the first engine's outcome: %v, want ErrLeaseLost", err)
	}
	// Two more interruptions reach the limit of 3.
	h.env.owner = "e2"
	for range 2 {
		h.now = h.now.Add(time.Minute)
		h.claim(1)
	}
	st := h.step("r", 0)
	if st.State != store.StepFailed || st.Interruptions != 3 {
		t.Errorf("after 3 interruptions: %s, %d", st.State, st.Interruptions)
	}
}

// TestContinue: the worker that records an outcome goes on with a step the
// outcome made ready, and leaves steps due from before to the scheduler;
// when the outcome made nothing ready, it claims the step due longest.
func TestContinue(t *testing.T) {
	tests := []struct {
		name string
		plan *flow.Plan
		want []string // the claims of the recording transaction
	}{
		{"a step made ready", plan(once, "x", "y<-x"), []string{"y"}},
		{"two steps made ready", plan(once, "x", "y<-x", "w<-x"), []string{"w", "y"}},
		{"nothing made ready", plan(once, "x"), []string{"z"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.create("a", tc.plan)
			x := h.claim(1)["x"]
			h.now = h.now.Add(time.Second)
			h.create("b", plan(once, "z")) // due before anything x's outcome readies
			eff := h.do(func(tx *flow.Txn) error {
				if err := tx.Finish(&x, flow.Outcome{}); err != nil {
					return err
				}
				return tx.Continue(3)
			})
			var got []string
			for _, c := range eff.Claimed {
				got = append(got, c.StepID)
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("claimed %v, want %v", got, tc.want)
			}
			if left := h.states("b")["z"]; len(tc.want) > 0 && tc.want[0] != "z" && left != store.StepReady {
				t.Errorf("z is %v, want it left ready for the scheduler", left)
			}
		})
	}
}
