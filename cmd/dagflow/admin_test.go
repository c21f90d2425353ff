package main

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
)

// goRuns opens an engine on db whose clock reads start, with the Go
// handlers "ok", "fail" and "block", creates wfs and waits for each to end,
// except those whose id starts with "running": they are left under way as
// the engine closes.
func goRuns(t *testing.T, db string, start time.Time, wfs ...dagflow.Workflow) {
	t.Helper()
	clock := dagflowtest.NewClock(start)
	eng, err := dagflow.Open(dagflow.WithPath(db), dagflow.WithClock(clock), dagflow.WithLogger(discardLogger()),
		dagflow.WithHandler("ok", func(context.Context, dagflow.Input) (any, error) { return "ok", nil }),
		dagflow.WithHandler("fail", func(context.Context, dagflow.Input) (any, error) {
			return nil, dagflow.Permanent(errors.New("card declined"))
		}),
		dagflow.WithHandler("block", func(ctx context.Context, _ dagflow.Input) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, wf := range wfs {
		if _, err := eng.Create(ctx, wf); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(wf.ID, "running") {
			dagflowtest.WaitFor(t, eng, wf.ID, func(st *dagflow.Status) bool { return st.State == dagflow.StateRunning })
			continue
		}
		if _, err := eng.Wait(ctx, wf.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func oneStep(id, handler string) dagflow.Workflow {
	return dagflow.Workflow{ID: id, Steps: []dagflow.Step{{ID: "a", Handler: handler}}}
}

// withChild is a run whose one step is a sub-workflow: a child run "<id>/sub".
func withChild(id string) dagflow.Workflow {
	return dagflow.Workflow{ID: id, Steps: []dagflow.Step{
		{ID: "sub", Workflow: &dagflow.Workflow{Steps: []dagflow.Step{{ID: "a", Handler: "ok"}}}}}}
}

// listIDs returns the ids 'dagflow list' prints, sorted.
func listIDs(t *testing.T, db string) []string {
	t.Helper()
	r := dagflowCmd(t, "list", "--db", db, "--json")
	r.want(t, 0)
	var ids []string
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	for dec.More() {
		var s dagflow.RunSummary
		if err := dec.Decode(&s); err != nil {
			t.Fatalf("list --json: %v\n%s", err, r.stdout)
		}
		ids = append(ids, s.ID)
	}
	slices.Sort(ids)
	return ids
}

// lines returns the non-empty lines of s, sorted.
func lines(s string) []string {
	l := strings.Fields(s)
	slices.Sort(l)
	return l
}

func TestDelete(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	goRuns(t, db, time.Now(), oneStep("done", "ok"), oneStep("failed", "fail"), withChild("parent"))
	// A run a crash left unfinished: delete runs nothing, and leaves it to
	// resume as it was.
	crashed, _, _ := startBlocked(t, j, dir, db, "order-d")
	crashed.Process.Signal(syscall.SIGKILL)
	crashed.Wait()

	dagflowCmd(t, "delete", "--db", db, "done").want(t, 0)
	r := dagflowCmd(t, "delete", "--db", db, "failed")
	r.want(t, 0)
	if r.stdout != "" || r.stderr != "" {
		t.Errorf("delete printed\nstdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	dagflowCmd(t, "status", "--db", db, "done").want(t, 2, `no run with id "done"`)
	dagflowCmd(t, "delete", "--db", db, "done").want(t, 2, `no run with id "done"`)
	dagflowCmd(t, "delete", "--db", db, "parent/sub").want(t, 2, `run "parent/sub" is a child run of "parent"`)
	dagflowCmd(t, "delete", "--db", db, "order-d").want(t, 2, `cannot delete run "order-d": it is running; cancel it first ('dagflow cancel order-d')`)
	if got, want := listIDs(t, db), []string{"order-d", "parent", "parent/sub"}; !slices.Equal(got, want) {
		t.Errorf("runs %q, want %q", got, want)
	}
	dagflowCmd(t, "delete", "parent", "--db", db).want(t, 0)
	if got, want := listIDs(t, db), []string{"order-d"}; !slices.Equal(got, want) {
		t.Errorf("after deleting the parent, runs %q, want %q (the child goes with it)", got, want)
	}
	dagflowCmd(t, "delete", "--db", filepath.Join(dir, "none.db"), "x").want(t, 2, "none.db: no such database")
	dagflowCmd(t, "delete", "--db", db).want(t, 2, "delete: missing argument")

	if n := j.count("block"); n != 1 {
		t.Errorf("the crashed run's step was sent %d times before resume, want 1: delete ran it", n)
	}
	j.unblock()
	r = dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	var out []*dagflow.Status
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || len(out) != 1 {
		t.Fatalf("resume printed %v:\n%s", err, r.stdout)
	}
	checkCompleted(t, out[0], "order-d")
	if s := out[0].Steps[1]; s.Attempts != 2 || s.Interruptions != 1 {
		t.Errorf("charge-payment: %d attempts, %d interruptions; want 2 and 1", s.Attempts, s.Interruptions)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := filepath.Join(dir, "flows.db")
	now := time.Now()
	running := oneStep("running-old", "block")
	running.Timeout = 100 * 24 * time.Hour // not timed out when the next engine opens the file
	goRuns(t, db, now.Add(-48*time.Hour), oneStep("old-done", "ok"), oneStep("old-failed", "fail"),
		withChild("old-parent"), running)
	goRuns(t, db, now.Add(-time.Hour), oneStep("recent", "ok"), withChild("recent-parent"))
	all := []string{"old-done", "old-failed", "old-parent", "old-parent/sub", "recent", "recent-parent", "recent-parent/sub", "running-old"}
	if got := listIDs(t, db); !slices.Equal(got, all) {
		t.Fatalf("runs %q, want %q", got, all)
	}

	r := dagflowCmd(t, "prune", "--db", db, "--older-than", "36h", "--dry-run")
	r.want(t, 0, "would delete 3 runs that ended before ")
	if got, want := lines(r.stdout), []string{"old-done", "old-failed", "old-parent"}; !slices.Equal(got, want) {
		t.Errorf("prune --dry-run printed %q, want %q", got, want)
	}
	if got := listIDs(t, db); !slices.Equal(got, all) {
		t.Fatalf("prune --dry-run deleted runs: %q left", got)
	}

	r = dagflowCmd(t, "prune", "--db", db, "--older-than=1.5d")
	r.want(t, 0, "deleted 3 runs that ended before ")
	if got, want := lines(r.stdout), []string{"old-done", "old-failed", "old-parent"}; !slices.Equal(got, want) {
		t.Errorf("prune printed %q, want %q", got, want)
	}
	want := []string{"recent", "recent-parent", "recent-parent/sub", "running-old"}
	if got := listIDs(t, db); !slices.Equal(got, want) {
		t.Errorf("after prune, runs %q, want %q", got, want)
	}
	dagflowCmd(t, "prune", "--db", db, "--older-than", "2h").want(t, 0, "deleted 0 runs")

	r = dagflowCmd(t, "prune", "--db", db, "--older-than", "0")
	r.want(t, 0, "deleted 2 runs")
	if got, want := listIDs(t, db), []string{"running-old"}; !slices.Equal(got, want) {
		t.Errorf("after prune --older-than 0, runs %q, want %q (a run that has not ended stays)", got, want)
	}
	st := dagflowCmd(t, "status", "--db", db, "running-old").status(t)
	if st.State != dagflow.StateRunning || st.Steps[0].State == dagflow.StateRunning {
		t.Errorf("the unfinished run is %s, its step %s: prune ran it", st.State, st.Steps[0].State)
	}

	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"prune", "--db", db}, "prune: --older-than is required"},
		{[]string{"prune", "--db", db, "--older-than", "-1h"}, `"-1h" is negative`},
		{[]string{"prune", "--db", db, "--older-than", "3x"}, `"3x" is not a duration`},
		{[]string{"prune", "--db", db, "--older-than", "xd"}, `"xd" is not a duration`},
		{[]string{"prune", "--db", filepath.Join(dir, "none.db"), "--older-than", "1h"}, "none.db: no such database"},
	} {
		r := dagflowCmd(t, tc.args...)
		r.want(t, 2, tc.msg)
		if r.stdout != "" {
			t.Errorf("%q: stdout:\n%s", tc.args, r.stdout)
		}
	}
}

func TestParseDuration(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"0", 0, true},
		{"90m", 90 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"30d", 30 * 24 * time.Hour, true},
		{"1.5d", 36 * time.Hour, true},
		{"0d", 0, true},
		{"-1d", 0, false},
		{"-5m", 0, false},
		{"d", 0, false},
		{"NaNd", 0, false},
		{"1e9d", 0, false},
		{"30", 0, false},
		{"", 0, false},
	} {
		got, err := parseDuration(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
