package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
	"golang.org/x/sync/errgroup"
)

func handlerStep(id, handler string, deps ...string) dagflow.Step {
	return dagflow.Step{ID: id, Handler: handler, DependsOn: deps}
}

func stepOf(st *dagflow.Status, id string) dagflow.StepStatus {
	for _, s := range st.Steps {
		if s.ID == id {
			return s
		}
	}
	return dagflow.StepStatus{}
}

// TestSleep: a sleep step waits, holding no worker, until the clock passes
// its end, then completes with the time it slept until.
func TestSleep(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t, dagflow.WithConcurrency(1))
	ok := dagflowtest.Script(dagflowtest.Return("ok"))
	mustHandle(t, eng, "ok", ok.Handler)
	start := clock.Now()
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "cool-off", Timeout: 48 * time.Hour, Steps: []dagflow.Step{
		handlerStep("charge", "ok"),
		{ID: "wait", DependsOn: []string{"charge"}, Sleep: &dagflow.Sleep{Duration: 24 * time.Hour}},
		handlerStep("ship", "ok", "wait"),
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.WaitFor(t, eng, "cool-off", func(st *dagflow.Status) bool { return stepOf(st, "wait").State == dagflow.StateWaiting })
	if w := stepOf(st, "wait"); !w.Until.Equal(start.Add(24*time.Hour)) || w.Kind != "sleep" {
		t.Errorf("sleeping step: until %v, kind %q; want %v, sleep", w.Until, w.Kind, start.Add(24*time.Hour))
	}
	// The sleep holds no worker: another run goes on meanwhile.
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "other", Steps: []dagflow.Step{handlerStep("a", "ok")}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.RequireCompleted(t, eng, "other")
	clock.Advance(23 * time.Hour)
	time.Sleep(20 * time.Millisecond)
	if st, _ := eng.Status(ctx, "cool-off"); stepOf(st, "wait").State != dagflow.StateWaiting {
		t.Fatalf("after 23 h the sleep is %s", stepOf(st, "wait").State)
	}
	clock.Advance(time.Hour)
	st = dagflowtest.RequireCompleted(t, eng, "cool-off")
	var res struct{ SleptUntil time.Time }
	if err := json.Unmarshal(st.Results["wait"], &res); err != nil || !res.SleptUntil.Equal(start.Add(24*time.Hour)) {
		t.Errorf("sleep result %s, %v", st.Results["wait"], err)
	}
}

// TestSleepUntil: a sleep until a time taken from the context, or from a
// dependency's result; a value that is not a time fails the step.
func TestSleepUntil(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t)
	at := clock.Now().Add(90 * time.Minute).Format(time.RFC3339)
	mustHandle(t, eng, "when", dagflowtest.Script(dagflowtest.Return(map[string]string{"at": at})).Handler)
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "until", Context: json.RawMessage(`{"at":"` + at + `","bad":42}`), Steps: []dagflow.Step{
		{ID: "from-context", Sleep: &dagflow.Sleep{Until: "context.at"}, Parallel: true},
		{ID: "when", Handler: "when", Parallel: true},
		{ID: "from-step", DependsOn: []string{"when"}, Sleep: &dagflow.Sleep{Until: "steps.when.result.at"}, Parallel: true},
	}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.WaitFor(t, eng, "until", func(st *dagflow.Status) bool {
		return stepOf(st, "from-context").State == dagflow.StateWaiting && stepOf(st, "from-step").State == dagflow.StateWaiting
	})
	clock.Advance(90 * time.Minute)
	dagflowtest.RequireCompleted(t, eng, "until")

	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "bad-until", Context: json.RawMessage(`{"bad":42}`), Steps: []dagflow.Step{
		{ID: "s", Sleep: &dagflow.Sleep{Until: "context.bad"}},
	}}); err != nil {
		t.Fatal(err)
	}
	st := dagflowtest.RequireFailed(t, eng, "bad-until")
	if !strings.Contains(st.Error, `sleep until "context.bad" is a number, not an RFC 3339 time`) {
		t.Errorf("error %q", st.Error)
	}
}

// TestSleepSurvivesRestart: after the engine stops, a sleep ends at the time
// first set, not later.
func TestSleepSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	clock := dagflowtest.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC))
	eng := openBolt(t, path, dagflow.WithClock(clock))
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "nap", Steps: []dagflow.Step{
		{ID: "s", Sleep: &dagflow.Sleep{Duration: time.Hour}},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, "nap", func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateWaiting })
	eng.Close()
	clock.Advance(3 * time.Hour) // the engine was down past the end
	eng = openBolt(t, path, dagflow.WithClock(clock))
	defer eng.Close()
	st := dagflowtest.RequireCompleted(t, eng, "nap")
	if !strings.Contains(string(st.Results["s"]), "2026-03-01T13:00:00Z") {
		t.Errorf("slept until %s, want the time first set", st.Results["s"])
	}
}

// TestWaitForEvent: a step waits for an event with its name and key; an
// event with another key or name does not end the wait; the right one
// completes it with its payload, in every run waiting for it.
func TestWaitForEvent(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	ctx := ctxT(t)
	approval := func(id, order string) dagflow.Workflow {
		return dagflow.Workflow{ID: id, Context: json.RawMessage(`{"orderId":"` + order + `"}`), Steps: []dagflow.Step{
			handlerStep("charge", "ok"),
			{ID: "approval", DependsOn: []string{"charge"}, WaitForEvent: &dagflow.WaitForEvent{Name: "order-approved", Key: "context.orderId"}},
			handlerStep("ship", "ok", "approval"),
		}}
	}
	for _, w := range []dagflow.Workflow{approval("a", "o-1"), approval("b", "o-1"), approval("c", "o-2")} {
		if _, err := eng.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"a", "b", "c"} {
		st := dagflowtest.WaitFor(t, eng, id, func(st *dagflow.Status) bool { return stepOf(st, "approval").State == dagflow.StateWaiting })
		if ev := stepOf(st, "approval").Event; ev == nil || ev.Name != "order-approved" {
			t.Errorf("run %s: waiting step shows event %+v", id, ev)
		}
	}
	for _, ev := range []dagflow.Event{{Name: "order-approved", Key: "o-3"}, {Name: "order-rejected", Key: "o-1"}} {
		if err := eng.SendEvent(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(20 * time.Millisecond)
	if st, _ := eng.Status(ctx, "a"); stepOf(st, "approval").State != dagflow.StateWaiting {
		t.Fatalf("another event ended the wait: %s", stepOf(st, "approval").State)
	}
	if err := eng.SendEvent(ctx, dagflow.Event{Name: "order-approved", Key: "o-1", Payload: json.RawMessage(`{"by":"ada"}`)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		st := dagflowtest.RequireCompleted(t, eng, id)
		if string(st.Results["approval"]) != `{"by":"ada"}` {
			t.Errorf("run %s: approval result %s", id, st.Results["approval"])
		}
	}
	if st, _ := eng.Status(ctx, "c"); st.State.Final() {
		t.Errorf("run c (order o-2) ended: %s", st.State)
	}
}

// TestEventBeforeWait: an event sent after the run was created but before
// its step started waiting is received when the wait starts (no race).
func TestEventBeforeWait(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	release := make(chan struct{})
	mustHandle(t, eng, "slow", func(ctx context.Context, in dagflow.Input) (any, error) {
		<-release
		return nil, nil
	})
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "early", Context: json.RawMessage(`{"n":42}`), Steps: []dagflow.Step{
		handlerStep("slow", "slow"),
		{ID: "wait", DependsOn: []string{"slow"}, WaitForEvent: &dagflow.WaitForEvent{Name: "paid", Key: "context.n"}},
	}}); err != nil {
		t.Fatal(err)
	}
	// The key is the number 42: the event's key "42" matches it.
	if err := eng.SendEvent(ctx, dagflow.Event{Name: "paid", Key: "42", Payload: json.RawMessage(`"yes"`)}); err != nil {
		t.Fatal(err)
	}
	close(release)
	st := dagflowtest.RequireCompleted(t, eng, "early")
	if string(st.Results["wait"]) != `"yes"` {
		t.Errorf("result %s", st.Results["wait"])
	}
}

// TestEventTimeout: a wait that times out fails its step with a clear
// error, and the saga rules apply.
func TestEventTimeout(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t)
	undo := dagflowtest.Script()
	mustHandle(t, eng, "ok", dagflowtest.Script().Handler)
	mustHandle(t, eng, "undo", undo.Handler)
	ctx := ctxT(t)
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "t", Saga: true, Context: json.RawMessage(`{"id":"x"}`), Steps: []dagflow.Step{
		{ID: "charge", Handler: "ok", Compensation: "undo"},
		{ID: "approval", DependsOn: []string{"charge"}, WaitForEvent: &dagflow.WaitForEvent{Name: "approved", Key: "context.id", Timeout: time.Hour}},
	}}); err != nil {
		t.Fatal(err)
	}
	dagflowtest.WaitFor(t, eng, "t", func(st *dagflow.Status) bool { return stepOf(st, "approval").State == dagflow.StateWaiting })
	clock.Advance(59 * time.Minute)
	time.Sleep(20 * time.Millisecond)
	clock.Advance(time.Minute)
	st := dagflowtest.RequireFailed(t, eng, "t")
	if !strings.Contains(st.Error, `timed out waiting for event "approved"`) {
		t.Errorf("error %q", st.Error)
	}
	dagflowtest.RequireCompensated(t, st, "charge")
	if len(undo.Calls()) != 1 {
		t.Errorf("compensation calls %d", len(undo.Calls()))
	}
}

// TestEventRetention: events older than WithEventRetention are gone, and a
// wait that starts later does not receive them.
func TestEventRetention(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t, dagflow.WithEventRetention(time.Hour))
	ctx := ctxT(t)
	gate := make(chan struct{})
	mustHandle(t, eng, "gate", func(ctx context.Context, in dagflow.Input) (any, error) { <-gate; return nil, nil })
	gateStep := handlerStep("gate", "gate")
	gateStep.Timeout = 24 * time.Hour // it runs while the clock moves on
	if _, err := eng.Create(ctx, dagflow.Workflow{ID: "r", Context: json.RawMessage(`{"k":"a"}`), Steps: []dagflow.Step{
		gateStep,
		{ID: "wait", DependsOn: []string{"gate"}, WaitForEvent: &dagflow.WaitForEvent{Name: "e", Key: "context.k"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := eng.SendEvent(ctx, dagflow.Event{Name: "e", Key: "a"}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour) // pruning runs at least every minute of the clock
	time.Sleep(50 * time.Millisecond)
	clock.Advance(2 * time.Minute)
	time.Sleep(50 * time.Millisecond)
	close(gate)
	dagflowtest.WaitFor(t, eng, "r", func(st *dagflow.Status) bool { return stepOf(st, "wait").State == dagflow.StateWaiting })
}

// TestBadEvents: SendEvent refuses an event with no name, a payload that is
// not JSON or is too large.
func TestBadEvents(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t, dagflow.WithMaxPayload(100))
	for _, tc := range []struct {
		ev   dagflow.Event
		want string
	}{
		{dagflow.Event{Key: "k"}, "name: is required"},
		{dagflow.Event{Name: "e", Payload: json.RawMessage(`{"a":`)}, "payload: is not valid JSON"},
		{dagflow.Event{Name: "e", Payload: json.RawMessage(`"` + strings.Repeat("x", 200) + `"`)}, "payload: is 202 bytes; the limit is 100"},
	} {
		err := eng.SendEvent(ctxT(t), tc.ev)
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) || ve.Of != "event" || !strings.HasPrefix(err.Error(), "invalid event: ") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SendEvent(%+v) = %v, want a *ValidationError of an event saying %q", tc.ev, err, tc.want)
		}
	}
	if err := eng.SendEvent(ctxT(t), dagflow.Event{Name: "e"}); err != nil {
		t.Errorf("an event with no key and no payload: %v", err)
	}
	var ve *dagflow.ValidationError
	_, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "w", Steps: []dagflow.Step{
		{ID: "a", WaitForEvent: &dagflow.WaitForEvent{Key: "context.x", Timeout: -time.Second}},
		{ID: "b", Sleep: &dagflow.Sleep{Duration: -time.Minute}},
		{ID: "c", Sleep: &dagflow.Sleep{Until: "tomorrow"}},
		{ID: "d", WaitForEvent: &dagflow.WaitForEvent{Name: "e", Key: "steps.a.result"}},
	}})
	if !errors.As(err, &ve) {
		t.Fatalf("Create = %v", err)
	}
	want := []string{
		"steps[0].waitForEvent.name: is required",
		"steps[0].waitForEvent.timeout: must not be negative, got -1s",
		"steps[1].sleep.seconds: must not be negative, got -1m0s",
		`steps[2].sleep.until: "tomorrow" must start with "context" or "steps"`,
		`steps[3].waitForEvent.key: "steps.a.result" goes through step "a", which is not a dependency of step "d" (add it to dependsOn)`,
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestManyWaitingRuns: ten thousand runs each sleeping or waiting for an
// event hold no goroutine, and an engine opened on their store starts within
// a second.
func TestManyWaitingRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 10,000 runs")
	}
	const n = 10_000
	path := filepath.Join(t.TempDir(), "flows.db")
	eng := openBolt(t, path)
	before := runtime.NumGoroutine()
	ctx := ctxT(t)
	var g errgroup.Group
	g.SetLimit(64)
	for i := range n {
		g.Go(func() error {
			w := dagflow.Workflow{ID: fmt.Sprintf("wait-%d", i), Context: json.RawMessage(fmt.Sprintf(`{"k":"%d"}`, i)), Steps: []dagflow.Step{
				{ID: "nap", Sleep: &dagflow.Sleep{Duration: time.Hour}},
			}}
			if i%2 == 1 {
				w.Steps[0] = dagflow.Step{ID: "wait", WaitForEvent: &dagflow.WaitForEvent{Name: "e", Key: "context.k"}}
			}
			_, err := eng.Create(ctx, w)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, fmt.Sprintf("wait-%d", n-1), func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateWaiting })
	if d := runtime.NumGoroutine() - before; d > 20 {
		t.Errorf("%d goroutines more with %d runs waiting", d, n)
	}
	eng.Close()
	start := time.Now()
	eng = openBolt(t, path)
	defer eng.Close()
	if el := time.Since(start); el > time.Second {
		t.Errorf("Open took %v with %d runs waiting", el, n)
	} else {
		t.Logf("Open took %v with %d runs waiting", el, n)
	}
	if err := eng.SendEvent(ctx, dagflow.Event{Name: "e", Key: "9999", Payload: json.RawMessage(`1`)}); err != nil {
		t.Fatal(err)
	}
	if st := dagflowtest.RequireCompleted(t, eng, "wait-9999"); string(st.Results["wait"]) != "1" {
		t.Errorf("result %s", st.Results["wait"])
	}
}
