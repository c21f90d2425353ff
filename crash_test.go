package dagflow_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
)

// The crash test runs a workload of chains, fan-outs and retrying steps in a
// child process (this test binary, run again) on a bbolt file, kills it with
// SIGKILL at random moments, starts it again, and when the workload has
// finished checks the file against what the handlers saw: every run ended,
// no step ran again after its completion was recorded, no attempt number ran
// twice, and no step had more attempts than its maxAttempts.

const (
	crashChildEnv = "DAGFLOW_CRASH_CHILD"
	crashKills    = 60
	// crashMaxInterruptions is high: every kill interrupts the steps under
	// way, and the workload must finish (TestMaxInterruptions tests the
	// limit itself).
	crashMaxInterruptions = 1000
)

// crashWorkload is the workflows of the crash test. Steps that fail by
// design fail on their first two attempts; steps that must complete allow
// many attempts, since every kill costs the steps it interrupts one.
func crashWorkload() []dagflow.Workflow {
	var wfs []dagflow.Workflow
	many := &dagflow.RetryConfig{MaxAttempts: 1000, Backoff: dagflow.Fixed, InitialInterval: 1 * time.Millisecond}
	for c := 0; c < 8; c++ {
		wf := dagflow.Workflow{ID: fmt.Sprintf("chain-%d", c)}
		for i := 0; i < 25; i++ {
			s := dagflow.Step{ID: fmt.Sprintf("s%02d", i), Handler: "work", Retries: many}
			if i > 0 {
				s.DependsOn = []string{fmt.Sprintf("s%02d", i-1)}
			}
			wf.Steps = append(wf.Steps, s)
		}
		wfs = append(wfs, wf)
	}
	for f := 0; f < 4; f++ {
		wf := dagflow.Workflow{ID: fmt.Sprintf("fan-%d", f), Steps: []dagflow.Step{{ID: "root", Handler: "work", Retries: many}}}
		var deps []string
		for i := 0; i < 40; i++ {
			id := fmt.Sprintf("leaf%02d", i)
			deps = append(deps, id)
			wf.Steps = append(wf.Steps, dagflow.Step{ID: id, Handler: "work", DependsOn: []string{"root"}, Parallel: true, Retries: many})
		}
		wf.Steps = append(wf.Steps, dagflow.Step{ID: "join", Handler: "work", DependsOn: deps, Retries: many})
		wfs = append(wfs, wf)
	}
	for r := 0; r < 6; r++ {
		// "flaky" fails attempts 1 and 2, then succeeds: with maxAttempts 4
		// a run may still fail if kills eat the budget; both are allowed.
		wfs = append(wfs, dagflow.Workflow{ID: fmt.Sprintf("retry-%d", r), Steps: []dagflow.Step{
			{ID: "a", Handler: "work", Retries: many},
			{ID: "b", Handler: "flaky", DependsOn: []string{"a"}, Retries: &dagflow.RetryConfig{MaxAttempts: 4, Backoff: dagflow.Fixed, InitialInterval: 2 * time.Millisecond}},
			{ID: "c", Handler: "work", DependsOn: []string{"b"}, Retries: many},
		}})
	}
	for g := 0; g < 6; g++ {
		// Sagas whose last step fails for good: the kills land in their
		// rollbacks too.
		wf := dagflow.Workflow{ID: fmt.Sprintf("saga-%d", g), Saga: true}
		for i := 0; i < 6; i++ {
			s := dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: "work", Compensation: "undo", Retries: many}
			if i > 0 {
				s.DependsOn = []string{fmt.Sprintf("s%d", i-1)}
			}
			wf.Steps = append(wf.Steps, s)
		}
		wf.Steps = append(wf.Steps, dagflow.Step{ID: "boom", Handler: "boom", DependsOn: []string{"s5"}})
		wfs = append(wfs, wf)
	}
	// A map of 200 items between two steps, and a map of sub-workflows.
	items := make([]string, 200)
	for i := range items {
		items[i] = strconv.Itoa(i)
	}
	list, _ := json.Marshal(items)
	wfs = append(wfs, dagflow.Workflow{ID: "map-200", Context: json.RawMessage(`{"items":` + string(list) + `}`), Steps: []dagflow.Step{
		{ID: "first", Handler: "work", Retries: many},
		{ID: "double", Handler: "double", DependsOn: []string{"first"}, Retries: many, Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.items"}}},
		{ID: "last", Handler: "work", DependsOn: []string{"double"}, Retries: many},
	}})
	wfs = append(wfs, dagflow.Workflow{ID: "mapwf", Context: json.RawMessage(`{"items":[0,1,2,3,4,5,6,7,8,9,10,11]}`), Steps: []dagflow.Step{
		{ID: "each", Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.items"}, MaxConcurrency: 4}, Workflow: &dagflow.Workflow{Steps: []dagflow.Step{
			{ID: "w1", Handler: "work", Retries: many},
			{ID: "w2", Handler: "work", DependsOn: []string{"w1"}, Retries: many},
		}}},
	}})
	// Sleeps and waits for events, which the child sends itself.
	for i := 0; i < 4; i++ {
		wfs = append(wfs, dagflow.Workflow{ID: fmt.Sprintf("sleepy-%d", i), Steps: []dagflow.Step{
			{ID: "a", Handler: "work", Retries: many},
			{ID: "nap", DependsOn: []string{"a"}, Sleep: &dagflow.Sleep{Duration: 40 * time.Millisecond}},
			{ID: "b", Handler: "work", DependsOn: []string{"nap"}, Retries: many},
		}})
		wfs = append(wfs, dagflow.Workflow{ID: fmt.Sprintf("event-%d", i), Context: json.RawMessage(fmt.Sprintf(`{"k":"key-%d"}`, i)), Steps: []dagflow.Step{
			{ID: "a", Handler: "work", Retries: many},
			{ID: "wait", DependsOn: []string{"a"}, WaitForEvent: &dagflow.WaitForEvent{Name: "go", Key: "context.k"}},
			{ID: "b", Handler: "work", DependsOn: []string{"wait"}, Retries: many},
		}})
	}
	return wfs
}

// maxAttemptsOf is a step's maxAttempts, looked for in the workflow and its
// sub-workflows.
// runsAHandler reports whether a step of wf (or of its sub-workflows) runs a
// handler's attempts itself (not through map items).
func runsAHandler(wf dagflow.Workflow, stepID string) bool {
	for _, s := range wf.Steps {
		if s.ID == stepID {
			return s.Handler != "" && s.Map == nil
		}
		if s.Workflow != nil && runsAHandler(*s.Workflow, stepID) {
			return true
		}
	}
	return false
}

// records returns the steps and map items of a run and of its child runs.
func records(tx store.Tx, runID string) ([]store.Step, error) {
	steps, err := tx.Steps(runID)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(steps)
	for _, st := range steps {
		if st.Items > 0 {
			items, err := tx.Items(runID, st.Index)
			if err != nil {
				return nil, err
			}
			out = append(out, items...)
		}
	}
	children, err := tx.Runs(store.RunQuery{Parent: runID})
	if err != nil {
		return nil, err
	}
	for _, c := range children {
		if !c.State.Final() {
			return nil, fmt.Errorf("child run %s did not finish: %s", c.ID, c.State)
		}
		more, err := records(tx, c.ID)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}

func maxAttemptsOf(wf dagflow.Workflow, stepID string) int {
	for _, s := range wf.Steps {
		if s.ID == stepID {
			if s.Retries == nil {
				return 1
			}
			return s.Retries.MaxAttempts
		}
		if s.Workflow != nil {
			if n := maxAttemptsOf(*s.Workflow, stepID); n > 0 {
				return n
			}
		}
	}
	return 0
}

// TestCrashChild is the child process of TestCrashSIGKILL; it does nothing
// in a normal test run.
func TestCrashChild(t *testing.T) {
	if os.Getenv(crashChildEnv) == "" {
		t.Skip("runs only as the child process of TestCrashSIGKILL")
	}
	path, logPath := os.Getenv("CRASH_DB"), os.Getenv("CRASH_LOG")
	logf, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// One write per line (O_APPEND): a SIGKILL cannot tear a line, and the
	// kernel keeps what was written.
	note := func(kind string, in dagflow.Input) {
		step := in.StepID
		if in.Item != nil {
			step += "#" + strconv.Itoa(in.Index)
		}
		fmt.Fprintf(logf, "%s %s %s %d\n", kind, in.WorkflowID, step, in.Attempt)
	}
	work := func(ctx context.Context, in dagflow.Input) (any, error) {
		note("start", in)
		time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
		var prev int
		for _, raw := range in.PreviousSteps.All() {
			n, _ := strconv.Atoi(string(raw))
			prev = max(prev, n)
		}
		note("end", in)
		return prev + 1, nil
	}
	undo := func(ctx context.Context, in dagflow.Input) (any, error) {
		note("cstart", in)
		time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
		note("cend", in)
		return nil, nil
	}
	boom := func(ctx context.Context, in dagflow.Input) (any, error) {
		note("start", in)
		return nil, dagflow.Permanent(errors.New("boom"))
	}
	flaky := func(ctx context.Context, in dagflow.Input) (any, error) {
		note("start", in)
		if in.Attempt <= 2 {
			return nil, fmt.Errorf("flaky attempt %d", in.Attempt)
		}
		note("end", in)
		return 100, nil
	}
	double := func(ctx context.Context, in dagflow.Input) (any, error) {
		note("start", in)
		time.Sleep(time.Duration(rand.IntN(400)) * time.Microsecond)
		var s string
		if err := in.DecodeItem(&s); err != nil {
			return nil, dagflow.Permanent(err)
		}
		n, _ := strconv.Atoi(s)
		note("end", in)
		return n * 2, nil
	}
	eng, err := dagflow.Open(dagflow.WithPath(path), dagflow.WithConcurrency(16), dagflow.WithMaxInterruptions(crashMaxInterruptions),
		dagflow.WithHandler("work", work), dagflow.WithHandler("flaky", flaky), dagflow.WithHandler("double", double),
		dagflow.WithHandler("undo", undo), dagflow.WithHandler("boom", boom))
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	// The events the event-<i> runs wait for, sent again and again (a
	// later copy waits, unused, for its retention to end).
	stop := make(chan struct{})
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for {
			for i := 0; i < 4; i++ {
				eng.SendEvent(ctx, dagflow.Event{Name: "go", Key: fmt.Sprintf("key-%d", i), Payload: json.RawMessage(strconv.Itoa(i))})
			}
			select {
			case <-stop:
				return
			case <-time.After(30 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); <-sent }()
	wfs := crashWorkload()
	for _, wf := range wfs {
		if _, err := eng.Create(ctx, wf); err != nil {
			t.Fatal(err)
		}
	}
	for _, wf := range wfs {
		if _, err := eng.Wait(ctx, wf.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCrashSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash test takes a while")
	}
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	dir := t.TempDir()
	dbPath, logPath := filepath.Join(dir, "crash.db"), filepath.Join(dir, "handlers.log")
	child := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashChildEnv+"=1", "CRASH_DB="+dbPath, "CRASH_LOG="+logPath)
		cmd.Stderr = os.Stderr
		return cmd
	}
	kills, finished := 0, false
	for kills < crashKills {
		cmd := child()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill at a random moment: most of a run takes ~1 s, and the
		// child's start (opening the file, resuming) is in the window too.
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("child failed: %v", err)
			}
			finished = true
		case <-time.After(time.Duration(5+r.IntN(60)) * time.Millisecond):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		}
		if finished {
			break
		}
	}
	if !finished {
		// The last run, to the end.
		cmd := child()
		cmd.Stderr = nil
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("final child: %v\n%s", err, out)
		}
	}
	t.Logf("killed the child %d times", kills)

	// What the handlers saw.
	type key struct{ run, step string }
	starts := map[key]map[int]int{} // attempt -> times started
	ends := map[key][]int{}
	compStarts := map[key]map[int]int{}
	var compOrder []key // compensations in the order they first completed
	f, err := os.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var kind, run, step string
		var attempt int
		if _, err := fmt.Sscanf(sc.Text(), "%s %s %s %d", &kind, &run, &step, &attempt); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		k := key{run, step}
		switch kind {
		case "start":
			if starts[k] == nil {
				starts[k] = map[int]int{}
			}
			starts[k][attempt]++
		case "end":
			ends[k] = append(ends[k], attempt)
		case "cstart":
			if compStarts[k] == nil {
				compStarts[k] = map[int]int{}
			}
			compStarts[k][attempt]++
		case "cend":
			if !slices.Contains(compOrder, k) {
				compOrder = append(compOrder, k)
			}
		}
	}

	// What the file says.
	s, err := bolt.Open(dbPath, bolt.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checked := 0
	err = s.View(context.Background(), func(tx store.Tx) error {
		for _, wf := range crashWorkload() {
			run, err := tx.Run(wf.ID)
			if err != nil {
				t.Errorf("run %s lost: %v", wf.ID, err)
				continue
			}
			if !run.State.Final() {
				t.Errorf("run %s did not finish: %s", wf.ID, run.State)
			}
			if strings.HasPrefix(wf.ID, "saga-") {
				if run.State != store.RunFailed {
					t.Errorf("saga %s: %s", wf.ID, run.State)
				}
				// Every completed step was compensated, once its
				// compensation completed never again, in reverse order of
				// completion.
				var bySeq []store.Step
				steps, _ := tx.Steps(wf.ID)
				for _, st := range steps {
					k := key{wf.ID, st.ID}
					if st.ID == "boom" {
						continue
					}
					if st.State != store.StepCompleted || st.Comp != store.CompDone {
						t.Errorf("%s/%s: state %s, compensation %q; want completed and compensated", wf.ID, st.ID, st.State, st.Comp)
					}
					for attempt, n := range compStarts[k] {
						if n > 1 || attempt > st.CompAttempts {
							t.Errorf("%s/%s: compensation attempt %d ran %d times (store counts %d)", wf.ID, st.ID, attempt, n, st.CompAttempts)
						}
					}
					bySeq = append(bySeq, st)
				}
				slices.SortFunc(bySeq, func(a, b store.Step) int { return int(b.Seq - a.Seq) })
				var want, got []string
				for _, st := range bySeq {
					want = append(want, st.ID)
				}
				for _, k := range compOrder {
					if k.run == wf.ID {
						got = append(got, k.step)
					}
				}
				if !slices.Equal(want, got) {
					t.Errorf("%s: compensations completed in order %v, want %v", wf.ID, got, want)
				}
			} else if strings.HasPrefix(wf.ID, "retry-") {
				if run.State != store.RunCompleted && run.State != store.RunFailed {
					t.Errorf("run %s: %s", wf.ID, run.State)
				}
			} else if run.State != store.RunCompleted {
				t.Errorf("run %s: %s (%s)", wf.ID, run.State, run.Error)
			}
			steps, err := records(tx, wf.ID)
			if err != nil {
				return err
			}
			for _, st := range steps {
				k := key{st.RunID, st.ID}
				if st.Item > 0 {
					k.step += "#" + strconv.Itoa(st.Item-1)
				}
				if st.Item == 0 && !runsAHandler(wf, st.ID) || st.Item > 0 && st.ID == "each" {
					// A map step, a sleep, a wait, a sub-workflow (or an
					// item of a map of them): no attempts of its own.
					continue
				}
				// An interrupted attempt runs again as the next attempt
				// without counting against maxAttempts: the attempts
				// from the retry budget stay within it, and the
				// interruptions within their own limit.
				max := maxAttemptsOf(wf, st.ID)
				if st.Attempts-st.Interruptions > max {
					t.Errorf("%s/%s: %d attempts recorded, %d of them interrupted; maxAttempts %d", wf.ID, st.ID, st.Attempts, st.Interruptions, max)
				}
				if st.Interruptions >= crashMaxInterruptions {
					t.Errorf("%s/%s: %d interruptions, at the limit of %d", wf.ID, st.ID, st.Interruptions, crashMaxInterruptions)
				}
				for attempt, n := range starts[k] {
					if n > 1 {
						t.Errorf("%s/%s: attempt %d ran %d times", wf.ID, st.ID, attempt, n)
					}
					if attempt > max+st.Interruptions {
						t.Errorf("%s/%s: attempt %d ran, maxAttempts %d and %d interruptions", wf.ID, st.ID, attempt, max, st.Interruptions)
					}
					if attempt > st.Attempts {
						t.Errorf("%s/%s: attempt %d ran but the store counts %d", wf.ID, st.ID, attempt, st.Attempts)
					}
				}
				if st.State == store.StepCompleted {
					// The completing attempt is the last one: nothing ran
					// after the completion was recorded.
					for attempt := range starts[k] {
						if attempt > st.Attempts {
							t.Errorf("%s/%s ran again (attempt %d) after completing on attempt %d", wf.ID, st.ID, attempt, st.Attempts)
						}
					}
					if len(ends[k]) == 0 {
						t.Errorf("%s/%s completed but no handler returned", wf.ID, st.ID)
					}
				}
				checked++
			}
			switch {
			case wf.ID == "map-200":
				st, _ := tx.Step(wf.ID, 1, 0)
				var got []int
				if err := json.Unmarshal(st.Result, &got); err != nil || len(got) != 200 || got[199] != 398 || got[7] != 14 {
					t.Errorf("map-200: result %.80s, %v", st.Result, err)
				}
			case strings.HasPrefix(wf.ID, "sleepy-"):
				st, _ := tx.Step(wf.ID, 1, 0)
				var res struct{ SleptUntil time.Time }
				if err := json.Unmarshal(st.Result, &res); err != nil || res.SleptUntil.Sub(st.StartedAt) != 40*time.Millisecond {
					t.Errorf("%s: slept until %s, started %v: the end moved", wf.ID, st.Result, st.StartedAt)
				}
			case strings.HasPrefix(wf.ID, "event-"):
				st, _ := tx.Step(wf.ID, 1, 0)
				if want := strings.TrimPrefix(wf.ID, "event-"); string(st.Result) != want {
					t.Errorf("%s: received %s, want %s", wf.ID, st.Result, want)
				}
			}
			// Chains: results grew by one along the chain, whatever the
			// kills did.
			if strings.HasPrefix(wf.ID, "chain-") && run.State == store.RunCompleted {
				for i, st := range steps {
					if string(st.Result) != strconv.Itoa(i+1) {
						t.Errorf("%s/%s result %s, want %d", wf.ID, st.ID, st.Result, i+1)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	startsTotal, reruns := 0, 0
	for _, m := range starts {
		for attempt, n := range m {
			startsTotal += n
			if attempt > 1 {
				reruns++
			}
		}
	}
	compReruns := 0
	for _, m := range compStarts {
		for attempt := range m {
			if attempt > 1 {
				compReruns++
			}
		}
	}
	t.Logf("checked %d steps; handlers started %d attempts, %d of them after an earlier attempt was interrupted or failed; %d compensations ran again after an interruption",
		checked, startsTotal, reruns, compReruns)
	if kills < crashKills && !finished {
		t.Errorf("only %d kills", kills)
	}
}
