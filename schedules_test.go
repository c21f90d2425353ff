package dagflow_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
)

// runIDs lists the ids of the runs whose id starts with prefix, sorted.
func runIDs(t *testing.T, eng *dagflow.Engine, prefix string) []string {
	t.Helper()
	list, err := eng.List(ctxT(t), dagflow.ListOptions{IDContains: prefix, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range list.Runs {
		if strings.HasPrefix(r.ID, prefix) {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// TestSchedule: a schedule creates a run "<id>/<tick>" at each tick; ticks
// missed (the clock jumped) are not replayed, except the latest.
func TestSchedule(t *testing.T) {
	eng, clock := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "h", dagflowtest.Script().Handler)
	ctx := ctxT(t)
	// The clock reads 2026-01-01 00:00 UTC.
	if err := eng.Schedule(ctx, dagflow.Schedule{ID: "hourly", Cron: "0 * * * *",
		Workflow: dagflow.Workflow{Steps: []dagflow.Step{handlerStep("a", "h")}}}); err != nil {
		t.Fatal(err)
	}
	list, err := eng.Schedules(ctx)
	if err != nil || len(list) != 1 || !list[0].Next.Equal(time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("Schedules = %+v, %v", list, err)
	}
	clock.Advance(time.Hour)
	dagflowtest.RequireCompleted(t, eng, "hourly/2026-01-01T01:00:00Z")
	clock.Advance(5*time.Hour + 30*time.Minute) // four ticks missed, then 06:00
	dagflowtest.RequireCompleted(t, eng, "hourly/2026-01-01T06:00:00Z")
	time.Sleep(20 * time.Millisecond)
	if d := cmp.Diff([]string{"hourly/2026-01-01T01:00:00Z", "hourly/2026-01-01T06:00:00Z"}, runIDs(t, eng, "hourly/")); d != "" {
		t.Errorf("runs (-want +got):\n%s", d)
	}
	if err := eng.Unschedule(ctx, "hourly"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Hour)
	time.Sleep(20 * time.Millisecond)
	if n := len(runIDs(t, eng, "hourly/")); n != 2 {
		t.Errorf("runs after Unschedule: %d, want 2", n)
	}
	if err := eng.Unschedule(ctx, "hourly"); !errors.Is(err, dagflow.ErrNotFound) {
		t.Errorf("Unschedule twice = %v", err)
	}
}

// TestScheduleTimezone: the expression is read in the schedule's time zone.
func TestScheduleTimezone(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	mustHandle(t, eng, "h", dagflowtest.Script().Handler)
	if err := eng.Schedule(ctxT(t), dagflow.Schedule{ID: "paris", Cron: "0 2 * * *", Timezone: "Europe/Paris",
		Workflow: dagflow.Workflow{Steps: []dagflow.Step{handlerStep("a", "h")}}}); err != nil {
		t.Fatal(err)
	}
	list, _ := eng.Schedules(ctxT(t))
	if want := time.Date(2026, 1, 1, 1, 0, 0, 0, time.UTC); !list[0].Next.Equal(want) {
		t.Errorf("next tick %v, want %v (02:00 in Paris)", list[0].Next, want)
	}
}

// TestScheduleAcrossRestarts: a schedule survives the engine; the latest
// tick missed while no engine ran gets its run when one opens.
func TestScheduleAcrossRestarts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "flows.db")
	clock := dagflowtest.NewClock(time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC))
	h := dagflow.WithHandler("h", dagflowtest.Script().Handler)
	eng := openBolt(t, path, dagflow.WithClock(clock), h)
	if err := eng.Schedule(ctxT(t), dagflow.Schedule{ID: "daily", Cron: "@daily",
		Workflow: dagflow.Workflow{Steps: []dagflow.Step{handlerStep("a", "h")}}}); err != nil {
		t.Fatal(err)
	}
	eng.Close()
	clock.Advance(72 * time.Hour)
	eng = openBolt(t, path, dagflow.WithClock(clock), h)
	defer eng.Close()
	dagflowtest.RequireCompleted(t, eng, "daily/2026-05-04T00:00:00Z")
	if d := cmp.Diff([]string{"daily/2026-05-04T00:00:00Z"}, runIDs(t, eng, "daily/")); d != "" {
		t.Errorf("runs (-want +got):\n%s", d)
	}
}

// TestScheduleBadInput: a bad id, expression, time zone or workflow is a
// *ValidationError with its place.
func TestScheduleBadInput(t *testing.T) {
	eng, _ := dagflowtest.NewEngine(t)
	ok := dagflow.Workflow{Steps: []dagflow.Step{{ID: "a", URL: "https://app/a"}}}
	for _, tc := range []struct {
		s    dagflow.Schedule
		want string
	}{
		{dagflow.Schedule{ID: "a/b", Cron: "@hourly", Workflow: ok}, `id: "a/b" contains "/", which the ids of its runs (<scheduleId>/<time>) reserve`},
		{dagflow.Schedule{ID: "x", Cron: "61 * * * *", Workflow: ok}, `cron: "61 * * * *" is not a cron expression`},
		{dagflow.Schedule{ID: "x", Cron: "* * *", Workflow: ok}, `cron: "* * *" is not a cron expression`},
		{dagflow.Schedule{ID: "x", Cron: "0 0 30 2 *", Workflow: ok}, `cron: "0 0 30 2 *" never fires`},
		{dagflow.Schedule{ID: "x", Cron: "@hourly", Timezone: "Mars/Olympus", Workflow: ok}, `timezone: unknown time zone "Mars/Olympus"`},
		{dagflow.Schedule{ID: "x", Cron: "@hourly", Workflow: dagflow.Workflow{Steps: []dagflow.Step{{ID: "a"}}}}, "workflow.steps[0]: needs a url"},
		{dagflow.Schedule{ID: "x", Cron: "@hourly", Workflow: dagflow.Workflow{ID: "mine", Steps: ok.Steps}}, "workflow.id: is set by each tick"},
	} {
		err := eng.Schedule(ctxT(t), tc.s)
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) || ve.Of != "schedule" || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Schedule(%+v) = %v, want a *ValidationError of a schedule saying %q", tc.s.Cron, err, tc.want)
		}
	}
}

// TestConcurrencyKey: at most limit runs with the same key value are under
// way; the others wait pending, in creation order, and start when a slot
// frees; runs with another key go on; a waiting run can be cancelled.
func TestConcurrencyKey(t *testing.T) {
	eng := newEngine(t)
	var mu sync.Mutex
	var started []string
	release := map[string]chan struct{}{}
	for _, id := range []string{"c1-a", "c1-b", "c1-c", "c1-d", "c2-a"} {
		release[id] = make(chan struct{})
	}
	mustHandle(t, eng, "h", func(ctx context.Context, in dagflow.Input) (any, error) {
		mu.Lock()
		started = append(started, in.WorkflowID)
		ch := release[in.WorkflowID]
		mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, nil
	})
	ctx := ctxT(t)
	mk := func(id, customer string) dagflow.Workflow {
		return dagflow.Workflow{ID: id, Context: json.RawMessage(`{"customerId":"` + customer + `"}`),
			Concurrency: &dagflow.Concurrency{Key: "context.customerId", Limit: 2},
			Steps:       []dagflow.Step{handlerStep("a", "h")}}
	}
	for _, w := range []dagflow.Workflow{mk("c1-a", "c1"), mk("c1-b", "c1"), mk("c1-c", "c1"), mk("c1-d", "c1"), mk("c2-a", "c2")} {
		if _, err := eng.Create(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	startedSet := func() []string {
		mu.Lock()
		defer mu.Unlock()
		s := slices.Clone(started)
		slices.Sort(s)
		return s
	}
	waitUntil := func(want []string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !slices.Equal(startedSet(), want) {
			if time.Now().After(deadline) {
				t.Fatalf("started %v, want %v", startedSet(), want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	waitUntil([]string{"c1-a", "c1-b", "c2-a"})
	for _, id := range []string{"c1-c", "c1-d"} {
		st, _ := eng.Status(ctx, id)
		if st.State != dagflow.StatePending || st.Phase != "queued" {
			t.Errorf("%s: %s, phase %q; want pending, queued", id, st.State, st.Phase)
		}
	}
	if _, err := eng.Cancel(ctx, "c1-d"); err != nil {
		t.Fatal(err)
	}
	if st := dagflowtest.Final(t, eng, "c1-d"); st.State != dagflow.StateCancelled {
		t.Errorf("queued run cancelled: %s", st.State)
	}
	close(release["c1-a"])
	waitUntil([]string{"c1-a", "c1-b", "c1-c", "c2-a"})
	for _, id := range []string{"c1-b", "c1-c", "c2-a"} {
		close(release[id])
	}
	for _, id := range []string{"c1-a", "c1-b", "c1-c", "c2-a"} {
		dagflowtest.RequireCompleted(t, eng, id)
	}
	// A key that resolves to nothing, a limit under 1: clear errors.
	bad := mk("bad", "x")
	bad.Concurrency.Key = "context.tenant"
	var ve *dagflow.ValidationError
	if _, err := eng.Create(ctx, bad); !errors.As(err, &ve) || !strings.Contains(err.Error(), `concurrency.key: path "context.tenant" resolves to nothing`) {
		t.Errorf("Create with a key that resolves to nothing: %v", err)
	}
	bad = mk("bad", "x")
	bad.Concurrency.Limit = 0
	if _, err := eng.Create(ctx, bad); !errors.As(err, &ve) || !strings.Contains(err.Error(), "concurrency.limit: must be at least 1, got 0") {
		t.Errorf("Create with limit 0: %v", err)
	}
}
