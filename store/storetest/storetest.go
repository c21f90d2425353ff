// Package storetest is the conformance suite for store.Store implementations,
// in the manner of testing/fstest.TestFS: a store's own test calls Run with a
// function that opens a fresh, empty store, and every property a store must
// have is checked in a subtest of its own.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			return mystore.Open(t.TempDir())
//		})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/dagflow/dagflow/store"
)

// Run runs the conformance suite. open must return a new, empty store each
// time it is called; Run closes it when the subtest ends. Subtests run in
// parallel with one another.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"RunRoundTrip", testRunRoundTrip},
		{"NotFound", testNotFound},
		{"Spec", testSpec},
		{"StepsInIndexOrder", testStepsOrder},
		{"StepRoundTrip", testStepRoundTrip},
		{"ErrorRollsBack", testRollback},
		{"ViewIsReadOnly", testReadOnly},
		{"ContextDone", testContextDone},
		{"DueSteps", testDueSteps},
		{"DueStepsRollback", testDueRollback},
		{"DueStepsMoveAndClear", testDueMove},
		{"NextDue", testNextDue},
		{"ClaimsAreExclusive", testClaimsExclusive},
		{"Serializable", testSerializable},
		{"Attempts", testAttempts},
		{"Webhooks", testWebhooks},
		{"RunsQuery", testRunsQuery},
		{"DeleteRun", testDeleteRun},
		{"LargeValues", testLargeValues},
		{"ManySteps", testManySteps},
		{"Items", testItems},
		{"DueItems", testDueItems},
		{"Waiting", testWaiting},
		{"Events", testEvents},
		{"Schedules", testSchedules},
		{"Slots", testSlots},
		{"RunsFilters", testRunsFilters},
		{"Close", testClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			closed := false
			t.Cleanup(func() {
				if !closed {
					s.Close()
				}
			})
			if tc.name == "Close" {
				closed = true
			}
			tc.fn(t, s)
		})
	}
}

// base is a fixed instant, cut to microseconds: stores must keep at least
// microsecond precision.
var base = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func at(sec float64) time.Time { return base.Add(time.Duration(sec * float64(time.Second))) }

var cmpOpts = cmp.Options{
	cmpopts.EquateEmpty(),
	cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) }),
	cmp.Comparer(func(a, b json.RawMessage) bool { return jsonEqual(a, b) }),
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return string(a) == string(b)
	}
	return cmp.Equal(x, y)
}

func update(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s store.Store, fn func(store.Tx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatalf("View: %v", err)
	}
}

func sampleRun(id string, created time.Time) store.Run {
	return store.Run{
		ID: id, State: store.RunRunning, CreatedAt: created, StartedAt: created,
		Deadline: created.Add(time.Hour), UpdatedAt: created, Total: 3, Serial: -1,
	}
}

func sampleStep(runID string, i int) store.Step {
	return store.Step{RunID: runID, Index: i, ID: fmt.Sprintf("s%d", i), State: store.StepPending, Waiting: 1}
}

// putRun creates a run with n pending steps.
func putRun(t *testing.T, s store.Store, id string, created time.Time, n int) {
	t.Helper()
	update(t, s, func(tx store.Tx) error {
		r := sampleRun(id, created)
		r.Total = n
		if err := tx.PutRun(r); err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := tx.PutStep(sampleStep(id, i)); err != nil {
				return err
			}
		}
		return nil
	})
}

func testRunRoundTrip(t *testing.T, s store.Store) {
	want := store.Run{
		ID: "order-1", State: store.RunRunning, Phase: store.PhaseCompensating, Outcome: store.RunFailed,
		Error: "step \"ship\" failed", CreatedAt: at(0), StartedAt: at(1), CompletedAt: at(2.5),
		Deadline: at(86400), UpdatedAt: at(3), Generation: 2, Total: 5, Done: 3, Running: 1, Failed: 1,
		Seq: 7, Serial: 4, SerialQueue: []int{1, 3}, CompQueue: []store.Ref{{Index: 2}, {Index: 0, Item: 3}},
		Cause: store.CauseFailed, Parent: "batch-7", ParentIndex: 2, ParentItem: 5, ConcurrencyKey: "customer-9", Limit: 2,
		Trace: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	update(t, s, func(tx store.Tx) error { return tx.PutRun(want) })
	var got store.Run
	view(t, s, func(tx store.Tx) (err error) { got, err = tx.Run("order-1"); return })
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Fatalf("run round trip (-want +got):\n%s", d)
	}
	// Replace.
	want.State, want.Phase, want.Done = store.RunCompleted, store.PhaseActive, 5
	want.SerialQueue = nil
	update(t, s, func(tx store.Tx) error { return tx.PutRun(want) })
	view(t, s, func(tx store.Tx) (err error) { got, err = tx.Run("order-1"); return })
	if d := cmp.Diff(want, got, cmpOpts); d != "" {
		t.Fatalf("run after replace (-want +got):\n%s", d)
	}
}

func testNotFound(t *testing.T, s store.Store) {
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.Run("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Run(missing) = %v, want ErrNotFound", err)
		}
		if _, err := tx.Step("nope", 0, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Step(missing run) = %v, want ErrNotFound", err)
		}
		if _, err := tx.Spec("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Spec(missing) = %v, want ErrNotFound", err)
		}
		return nil
	})
	putRun(t, s, "r", at(0), 2)
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.Step("r", 2, 0); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Step(r, 2) of a 2-step run = %v, want ErrNotFound", err)
		}
		if _, err := tx.Spec("r"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Spec before PutSpec = %v, want ErrNotFound", err)
		}
		return nil
	})
	err := s.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteRun("nope") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteRun(missing) = %v, want ErrNotFound", err)
	}
	err = s.Update(context.Background(), func(tx store.Tx) error { return tx.PutStep(sampleStep("nope", 0)) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutStep of a missing run = %v, want ErrNotFound", err)
	}
}

func testSpec(t *testing.T, s store.Store) {
	putRun(t, s, "r", at(0), 1)
	spec := json.RawMessage(`{"id":"r","steps":[{"id":"a","handler":"h"}]}`)
	update(t, s, func(tx store.Tx) error { return tx.PutSpec("r", spec) })
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Spec("r")
		if err != nil || !jsonEqual(got, spec) {
			t.Errorf("Spec = %s, %v; want %s", got, err, spec)
		}
		return nil
	})
}

func testStepsOrder(t *testing.T, s store.Store) {
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutRun(sampleRun("r", at(0))); err != nil {
			return err
		}
		for _, i := range []int{2, 0, 11, 1, 10} {
			if err := tx.PutStep(sampleStep("r", i)); err != nil {
				return err
			}
		}
		return nil
	})
	putRun(t, s, "other", at(1), 3)
	view(t, s, func(tx store.Tx) error {
		steps, err := tx.Steps("r")
		if err != nil {
			return err
		}
		var idx []int
		for _, st := range steps {
			idx = append(idx, st.Index)
			if st.RunID != "r" {
				t.Errorf("Steps(r) returned a step of run %q", st.RunID)
			}
		}
		if d := cmp.Diff([]int{0, 1, 2, 10, 11}, idx); d != "" {
			t.Errorf("Steps order (-want +got):\n%s", d)
		}
		none, err := tx.Steps("missing")
		if err != nil || len(none) != 0 {
			t.Errorf("Steps(missing) = %v, %v; want empty, nil", none, err)
		}
		return nil
	})
}

func testStepRoundTrip(t *testing.T, s store.Store) {
	putRun(t, s, "r", at(0), 1)
	want := store.Step{
		RunID: "r", Index: 0, ID: "charge", State: store.StepCompleted, Waiting: 0, Attempts: 3,
		StartedAt: at(1), CompletedAt: at(2), Result: json.RawMessage(`{"amount":12.5,"ok":true}`),
		Error: "previous attempt: 503", Seq: 9, Owner: "engine-a", Token: 42, LeaseUntil: at(30),
		Comp: store.CompFailed, CompAttempts: 2, CompError: "refund: 500", CompStartedAt: at(5), CompEndedAt: at(6),
		Interruptions: 1, CompInterruptions: 1, Input: json.RawMessage(`{"sku":"a-1"}`),
		Items: 10, ItemsDone: 4, ItemsFailed: 1, ItemsRunning: 2, ItemsNext: 7,
	}
	update(t, s, func(tx store.Tx) error { return tx.PutStep(want) })
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Step("r", 0, 0)
		if err != nil {
			return err
		}
		if d := cmp.Diff(want, got, cmpOpts); d != "" {
			t.Errorf("step round trip (-want +got):\n%s", d)
		}
		return nil
	})
}

var errBoom = errors.New("boom")

func testRollback(t *testing.T, s store.Store) {
	putRun(t, s, "r", at(0), 2)
	err := s.Update(context.Background(), func(tx store.Tx) error {
		r, err := tx.Run("r")
		if err != nil {
			return err
		}
		r.Done = 99
		if err := tx.PutRun(r); err != nil {
			return err
		}
		if err := tx.PutRun(sampleRun("new", at(5))); err != nil {
			return err
		}
		st := sampleStep("r", 0)
		st.State, st.DueAt = store.StepReady, at(0)
		if err := tx.PutStep(st); err != nil {
			return err
		}
		if err := tx.PutStep(sampleStep("r", 5)); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.Attempt{RunID: "r", Index: 0, StepID: "s0", Number: 1}); err != nil {
			return err
		}
		if err := tx.PutWebhook(store.Webhook{ID: "complete/0", RunID: "r", DueAt: at(0)}); err != nil {
			return err
		}
		if err := tx.PutSpec("r", json.RawMessage(`{}`)); err != nil {
			return err
		}
		// Changes are visible inside the transaction.
		got, err := tx.Run("r")
		if err != nil || got.Done != 99 {
			t.Errorf("inside the transaction Run = %+v, %v; want Done 99", got, err)
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update returned %v, want fn's error", err)
	}
	view(t, s, func(tx store.Tx) error {
		r, err := tx.Run("r")
		if err != nil || r.Done != 0 {
			t.Errorf("run after rollback = %+v, %v; want Done 0", r, err)
		}
		if _, err := tx.Run("new"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("run inserted by a failed transaction: %v", err)
		}
		if runs, err := tx.Runs(store.RunQuery{}); err != nil || len(runs) != 1 || runs[0].ID != "r" {
			t.Errorf("runs listed after rollback = %+v, %v; want only r", runs, err)
		}
		steps, _ := tx.Steps("r")
		if len(steps) != 2 || steps[0].State != store.StepPending || !steps[0].DueAt.IsZero() {
			t.Errorf("steps after rollback = %+v", steps)
		}
		if due, _ := tx.DueSteps(at(100), 10); len(due) != 0 {
			t.Errorf("due steps after rollback = %+v", due)
		}
		if a, _ := tx.Attempts("r", -1); len(a) != 0 {
			t.Errorf("attempts after rollback = %+v", a)
		}
		if w, _ := tx.Webhooks("r"); len(w) != 0 {
			t.Errorf("webhooks after rollback = %+v", w)
		}
		if _, err := tx.Spec("r"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("spec after rollback: %v", err)
		}
		return nil
	})
}

func testReadOnly(t *testing.T, s store.Store) {
	putRun(t, s, "r", at(0), 1)
	view(t, s, func(tx store.Tx) error {
		for name, err := range map[string]error{
			"PutRun":     tx.PutRun(sampleRun("x", at(0))),
			"PutStep":    tx.PutStep(sampleStep("r", 0)),
			"PutSpec":    tx.PutSpec("r", json.RawMessage(`{}`)),
			"PutAttempt": tx.PutAttempt(store.Attempt{RunID: "r", Index: 0, Number: 1}),
			"PutWebhook": tx.PutWebhook(store.Webhook{ID: "w", RunID: "r"}),
			"DeleteRun":  tx.DeleteRun("r"),
			"PutEvent":   tx.PutEvent(store.Event{Name: "e", Key: "k", ID: "e1", Payload: json.RawMessage(`1`), SentAt: at(0)}),
			"DeleteEvents": func() error {
				_, err := tx.DeleteEvents(at(100), 10)
				return err
			}(),
			"PutSchedule":    tx.PutSchedule(store.Schedule{ID: "s", Cron: "@hourly", Workflow: json.RawMessage(`{}`), NextAt: at(1)}),
			"DeleteSchedule": tx.DeleteSchedule("s"),
			"PutSlots":       tx.PutSlots(store.Slots{Key: "k", Holders: []string{"r"}}),
		} {
			if !errors.Is(err, store.ErrReadOnly) {
				t.Errorf("%s in View = %v, want ErrReadOnly", name, err)
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.Run("x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("View wrote a run: %v", err)
		}
		return nil
	})
}

func testContextDone(t *testing.T, s store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	err := s.Update(ctx, func(tx store.Tx) error { called = true; return nil })
	if !errors.Is(err, context.Canceled) || called {
		t.Errorf("Update with a done context = %v (fn called: %v), want context.Canceled", err, called)
	}
	err = s.View(ctx, func(tx store.Tx) error { return nil })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("View with a done context = %v, want context.Canceled", err)
	}
}

func dueStep(runID string, i int, due time.Time) store.Step {
	st := sampleStep(runID, i)
	st.State, st.Waiting, st.DueAt = store.StepReady, 0, due
	return st
}

func ids(steps []store.Step) []string {
	var out []string
	for _, st := range steps {
		if st.Item > 0 {
			out = append(out, fmt.Sprintf("%s/%d#%d", st.RunID, st.Index, st.Item))
		} else {
			out = append(out, fmt.Sprintf("%s/%d", st.RunID, st.Index))
		}
	}
	return out
}

func item(runID string, index, item int) store.Step {
	return store.Step{RunID: runID, Index: index, Item: item, ID: fmt.Sprintf("s%d", index), State: store.StepPending,
		Input: json.RawMessage(fmt.Sprint(item * 10))}
}

func testDueSteps(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 4)
	putRun(t, s, "b", at(0), 2)
	update(t, s, func(tx store.Tx) error {
		for _, st := range []store.Step{dueStep("a", 0, at(3)), dueStep("a", 2, at(1)), dueStep("b", 1, at(2)), dueStep("a", 3, at(10))} {
			if err := tx.PutStep(st); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		due, err := tx.DueSteps(at(5), 10)
		if err != nil {
			return err
		}
		if d := cmp.Diff([]string{"a/2", "b/1", "a/0"}, ids(due)); d != "" {
			t.Errorf("DueSteps(now=5) (-want +got):\n%s", d)
		}
		due, _ = tx.DueSteps(at(5), 2)
		if d := cmp.Diff([]string{"a/2", "b/1"}, ids(due)); d != "" {
			t.Errorf("DueSteps(max=2) (-want +got):\n%s", d)
		}
		due, _ = tx.DueSteps(at(1), 10)
		if d := cmp.Diff([]string{"a/2"}, ids(due)); d != "" {
			t.Errorf("DueSteps(now=DueAt) includes the step due then (-want +got):\n%s", d)
		}
		if due, _ = tx.DueSteps(at(0.5), 10); len(due) != 0 {
			t.Errorf("DueSteps before anything is due = %v", ids(due))
		}
		if due, _ = tx.DueSteps(at(100), 0); len(due) != 0 {
			t.Errorf("DueSteps(max=0) = %v", ids(due))
		}
		return nil
	})
	// Claim two: write them back not due; the rest stay due.
	update(t, s, func(tx store.Tx) error {
		due, err := tx.DueSteps(at(5), 2)
		if err != nil {
			return err
		}
		for _, st := range due {
			st.State, st.DueAt, st.Owner = store.StepRunning, time.Time{}, "me"
			if err := tx.PutStep(st); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueSteps(at(100), 10)
		if d := cmp.Diff([]string{"a/0", "a/3"}, ids(due)); d != "" {
			t.Errorf("after claiming two (-want +got):\n%s", d)
		}
		return nil
	})
	// Claim one and write it back still due (a step parked for later).
	update(t, s, func(tx store.Tx) error {
		due, err := tx.DueSteps(at(100), 1)
		if err != nil || len(due) != 1 {
			return fmt.Errorf("DueSteps = %v, %v", ids(due), err)
		}
		due[0].DueAt = at(50)
		return tx.PutStep(due[0])
	})
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueSteps(at(100), 10)
		if d := cmp.Diff([]string{"a/3", "a/0"}, ids(due)); d != "" {
			t.Errorf("after parking a/0 until 50 (-want +got):\n%s", d)
		}
		return nil
	})
	// Write back unchanged: still due at the same time.
	update(t, s, func(tx store.Tx) error {
		due, err := tx.DueSteps(at(100), 10)
		if err != nil {
			return err
		}
		for _, st := range due {
			if err := tx.PutStep(st); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueSteps(at(100), 10)
		if d := cmp.Diff([]string{"a/3", "a/0"}, ids(due)); d != "" {
			t.Errorf("after writing due steps back unchanged (-want +got):\n%s", d)
		}
		return nil
	})
}

func testDueRollback(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 2)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutStep(dueStep("a", 0, at(1))); err != nil {
			return err
		}
		return tx.PutStep(dueStep("a", 1, at(2)))
	})
	err := s.Update(context.Background(), func(tx store.Tx) error {
		due, err := tx.DueSteps(at(5), 10)
		if err != nil || len(due) != 2 {
			t.Errorf("DueSteps = %v, %v", ids(due), err)
		}
		for _, st := range due {
			st.DueAt = time.Time{}
			if err := tx.PutStep(st); err != nil {
				return err
			}
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatalf("Update = %v", err)
	}
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueSteps(at(5), 10)
		if d := cmp.Diff([]string{"a/0", "a/1"}, ids(due)); d != "" {
			t.Errorf("due steps after a rolled-back claim (-want +got):\n%s", d)
		}
		return nil
	})
}

func testDueMove(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 3)
	update(t, s, func(tx store.Tx) error {
		for i := 0; i < 3; i++ {
			if err := tx.PutStep(dueStep("a", i, at(float64(i+1)))); err != nil {
				return err
			}
		}
		return nil
	})
	// Move step 0 later, clear step 1, keep step 2.
	update(t, s, func(tx store.Tx) error {
		st, err := tx.Step("a", 0, 0)
		if err != nil {
			return err
		}
		st.DueAt = at(10)
		if err := tx.PutStep(st); err != nil {
			return err
		}
		st, err = tx.Step("a", 1, 0)
		if err != nil {
			return err
		}
		st.DueAt, st.State = time.Time{}, store.StepSkipped
		return tx.PutStep(st)
	})
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueSteps(at(100), 10)
		if d := cmp.Diff([]string{"a/2", "a/0"}, ids(due)); d != "" {
			t.Errorf("due after moving and clearing (-want +got):\n%s", d)
		}
		due, _ = tx.DueSteps(at(5), 10)
		if d := cmp.Diff([]string{"a/2"}, ids(due)); d != "" {
			t.Errorf("due at 5 (-want +got):\n%s", d)
		}
		return nil
	})
}

func testNextDue(t *testing.T, s store.Store) {
	view(t, s, func(tx store.Tx) error {
		next, err := tx.NextDue()
		if err != nil || !next.IsZero() {
			t.Errorf("NextDue of an empty store = %v, %v; want zero", next, err)
		}
		return nil
	})
	putRun(t, s, "a", at(0), 2)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutStep(dueStep("a", 0, at(7))); err != nil {
			return err
		}
		return tx.PutWebhook(store.Webhook{ID: "complete/0", RunID: "a", DueAt: at(4)})
	})
	check := func(want time.Time) {
		t.Helper()
		for _, write := range []bool{false, true} {
			var next time.Time
			fn := func(tx store.Tx) (err error) { next, err = tx.NextDue(); return }
			if write {
				update(t, s, fn)
			} else {
				view(t, s, fn)
			}
			if !next.Equal(want) {
				t.Errorf("NextDue (write=%v) = %v, want %v", write, next, want)
			}
		}
	}
	check(at(4))
	update(t, s, func(tx store.Tx) error {
		return tx.PutWebhook(store.Webhook{ID: "complete/0", RunID: "a", DeliveredAt: at(5)})
	})
	check(at(7))
	update(t, s, func(tx store.Tx) error {
		st, _ := tx.Step("a", 0, 0)
		st.DueAt = time.Time{}
		return tx.PutStep(st)
	})
	check(time.Time{})
}

// testClaimsExclusive has many goroutines claim due steps at once, one per
// transaction: every step must be claimed exactly once.
func testClaimsExclusive(t *testing.T, s store.Store) {
	const n, workers = 200, 8
	putRun(t, s, "a", at(0), n)
	update(t, s, func(tx store.Tx) error {
		for i := 0; i < n; i++ {
			if err := tx.PutStep(dueStep("a", i, at(1))); err != nil {
				return err
			}
		}
		return nil
	})
	var mu sync.Mutex
	claimed := map[int]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for round := 0; ; round++ {
				if round > n {
					// Every round claims at least one step: a store whose
					// due index keeps the steps written back not due
					// would go on forever.
					errs <- fmt.Errorf("worker %d still claims after %d rounds: do steps written back without DueAt leave DueSteps?", w, round)
					return
				}
				var got []int
				err := s.Update(context.Background(), func(tx store.Tx) error {
					got = got[:0]
					due, err := tx.DueSteps(at(2), 3)
					if err != nil {
						return err
					}
					for _, st := range due {
						if st.State != store.StepReady {
							return fmt.Errorf("claimed %d in state %s", st.Index, st.State)
						}
						st.State, st.DueAt, st.Owner = store.StepRunning, time.Time{}, fmt.Sprint(w)
						if err := tx.PutStep(st); err != nil {
							return err
						}
						got = append(got, st.Index)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, i := range got {
					claimed[i]++
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		if claimed[i] != 1 {
			t.Errorf("step %d claimed %d times, want 1", i, claimed[i])
		}
	}
}

// testSerializable increments a counter in the run record from many
// goroutines with read-modify-write transactions: no increment may be lost.
func testSerializable(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 1)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				err := s.Update(context.Background(), func(tx store.Tx) error {
					r, err := tx.Run("a")
					if err != nil {
						return err
					}
					r.Done++
					st, err := tx.Step("a", 0, 0)
					if err != nil {
						return err
					}
					st.Attempts++
					if err := tx.PutStep(st); err != nil {
						return err
					}
					return tx.PutRun(r)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	view(t, s, func(tx store.Tx) error {
		r, _ := tx.Run("a")
		st, _ := tx.Step("a", 0, 0)
		if r.Done != workers*each || st.Attempts != workers*each {
			t.Errorf("after %d increments: run.Done = %d, step.Attempts = %d", workers*each, r.Done, st.Attempts)
		}
		return nil
	})
}

func testAttempts(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 3)
	a := func(i int, comp bool, gen, n int) store.Attempt {
		return store.Attempt{RunID: "a", Index: i, StepID: fmt.Sprintf("s%d", i), Compensation: comp, Generation: gen, Number: n, StartedAt: at(float64(n))}
	}
	full := a(1, false, 0, 1)
	full.Owner, full.EndedAt, full.Error, full.StatusCode, full.Duration = "e1", at(2), "503 Service Unavailable", 503, 1500*time.Millisecond
	full.Logs = []store.LogLine{{Time: at(1.5), Level: "INFO", Message: "charging", Attrs: "amount=12"}}
	full.LogsCut = true
	full.Interrupted = true
	update(t, s, func(tx store.Tx) error {
		for _, x := range []store.Attempt{a(2, false, 0, 1), a(1, true, 0, 1), a(1, false, 1, 1), a(1, false, 0, 2), full} {
			if err := tx.PutAttempt(x); err != nil {
				return err
			}
		}
		return nil
	})
	// Replace attempt 2 of step 1 (it ended).
	ended := a(1, false, 0, 2)
	ended.EndedAt = at(9)
	update(t, s, func(tx store.Tx) error { return tx.PutAttempt(ended) })
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Attempts("a", 1)
		if err != nil {
			return err
		}
		want := []store.Attempt{full, ended, a(1, false, 1, 1), a(1, true, 0, 1)}
		if d := cmp.Diff(want, got, cmpOpts); d != "" {
			t.Errorf("Attempts(a, 1) (-want +got):\n%s", d)
		}
		all, err := tx.Attempts("a", -1)
		if err != nil {
			return err
		}
		if len(all) != 5 || all[4].Index != 2 {
			t.Errorf("Attempts(a, -1) = %d attempts, want 5 ending with step 2", len(all))
		}
		return nil
	})
	// Attempts of items come after the step's own, in item order.
	it := func(item, n int) store.Attempt {
		x := a(1, false, 0, n)
		x.Item = item
		return x
	}
	update(t, s, func(tx store.Tx) error {
		for _, x := range []store.Attempt{it(2, 1), it(1, 2), it(1, 1)} {
			if err := tx.PutAttempt(x); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Attempts("a", 1)
		if err != nil {
			return err
		}
		want := []store.Attempt{full, ended, a(1, false, 1, 1), a(1, true, 0, 1), it(1, 1), it(1, 2), it(2, 1)}
		if d := cmp.Diff(want, got, cmpOpts); d != "" {
			t.Errorf("Attempts(a, 1) with items (-want +got):\n%s", d)
		}
		return nil
	})
}

func testWebhooks(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 1)
	w1 := store.Webhook{ID: "error/0", RunID: "a", URL: "https://app.example/hooks/failed", Event: "error",
		Body: json.RawMessage(`{"id":"a","state":"failed"}`), Attempts: 2, DueAt: at(3), CreatedAt: at(1), LastError: "503"}
	w2 := store.Webhook{ID: "complete/1", RunID: "a", URL: "https://app.example/hooks/done", Event: "complete",
		Body: json.RawMessage(`{}`), DueAt: at(2), CreatedAt: at(2)}
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutWebhook(w1); err != nil {
			return err
		}
		return tx.PutWebhook(w2)
	})
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Webhooks("a")
		if err != nil {
			return err
		}
		if d := cmp.Diff([]store.Webhook{w2, w1}, got, cmpOpts); d != "" {
			t.Errorf("Webhooks (-want +got):\n%s", d)
		}
		due, _ := tx.DueWebhooks(at(2.5), 10)
		if len(due) != 1 || due[0].ID != "complete/1" {
			t.Errorf("DueWebhooks(2.5) = %+v", due)
		}
		return nil
	})
	// Deliver w2: no longer due.
	update(t, s, func(tx store.Tx) error {
		due, err := tx.DueWebhooks(at(10), 10)
		if err != nil || len(due) != 2 {
			return fmt.Errorf("DueWebhooks = %d, %v", len(due), err)
		}
		for _, w := range due {
			if w.ID == "complete/1" {
				w.DueAt, w.DeliveredAt = time.Time{}, at(10)
			}
			if err := tx.PutWebhook(w); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueWebhooks(at(10), 10)
		if len(due) != 1 || due[0].ID != "error/0" {
			t.Errorf("DueWebhooks after delivery = %+v", due)
		}
		return nil
	})
}

func testRunsQuery(t *testing.T, s store.Store) {
	type r struct {
		id    string
		at    float64
		state store.RunState
	}
	runs := []r{{"order-1", 1, store.RunCompleted}, {"order-2", 2, store.RunFailed}, {"invoice-1", 3, store.RunRunning},
		{"order-3", 3, store.RunRunning}, {"order-4", 4, store.RunFailed}}
	update(t, s, func(tx store.Tx) error {
		for _, x := range runs {
			run := sampleRun(x.id, at(x.at))
			run.State = x.state
			if err := tx.PutRun(run); err != nil {
				return err
			}
		}
		return nil
	})
	list := func(q store.RunQuery) []string {
		var out []store.Run
		view(t, s, func(tx store.Tx) (err error) { out, err = tx.Runs(q); return })
		var names []string
		for _, x := range out {
			names = append(names, x.ID)
		}
		return names
	}
	tests := []struct {
		name string
		q    store.RunQuery
		want []string
	}{
		{"all newest first", store.RunQuery{}, []string{"order-4", "order-3", "invoice-1", "order-2", "order-1"}},
		{"state", store.RunQuery{State: store.RunFailed}, []string{"order-4", "order-2"}},
		{"id contains", store.RunQuery{IDContains: "order"}, []string{"order-4", "order-3", "order-2", "order-1"}},
		{"limit", store.RunQuery{Limit: 2}, []string{"order-4", "order-3"}},
		{"before same time", store.RunQuery{Before: &store.Cursor{CreatedAt: at(3), ID: "order-3"}}, []string{"invoice-1", "order-2", "order-1"}},
		{"before and filters", store.RunQuery{Before: &store.Cursor{CreatedAt: at(3), ID: "invoice-1"}, State: store.RunFailed, Limit: 5}, []string{"order-2"}},
		{"nothing", store.RunQuery{IDContains: "zzz"}, nil},
		{"before the oldest", store.RunQuery{Before: &store.Cursor{CreatedAt: at(1), ID: "order-1"}}, nil},
	}
	for _, tc := range tests {
		if d := cmp.Diff(tc.want, list(tc.q), cmpopts.EquateEmpty()); d != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, d)
		}
	}
	// Paging through everything two at a time visits each run once.
	var seen []string
	var cur *store.Cursor
	for pages := 0; ; pages++ {
		if pages > len(runs) {
			t.Fatalf("paging did not end after %d pages of 2 (does Runs ignore RunQuery.Before?): %v", pages, seen)
		}
		var page []store.Run
		view(t, s, func(tx store.Tx) (err error) { page, err = tx.Runs(store.RunQuery{Before: cur, Limit: 2}); return })
		if len(page) == 0 {
			break
		}
		for _, x := range page {
			seen = append(seen, x.ID)
		}
		last := page[len(page)-1]
		cur = &store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
	if d := cmp.Diff(list(store.RunQuery{}), seen); d != "" {
		t.Errorf("paging (-want +got):\n%s", d)
	}
}

func testDeleteRun(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 2)
	putRun(t, s, "b", at(1), 1)
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutSpec("a", json.RawMessage(`{"id":"a"}`)); err != nil {
			return err
		}
		if err := tx.PutStep(dueStep("a", 0, at(1))); err != nil {
			return err
		}
		if err := tx.PutAttempt(store.Attempt{RunID: "a", Index: 1, Number: 1}); err != nil {
			return err
		}
		return tx.PutWebhook(store.Webhook{ID: "complete/0", RunID: "a", DueAt: at(1)})
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteRun("a") })
	view(t, s, func(tx store.Tx) error {
		if _, err := tx.Run("a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Run after delete: %v", err)
		}
		if _, err := tx.Spec("a"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Spec after delete: %v", err)
		}
		if steps, _ := tx.Steps("a"); len(steps) != 0 {
			t.Errorf("Steps after delete = %d", len(steps))
		}
		if a, _ := tx.Attempts("a", -1); len(a) != 0 {
			t.Errorf("Attempts after delete = %d", len(a))
		}
		if due, _ := tx.DueSteps(at(10), 10); len(due) != 0 {
			t.Errorf("DueSteps after delete = %v", ids(due))
		}
		if due, _ := tx.DueWebhooks(at(10), 10); len(due) != 0 {
			t.Errorf("DueWebhooks after delete = %v", due)
		}
		if runs, _ := tx.Runs(store.RunQuery{}); len(runs) != 1 || runs[0].ID != "b" {
			t.Errorf("Runs after delete = %v", runs)
		}
		return nil
	})
	// The id can be used again.
	putRun(t, s, "a", at(2), 1)
	view(t, s, func(tx store.Tx) error {
		steps, _ := tx.Steps("a")
		if len(steps) != 1 {
			t.Errorf("recreated run has %d steps, want 1", len(steps))
		}
		return nil
	})
}

func testLargeValues(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 1)
	big := json.RawMessage(`"` + strings.Repeat("x", 2<<20) + `"`)
	st := sampleStep("a", 0)
	st.Result = big
	update(t, s, func(tx store.Tx) error { return tx.PutStep(st) })
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Step("a", 0, 0)
		if err != nil || len(got.Result) != len(big) {
			t.Errorf("2 MiB result came back with %d bytes, %v", len(got.Result), err)
		}
		return nil
	})
}

func testManySteps(t *testing.T, s store.Store) {
	const n = 5000
	putRun(t, s, "big", at(0), n)
	view(t, s, func(tx store.Tx) error {
		steps, err := tx.Steps("big")
		if err != nil || len(steps) != n || steps[n-1].Index != n-1 {
			t.Errorf("Steps of a %d-step run: %d, %v", n, len(steps), err)
		}
		return nil
	})
}

func testClose(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Update(context.Background(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Update after Close = %v, want ErrClosed", err)
	}
	if err := s.View(context.Background(), func(store.Tx) error { return nil }); !errors.Is(err, store.ErrClosed) {
		t.Errorf("View after Close = %v, want ErrClosed", err)
	}
}

// testItems: the items of a map step are records of their own, apart from
// the steps: Steps does not list them, Items lists one step's in order.
func testItems(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 3)
	update(t, s, func(tx store.Tx) error {
		for _, x := range []store.Step{item("a", 1, 3), item("a", 1, 1), item("a", 1, 12), item("a", 2, 1)} {
			if err := tx.PutStep(x); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		steps, err := tx.Steps("a")
		if err != nil || len(steps) != 3 {
			t.Errorf("Steps with items stored = %v, %v; want the 3 steps", ids(steps), err)
		}
		items, err := tx.Items("a", 1)
		if err != nil {
			return err
		}
		if d := cmp.Diff([]string{"a/1#1", "a/1#3", "a/1#12"}, ids(items)); d != "" {
			t.Errorf("Items(a, 1) (-want +got):\n%s", d)
		}
		got, err := tx.Step("a", 1, 3)
		if err != nil || string(got.Input) != "30" {
			t.Errorf("Step(a, 1, 3) = %+v, %v", got, err)
		}
		st, err := tx.Step("a", 1, 0)
		if err != nil || st.Item != 0 || st.ID != "s1" {
			t.Errorf("Step(a, 1, 0) = %+v, %v; want the step itself", st, err)
		}
		if _, err := tx.Step("a", 1, 2); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Step of a missing item = %v, want ErrNotFound", err)
		}
		if none, err := tx.Items("a", 0); err != nil || len(none) != 0 {
			t.Errorf("Items of a step without = %v, %v", ids(none), err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteRun("a") })
	view(t, s, func(tx store.Tx) error {
		if items, _ := tx.Items("a", 1); len(items) != 0 {
			t.Errorf("Items after DeleteRun = %v", ids(items))
		}
		return nil
	})
	err := s.Update(context.Background(), func(tx store.Tx) error { return tx.PutStep(item("gone", 0, 1)) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("PutStep of an item of a missing run = %v, want ErrNotFound", err)
	}
}

// testDueItems: items are in the due index with the steps.
func testDueItems(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 2)
	update(t, s, func(tx store.Tx) error {
		for _, x := range []store.Step{dueStep("a", 0, at(3))} {
			if err := tx.PutStep(x); err != nil {
				return err
			}
		}
		for i, due := range []float64{2, 4} {
			it := item("a", 1, i+1)
			it.State, it.DueAt = store.StepReady, at(due)
			if err := tx.PutStep(it); err != nil {
				return err
			}
		}
		return nil
	})
	view(t, s, func(tx store.Tx) error {
		due, err := tx.DueSteps(at(10), 10)
		if err != nil {
			return err
		}
		if d := cmp.Diff([]string{"a/1#1", "a/0", "a/1#2"}, ids(due)); d != "" {
			t.Errorf("DueSteps with items (-want +got):\n%s", d)
		}
		next, _ := tx.NextDue()
		if !next.Equal(at(2)) {
			t.Errorf("NextDue = %v, want the first item's %v", next, at(2))
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error {
		it, err := tx.Step("a", 1, 1)
		if err != nil {
			return err
		}
		it.DueAt, it.State = time.Time{}, store.StepRunning
		return tx.PutStep(it)
	})
	view(t, s, func(tx store.Tx) error {
		due, _ := tx.DueSteps(at(10), 10)
		if d := cmp.Diff([]string{"a/0", "a/1#2"}, ids(due)); d != "" {
			t.Errorf("DueSteps after claiming an item (-want +got):\n%s", d)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteRun("a") })
	view(t, s, func(tx store.Tx) error {
		if due, _ := tx.DueSteps(at(10), 10); len(due) != 0 {
			t.Errorf("DueSteps after DeleteRun = %v", ids(due))
		}
		return nil
	})
}

// testWaiting: steps and items waiting for an event are found by its name
// and key while they wait, and not once they stop waiting.
func testWaiting(t *testing.T, s store.Store) {
	putRun(t, s, "a", at(0), 3)
	putRun(t, s, "b", at(0), 1)
	wait := func(st store.Step, name, key string) store.Step {
		st.State, st.Event, st.EventKey = store.StepWaiting, name, key
		return st
	}
	update(t, s, func(tx store.Tx) error {
		for _, x := range []store.Step{
			wait(sampleStep("a", 0), "approved", "order-1"),
			wait(sampleStep("a", 1), "approved", "order-2"),
			wait(sampleStep("b", 0), "approved", "order-1"),
			wait(item("a", 2, 1), "approved", "order-1"),
			wait(sampleStep("a", 2), "paid", "order-1"),
		} {
			if err := tx.PutStep(x); err != nil {
				return err
			}
		}
		return nil
	})
	waiting := func(name, key string) []string {
		var out []store.Step
		view(t, s, func(tx store.Tx) (err error) { out, err = tx.Waiting(name, key); return })
		got := ids(out)
		slices.Sort(got)
		return got
	}
	if d := cmp.Diff([]string{"a/0", "a/2#1", "b/0"}, waiting("approved", "order-1")); d != "" {
		t.Errorf("Waiting(approved, order-1) (-want +got):\n%s", d)
	}
	if got := waiting("approved", ""); len(got) != 0 {
		t.Errorf("Waiting with an empty key = %v", got)
	}
	if got := waiting("approve", "order-1"); len(got) != 0 {
		t.Errorf("Waiting for another name = %v", got)
	}
	// Completed: no longer waiting. Key changed: found under the new one.
	update(t, s, func(tx store.Tx) error {
		st, err := tx.Step("a", 0, 0)
		if err != nil {
			return err
		}
		st.State = store.StepCompleted
		if err := tx.PutStep(st); err != nil {
			return err
		}
		st, err = tx.Step("b", 0, 0)
		if err != nil {
			return err
		}
		st.EventKey = "order-3"
		return tx.PutStep(st)
	})
	if d := cmp.Diff([]string{"a/2#1"}, waiting("approved", "order-1")); d != "" {
		t.Errorf("Waiting after changes (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"b/0"}, waiting("approved", "order-3")); d != "" {
		t.Errorf("Waiting under the new key (-want +got):\n%s", d)
	}
	// A rolled-back change leaves the index as it was.
	err := s.Update(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("a", 1, 0)
		if err != nil {
			return err
		}
		st.State = store.StepCompleted
		if err := tx.PutStep(st); err != nil {
			return err
		}
		return errBoom
	})
	if !errors.Is(err, errBoom) {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"a/1"}, waiting("approved", "order-2")); d != "" {
		t.Errorf("Waiting after a rollback (-want +got):\n%s", d)
	}
	update(t, s, func(tx store.Tx) error { return tx.DeleteRun("a") })
	if got := waiting("approved", "order-1"); len(got) != 0 {
		t.Errorf("Waiting after DeleteRun = %v", got)
	}
}

// testEvents: events are kept by name and key, listed oldest first from a
// time on, and deleted in batches by age.
func testEvents(t *testing.T, s store.Store) {
	ev := func(name, key, id string, sec float64) store.Event {
		return store.Event{Name: name, Key: key, ID: id, Payload: json.RawMessage(`{"by":"` + id + `"}`), SentAt: at(sec)}
	}
	update(t, s, func(tx store.Tx) error {
		for _, e := range []store.Event{ev("approved", "o1", "c", 3), ev("approved", "o1", "a", 1), ev("approved", "o1", "b", 1),
			ev("approved", "o2", "d", 2), ev("paid", "o1", "e", 2), ev("approved", "", "f", 2)} {
			if err := tx.PutEvent(e); err != nil {
				return err
			}
		}
		return nil
	})
	list := func(name, key string, since float64) []string {
		var out []store.Event
		view(t, s, func(tx store.Tx) (err error) { out, err = tx.Events(name, key, at(since)); return })
		var got []string
		for _, e := range out {
			got = append(got, e.ID)
		}
		return got
	}
	if d := cmp.Diff([]string{"a", "b", "c"}, list("approved", "o1", 0)); d != "" {
		t.Errorf("Events(approved, o1) (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"c"}, list("approved", "o1", 2)); d != "" {
		t.Errorf("Events since 2 (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"a", "b", "c"}, list("approved", "o1", 1)); d != "" {
		t.Errorf("Events since the time of the first, included (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"f"}, list("approved", "", 0)); d != "" {
		t.Errorf("Events with an empty key (-want +got):\n%s", d)
	}
	view(t, s, func(tx store.Tx) error {
		out, err := tx.Events("approved", "o1", at(0))
		if err != nil || len(out) == 0 || !jsonEqual(out[0].Payload, json.RawMessage(`{"by":"a"}`)) || out[0].Name != "approved" || out[0].Key != "o1" || !out[0].SentAt.Equal(at(1)) {
			t.Errorf("event round trip: %+v, %v", out, err)
		}
		return nil
	})
	var n int
	update(t, s, func(tx store.Tx) (err error) { n, err = tx.DeleteEvents(at(2.5), 2); return })
	if n != 2 {
		t.Errorf("DeleteEvents(before 2.5, max 2) = %d, want 2", n)
	}
	update(t, s, func(tx store.Tx) (err error) { n, err = tx.DeleteEvents(at(2.5), 100); return })
	if n != 3 {
		t.Errorf("DeleteEvents(before 2.5) again = %d, want the 3 left", n)
	}
	if d := cmp.Diff([]string{"c"}, list("approved", "o1", 0)); d != "" {
		t.Errorf("Events after deleting the old ones (-want +got):\n%s", d)
	}
}

// testSchedules: schedules round-trip, list by id, and delete.
func testSchedules(t *testing.T, s store.Store) {
	want := store.Schedule{ID: "nightly", Cron: "0 2 * * *", Timezone: "Europe/Paris", Workflow: json.RawMessage(`{"steps":[{"id":"a","handler":"h"}]}`),
		NextAt: at(100), LastAt: at(10), CreatedAt: at(1)}
	update(t, s, func(tx store.Tx) error {
		if err := tx.PutSchedule(store.Schedule{ID: "hourly", Cron: "@hourly", NextAt: at(5)}); err != nil {
			return err
		}
		return tx.PutSchedule(want)
	})
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Schedule("nightly")
		if err != nil {
			return err
		}
		if d := cmp.Diff(want, got, cmpOpts); d != "" {
			t.Errorf("schedule round trip (-want +got):\n%s", d)
		}
		all, err := tx.Schedules()
		if err != nil || len(all) != 2 || all[0].ID != "hourly" || all[1].ID != "nightly" {
			t.Errorf("Schedules = %+v, %v", all, err)
		}
		if _, err := tx.Schedule("nope"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Schedule(missing) = %v", err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.DeleteSchedule("hourly") })
	err := s.Update(context.Background(), func(tx store.Tx) error { return tx.DeleteSchedule("hourly") })
	if !errors.Is(err, store.ErrNotFound) {
		t.Errorf("DeleteSchedule twice = %v, want ErrNotFound", err)
	}
	view(t, s, func(tx store.Tx) error {
		all, _ := tx.Schedules()
		if len(all) != 1 {
			t.Errorf("Schedules after delete = %+v", all)
		}
		return nil
	})
}

// testSlots: the concurrency slots of a key round-trip; one with no holder
// and no queue reads as not found.
func testSlots(t *testing.T, s store.Store) {
	want := store.Slots{Key: "customer-1", Holders: []string{"r1", "r2"}, Queue: []string{"r3", "r4"}}
	update(t, s, func(tx store.Tx) error { return tx.PutSlots(want) })
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Slots("customer-1")
		if d := cmp.Diff(want, got, cmpOpts); err != nil || d != "" {
			t.Errorf("slots round trip (-want +got):\n%s %v", d, err)
		}
		if _, err := tx.Slots("customer-2"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Slots of an unknown key = %v", err)
		}
		return nil
	})
	update(t, s, func(tx store.Tx) error { return tx.PutSlots(store.Slots{Key: "customer-1"}) })
	view(t, s, func(tx store.Tx) error {
		got, err := tx.Slots("customer-1")
		if err == nil && (len(got.Holders) > 0 || len(got.Queue) > 0) {
			t.Errorf("emptied slots = %+v", got)
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Errorf("emptied slots: %v", err)
		}
		return nil
	})
}

// testRunsFilters: RunQuery's Parent and EndedBefore.
func testRunsFilters(t *testing.T, s store.Store) {
	update(t, s, func(tx store.Tx) error {
		for _, r := range []store.Run{
			{ID: "p", State: store.RunCompleted, CreatedAt: at(1), CompletedAt: at(5)},
			{ID: "p/a", State: store.RunCompleted, CreatedAt: at(2), CompletedAt: at(4), Parent: "p"},
			{ID: "p/b/0", State: store.RunFailed, CreatedAt: at(3), CompletedAt: at(9), Parent: "p"},
			{ID: "q", State: store.RunRunning, CreatedAt: at(4)},
		} {
			if err := tx.PutRun(r); err != nil {
				return err
			}
		}
		return nil
	})
	list := func(q store.RunQuery) []string {
		var out []store.Run
		view(t, s, func(tx store.Tx) (err error) { out, err = tx.Runs(q); return })
		var names []string
		for _, x := range out {
			names = append(names, x.ID)
		}
		return names
	}
	if d := cmp.Diff([]string{"p/b/0", "p/a"}, list(store.RunQuery{Parent: "p"})); d != "" {
		t.Errorf("Runs(Parent: p) (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"p/a", "p"}, list(store.RunQuery{EndedBefore: at(6)})); d != "" {
		t.Errorf("Runs(EndedBefore: 6) (-want +got):\n%s", d)
	}
	if got := list(store.RunQuery{EndedBefore: at(4)}); len(got) != 0 {
		t.Errorf("Runs(EndedBefore: 4) = %v, want none (ended at 4 is not before 4)", got)
	}
}
