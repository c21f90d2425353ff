// Package dagflowtest helps test code that uses dagflow: an engine on the
// memory store with a clock the test moves (so that a day-long sleep, a
// week-long wait or a nightly schedule takes milliseconds), step handlers
// that return scripted results or errors attempt by attempt, and assertions
// on a run's outcome that take a testing.TB.
//
//	eng, clock := dagflowtest.NewEngine(t)
//	charge := dagflowtest.Script(dagflowtest.Fail(errors.New("503")), dagflowtest.Return(map[string]any{"id": "ch_1"}))
//	eng.Handle("charge", charge.Handler)
//	...
//	clock.Advance(24 * time.Hour)
//	st := dagflowtest.RequireCompleted(t, eng, "order-1")
//	dagflowtest.RequireStepAttempts(t, st, "charge", 2)
package dagflowtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// Clock is a dagflow.Clock that stands still until the test moves it. It is
// safe for concurrent use.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
}

type timer struct {
	c    *Clock
	at   time.Time
	f    func()
	done bool
}

// NewClock returns a clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc calls f, in a goroutine of its own, once the clock has been moved
// d past now.
func (c *Clock) AfterFunc(d time.Duration, f func()) dagflow.Timer {
	c.mu.Lock()
	t := &timer{c: c, at: c.now.Add(d), f: f}
	fire := d <= 0
	if fire {
		t.done = true
	} else {
		c.timers = append(c.timers, t)
	}
	c.mu.Unlock()
	if fire {
		go f()
	}
	return t
}

// Stop stops the timer; it reports whether it stopped it before it fired.
func (t *timer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	if t.done {
		return false
	}
	t.done = true
	t.c.timers = slices.DeleteFunc(t.c.timers, func(x *timer) bool { return x == t })
	return true
}

// Advance moves the clock d forward and fires the timers that fell due.
func (c *Clock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Set moves the clock to t (never back) and fires the timers that fell due.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	if t.After(c.now) {
		c.now = t
	}
	var due []*timer
	keep := c.timers[:0]
	for _, x := range c.timers {
		if !x.at.After(c.now) {
			x.done = true
			due = append(due, x)
		} else {
			keep = append(keep, x)
		}
	}
	c.timers = keep
	c.mu.Unlock()
	for _, x := range due {
		go x.f()
	}
}

// NewEngine opens an engine on a new memory store whose clock is a Clock
// reading 2026-01-01 00:00 UTC, with opts after those; it closes the engine
// when the test ends.
func NewEngine(t testing.TB, opts ...dagflow.Option) (*dagflow.Engine, *Clock) {
	t.Helper()
	clock := NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	eng, err := dagflow.Open(append([]dagflow.Option{dagflow.WithStore(memory.New()), dagflow.WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng, clock
}

// Outcome is what a scripted handler does on one attempt.
type Outcome struct {
	result any
	err    error
	wait   time.Duration
}

// Return makes an attempt complete with v.
func Return(v any) Outcome { return Outcome{result: v} }

// Fail makes an attempt fail with err (wrap it with dagflow.Permanent for a
// failure not worth retrying).
func Fail(err error) Outcome { return Outcome{err: err} }

// Wait makes an attempt take d (real time, or until its context ends)
// before it does what o does.
func Wait(d time.Duration, o Outcome) Outcome { o.wait = d; return o }

// Stub is a step handler that plays a script: attempt n of a step (counted by
// the stub, across runs and steps) gets the nth outcome, and every attempt
// after the last gets the last. It records its calls. It is safe for
// concurrent use.
type Stub struct {
	mu     sync.Mutex
	script []Outcome
	calls  []dagflow.Input
}

// Script returns a Stub that plays outcomes in order.
func Script(outcomes ...Outcome) *Stub {
	if len(outcomes) == 0 {
		outcomes = []Outcome{Return(nil)}
	}
	return &Stub{script: outcomes}
}

// Handler is the stub's dagflow.HandlerFunc.
func (s *Stub) Handler(ctx context.Context, in dagflow.Input) (any, error) {
	s.mu.Lock()
	o := s.script[min(len(s.calls), len(s.script)-1)]
	s.calls = append(s.calls, in)
	s.mu.Unlock()
	if o.wait > 0 {
		select {
		case <-time.After(o.wait):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return o.result, o.err
}

// Calls returns the inputs of the calls so far, in order.
func (s *Stub) Calls() []dagflow.Input {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// waitTimeout bounds how long the Require functions wait for a run to end.
const waitTimeout = 10 * time.Second

// Final waits (up to ten seconds) for a run to exist and end, and returns its
// status, failing the test if it does not.
func Final(t testing.TB, eng *dagflow.Engine, runID string) *dagflow.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	st, err := eng.Wait(ctx, runID)
	for errors.Is(err, dagflow.ErrNotFound) && ctx.Err() == nil {
		time.Sleep(2 * time.Millisecond) // a run a schedule or a parent is about to create
		st, err = eng.Wait(ctx, runID)
	}
	if err != nil {
		cur, _ := eng.Status(context.Background(), runID)
		t.Fatalf("run %q did not end: %v (status %s)", runID, err, describe(cur))
	}
	return st
}

// RequireCompleted waits for a run to end and fails the test unless it
// completed.
func RequireCompleted(t testing.TB, eng *dagflow.Engine, runID string) *dagflow.Status {
	t.Helper()
	st := Final(t, eng, runID)
	if st.State != dagflow.StateCompleted {
		t.Fatalf("run %q ended %s, want completed: %s", runID, st.State, describe(st))
	}
	return st
}

// RequireFailed waits for a run to end and fails the test unless it failed.
func RequireFailed(t testing.TB, eng *dagflow.Engine, runID string) *dagflow.Status {
	t.Helper()
	st := Final(t, eng, runID)
	if st.State != dagflow.StateFailed {
		t.Fatalf("run %q ended %s, want failed: %s", runID, st.State, describe(st))
	}
	return st
}

// RequireStepAttempts fails the test unless the step made n attempts.
func RequireStepAttempts(t testing.TB, st *dagflow.Status, stepID string, n int) {
	t.Helper()
	s := step(t, st, stepID)
	if s.Attempts != n {
		t.Fatalf("step %q of run %q made %d attempts, want %d (%s)", stepID, st.ID, s.Attempts, n, s.Error)
	}
}

// RequireStepState fails the test unless the step is in state want.
func RequireStepState(t testing.TB, st *dagflow.Status, stepID string, want dagflow.State) {
	t.Helper()
	if s := step(t, st, stepID); s.State != want {
		t.Fatalf("step %q of run %q is %s, want %s (%s)", stepID, st.ID, s.State, want, s.Error)
	}
}

// RequireCompensated fails the test unless the run's saga compensated
// exactly the given steps, in that order.
func RequireCompensated(t testing.TB, st *dagflow.Status, stepIDs ...string) {
	t.Helper()
	if !slices.Equal(st.CompensatedSteps, stepIDs) {
		t.Fatalf("run %q compensated %q, want %q", st.ID, st.CompensatedSteps, stepIDs)
	}
}

// WaitFor waits (up to ten seconds) until a run's status satisfies ok, and
// returns it; it fails the test if it never does.
func WaitFor(t testing.TB, eng *dagflow.Engine, runID string, ok func(*dagflow.Status) bool) *dagflow.Status {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		st, err := eng.Status(context.Background(), runID)
		if err == nil && ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %q: condition not met in %v: %v, %s", runID, waitTimeout, err, describe(st))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func step(t testing.TB, st *dagflow.Status, id string) *dagflow.StepStatus {
	t.Helper()
	for i := range st.Steps {
		if st.Steps[i].ID == id {
			return &st.Steps[i]
		}
	}
	t.Fatalf("run %q has no step %q", st.ID, id)
	return nil
}

func describe(st *dagflow.Status) string {
	if st == nil {
		return "(none)"
	}
	s := fmt.Sprintf("%s %q;", st.State, st.Error)
	for _, x := range st.Steps {
		s += fmt.Sprintf(" %s=%s", x.ID, x.State)
	}
	return s
}
