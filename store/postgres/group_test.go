package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow/store"
)

// hold blocks s's commit loop (s has one: Options.Committers 1) in an
// Update until release is called, so that the Updates started meanwhile
// form one group; wait returns once n of them are queued.
func hold(t *testing.T, s *Store) (wait func(n int), release func()) {
	t.Helper()
	in, out := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(context.Background(), func(store.Tx) error {
			close(in)
			<-out
			return nil
		})
	}()
	<-in
	wait = func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			s.mu.Lock()
			queued := 0
			for _, q := range s.queues {
				queued += len(q.pending)
			}
			s.mu.Unlock()
			if queued >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d Updates queued after 10 s, want %d", queued, n)
			}
		}
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			close(out)
			if err := <-done; err != nil {
				t.Errorf("the holding Update: %v", err)
			}
		})
	}
	t.Cleanup(release)
	return wait, release
}

// bump increments run id's Done and its step 0's Attempts.
func bump(tx store.Tx, id string) error {
	r, err := tx.Run(id)
	if err != nil {
		return err
	}
	st, err := tx.Step(id, 0, 0)
	if err != nil {
		return err
	}
	r.Done++
	st.Attempts++
	if err := tx.PutStep(st); err != nil {
		return err
	}
	return tx.PutRun(r)
}

// counts returns Done of each run and Attempts of its step 0.
func counts(t *testing.T, s *Store, ids ...string) (done, attempts []int) {
	t.Helper()
	err := s.View(context.Background(), func(tx store.Tx) error {
		for _, id := range ids {
			r, err := tx.Run(id)
			if err != nil {
				return err
			}
			st, err := tx.Step(id, 0, 0)
			if err != nil {
				return err
			}
			done, attempts = append(done, r.Done), append(attempts, st.Attempts)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return
}

// A full group in which functions fail: one before any of its writes was
// sent (taken back in place), one after (the group runs again without it),
// one whose write PostgreSQL refuses (blamed on it, inside a bulk
// statement), one that panics. The others commit, each once, and nothing of
// the failed ones is kept.
func TestGroupFailures(t *testing.T) {
	t.Parallel()
	const n = 12
	s := openStore(t, newSchema(t), Options{MaxBatch: n, Committers: 1})
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprint("r", i)
		putRun(t, s, ids[i], 1)
	}
	errEarly, errLate := errors.New("early"), errors.New("late")
	calls := make([]atomic.Int32, n)
	fns := make([]func(store.Tx) error, n)
	for i := range fns {
		fns[i] = func(tx store.Tx) error { calls[i].Add(1); return bump(tx, ids[i]) }
	}
	fns[2] = func(tx store.Tx) error { // fails before anything of it was sent
		calls[2].Add(1)
		if err := bump(tx, ids[2]); err != nil {
			return err
		}
		return errEarly
	}
	fns[5] = func(tx store.Tx) error { // fails after its writes were sent
		calls[5].Add(1)
		if err := bump(tx, ids[5]); err != nil {
			return err
		}
		if _, err := tx.Attempts(ids[5], -1); err != nil { // a read: sends the writes
			return err
		}
		return errLate
	}
	fns[7] = func(tx store.Tx) error { // writes a result that is not JSON
		calls[7].Add(1)
		st, err := tx.Step(ids[7], 0, 0)
		if err != nil {
			return err
		}
		st.Result = json.RawMessage(`{not json`)
		return tx.PutStep(st)
	}
	fns[9] = func(tx store.Tx) error {
		calls[9].Add(1)
		panic("nine")
	}
	wait, release := hold(t, s)
	errs := make([]error, n)
	panics := make([]any, n)
	var wg sync.WaitGroup
	for i := range fns {
		wg.Go(func() {
			defer func() { panics[i] = recover() }()
			errs[i] = s.Update(context.Background(), fns[i])
		})
		wait(i + 1) // queued in this order
	}
	before := s.Stats()
	release()
	wg.Wait()
	after := s.Stats()

	for i := range n {
		switch i {
		case 2:
			if errs[i] != errEarly {
				t.Errorf("function 2 (fails early): %v, want its error", errs[i])
			}
		case 5:
			if errs[i] != errLate {
				t.Errorf("function 5 (fails late): %v, want its error", errs[i])
			}
		case 7:
			if errs[i] == nil || !strings.Contains(errs[i].Error(), "json") {
				t.Errorf("function 7 (refused write): %v, want PostgreSQL's refusal", errs[i])
			}
		case 9:
			if panics[i] != "nine" {
				t.Errorf("function 9 (panics): Update panicked with %v, want its panic", panics[i])
			}
		default:
			if errs[i] != nil || panics[i] != nil {
				t.Errorf("function %d: %v, %v", i, errs[i], panics[i])
			}
		}
	}
	done, attempts := counts(t, s, ids...)
	for i := range n {
		want := 1
		if i == 2 || i == 5 || i == 7 || i == 9 {
			want = 0
		}
		if done[i] != want || attempts[i] != want {
			t.Errorf("run %d: Done %d, Attempts %d; want %d (function called %d times)", i, done[i], attempts[i], want, calls[i].Load())
		}
	}
	if calls[2].Load() != 1 {
		t.Errorf("the function that failed early ran %d times, want once (taken back in place)", calls[2].Load())
	}
	// (Less the holding Update's group.)
	g, f := after.Groups-before.Groups-1, after.Functions-before.Functions-1
	t.Logf("%d groups, %d functions, %d dropped, %d retries", g, f, after.Dropped-before.Dropped, after.Retries-before.Retries)
	if g != 1 || f != n-4 {
		t.Errorf("%d groups committed %d functions, want 1 of %d", g, f, n-4)
	}
}

// Functions of a group see what the functions before them wrote, and not
// what a function taken back wrote.
func TestGroupSeesEarlierFunctions(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{Committers: 1})
	putRun(t, s, "a", 1)
	wait, release := hold(t, s)
	errBack := errors.New("taken back")
	seen := make([]int, 4)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			err := s.Update(context.Background(), func(tx store.Tx) error {
				r, err := tx.Run("a")
				if err != nil {
					return err
				}
				seen[i] = r.Done
				r.Done += 10
				st, err := tx.Step("a", 0, 0)
				if err != nil {
					return err
				}
				st.Attempts += 10
				if err := tx.PutStep(st); err != nil {
					return err
				}
				if err := tx.PutRun(r); err != nil {
					return err
				}
				if i == 1 {
					return errBack
				}
				return nil
			})
			if i == 1 && err != errBack || i != 1 && err != nil {
				t.Errorf("function %d: %v", i, err)
			}
		})
		wait(i + 1)
	}
	release()
	wg.Wait()
	// Queued in order: 0 saw 0, 1 saw 10 (and was taken back), 2 saw 10,
	// 3 saw 20.
	if want := []int{0, 10, 10, 20}; fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("functions saw Done %v, want %v", seen, want)
	}
	done, attempts := counts(t, s, "a")
	if done[0] != 30 || attempts[0] != 30 {
		t.Errorf("Done %d, Attempts %d; want 30, 30", done[0], attempts[0])
	}
}

// MaxBatch bounds a group.
func TestGroupMaxBatch(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{MaxBatch: 4, Committers: 1})
	putRun(t, s, "a", 1)
	wait, release := hold(t, s)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if err := s.Update(context.Background(), func(tx store.Tx) error { return bump(tx, "a") }); err != nil {
				t.Error(err)
			}
		})
	}
	wait(10)
	before := s.Stats()
	release()
	wg.Wait()
	after := s.Stats()
	if g, f := after.Groups-before.Groups-1, after.Functions-before.Functions-1; g != 3 || f != 10 { // less the holding one
		t.Errorf("10 Updates in %d groups (%d functions), want 3 groups of at most 4", g, f)
	}
	if done, _ := counts(t, s, "a"); done[0] != 10 {
		t.Errorf("Done %d, want 10", done[0])
	}
}

// A connection killed in the middle of a group makes the whole group run
// again, on another connection: each function's writes are committed once.
func TestGroupLostConnection(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{Committers: 1})
	ids := []string{"a", "b", "c", "d"}
	for _, id := range ids {
		putRun(t, s, id, 1)
	}
	wait, release := hold(t, s)
	var killed atomic.Bool
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Go(func() {
			err := s.Update(context.Background(), func(stx store.Tx) error {
				if err := bump(stx, id); err != nil {
					return err
				}
				if i == 2 && killed.CompareAndSwap(false, true) {
					pid := stx.(*tx).conn.PgConn().PID()
					if _, err := adminPool(t).Exec(context.Background(), "SELECT pg_terminate_backend($1)", pid); err != nil {
						t.Error(err)
					}
				}
				_, err := stx.Attempts(id, -1) // a read: finds the connection gone
				return err
			})
			if err != nil {
				t.Errorf("Update %s: %v", id, err)
			}
		})
		wait(i + 1)
	}
	release()
	wg.Wait()
	done, attempts := counts(t, s, ids...)
	for i := range ids {
		if done[i] != 1 || attempts[i] != 1 {
			t.Errorf("run %s: Done %d, Attempts %d; want 1 each", ids[i], done[i], attempts[i])
		}
	}
	if st := s.Stats(); st.Retries == 0 {
		t.Errorf("no group ran again after the connection was killed: %+v", st)
	}
}

// When the connection breaks while COMMIT is under way, the store looks up
// the transaction's outcome: the callers learn it, the functions' writes are
// kept once, and the store logs it once. The connection goes through a
// proxy that loses the batch with COMMIT (the server never commits) or its
// answer (the server commits), and then cuts the connection.
func TestGroupCommitOutcomeLost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		toServer  bool // lose the batch, not its answer
		committed string
	}{
		{"AnswerLost", false, "had committed"},
		{"BatchLost", true, "had not committed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs bytes.Buffer
			var lmu sync.Mutex
			s, p := openThroughProxy(t, Options{Committers: 1, Logger: slog.New(slog.NewTextHandler(lockedWriter{&lmu, &logs}, nil))})
			ids := []string{"a", "b", "c"}
			for _, id := range ids {
				putRun(t, s, id, 1)
			}
			var once sync.Once
			s.commitHook = func(*tx) { once.Do(func() { p.loseBatch(tc.toServer) }) }
			wait, release := hold(t, s)
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Go(func() {
					// The read after the write sends it: the batch lost is
					// COMMIT's alone (a batch with a statement new to the
					// connection would lose its preparation's answer, and
					// COMMIT would never be sent).
					err := s.Update(context.Background(), func(tx store.Tx) error {
						if err := bump(tx, id); err != nil {
							return err
						}
						_, err := tx.Attempts(id, -1)
						return err
					})
					if err != nil {
						t.Errorf("Update %s: %v", id, err)
					}
				})
				wait(i + 1)
			}
			release()
			wg.Wait()
			done, attempts := counts(t, s, ids...)
			for i := range ids {
				if done[i] != 1 || attempts[i] != 1 {
					t.Errorf("run %s: Done %d, Attempts %d; want 1 each", ids[i], done[i], attempts[i])
				}
			}
			lmu.Lock()
			out := logs.String()
			lmu.Unlock()
			t.Logf("log: %s", out)
			st := s.Stats()
			if st.CommitsLost != 1 || st.CommitsResolved != 1 {
				t.Errorf("stats %+v, want one COMMIT lost and resolved", st)
			}
			if n := strings.Count(out, "\n"); n != 1 || !strings.Contains(out, tc.committed) {
				t.Errorf("the store logged %d lines, want one saying %q", n, tc.committed)
			}
		})
	}
}

// loseBatch makes the proxy lose the batch being sent (toServer: the server
// never runs it) or its answer (the server runs it), and then cut the
// connection.
func (p *proxy) loseBatch(toServer bool) {
	drop := &p.dropToClient
	if toServer {
		drop = &p.dropToServer
	}
	drop.Store(true)
	go func() {
		time.Sleep(200 * time.Millisecond) // the server commits, or not
		p.setDown(true)
		drop.Store(false)
		p.setDown(false)
	}()
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.w.Write(p)
}

// Runs and steps written several at a time go in one statement each; they
// come back as written, NULLs, exact JSON and all.
func TestBulkRoundTrip(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{})
	at := func(sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }
	runs := []store.Run{
		{ID: "full", State: store.RunRunning, Phase: store.PhaseCompensating, Outcome: store.RunFailed, Cause: store.CauseFailed,
			Error: "bad\\x00", CreatedAt: at(0), StartedAt: at(1), CompletedAt: at(2), Deadline: at(3), UpdatedAt: at(4),
			Generation: 2, Total: 3, Done: 1, Running: 1, Failed: 1, Seq: 9, Serial: 2, SerialQueue: []int{1, 2},
			CompQueue: []store.Ref{{Index: 1}, {Index: 2, Item: 3}}, Parent: "p", ParentIndex: 4, ParentItem: 5,
			ConcurrencyKey: "k", Limit: 2, Trace: "00-aa-bb-01"},
		{ID: "bare", State: store.RunPending, Serial: -1, CompQueue: []store.Ref{{Index: 7}}},
	}
	steps := []store.Step{
		{RunID: "full", Index: 0, ID: "a", State: store.StepCompleted, Result: json.RawMessage(`{"z": 1,  "a": "nul\u0000"}`),
			Input: json.RawMessage(`[1, 2]`), StartedAt: at(1), CompletedAt: at(2), AttemptAt: at(1), Seq: 1, Owner: "e", Token: 3,
			LeaseUntil: at(9), DueAt: at(8), Comp: store.CompFailed, CompAttempts: 2, CompError: "x", CompStartedAt: at(5),
			CompEndedAt: at(6), Interruptions: 1, CompInterruptions: 2, Event: "ev", EventKey: "ek",
			Items: 4, ItemsDone: 1, ItemsFailed: 1, ItemsRunning: 1, ItemsNext: 3, Attempts: 5, Waiting: 0},
		{RunID: "full", Index: 0, Item: 2, ID: "a", State: store.StepPending, Result: json.RawMessage(`null`)},
		{RunID: "bare", Index: 1, ID: "b", State: store.StepWaiting, Waiting: 2},
	}
	err := s.Update(context.Background(), func(tx store.Tx) error {
		for _, r := range runs {
			if err := tx.PutRun(r); err != nil {
				return err
			}
		}
		for _, st := range steps {
			if err := tx.PutStep(st); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(context.Background(), func(tx store.Tx) error {
		for _, want := range runs {
			got, err := tx.Run(want.ID)
			if err != nil {
				return err
			}
			want.Error = clean(want.Error)
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
				t.Errorf("run %s:\n got %+v\nwant %+v", want.ID, got, want)
			}
		}
		for _, want := range steps {
			got, err := tx.Step(want.RunID, want.Index, want.Item)
			if err != nil {
				return err
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) || string(got.Result) != string(want.Result) {
				t.Errorf("step %s/%d#%d:\n got %+v\nwant %+v", want.RunID, want.Index, want.Item, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The Updates of one run (store.ForRun) go to one commit loop's queue, those
// of other runs spread over the loops, and those that name no run take the
// loops in turn.
func TestQueueFor(t *testing.T) {
	s := &Store{}
	for range 4 {
		s.queues = append(s.queues, &queue{kick: make(chan struct{}, 1)})
	}
	if a, b := s.queueFor("order-7"), s.queueFor("order-7"); a != b {
		t.Error("two Updates of one run went to different queues")
	}
	used := map[*queue]bool{}
	for i := range 100 {
		used[s.queueFor(fmt.Sprint("order-", i))] = true
	}
	if len(used) != 4 {
		t.Errorf("100 runs went to %d of the 4 queues", len(used))
	}
	turns := map[*queue]bool{}
	for range 4 {
		turns[s.queueFor("")] = true
	}
	if len(turns) != 4 {
		t.Errorf("4 Updates naming no run went to %d of the 4 queues, want each in turn", len(turns))
	}
}

// With several commit loops, an Update of one run waits for the group of
// that run's loop (so that the run's Updates share its groups), while an
// Update of a run whose loop is free commits at once.
func TestCommittersByRun(t *testing.T) {
	t.Parallel()
	s := openStore(t, newSchema(t), Options{Committers: 4})
	var a, b string
	for i := 0; b == ""; i++ { // two runs of different loops
		id := fmt.Sprint("r", i)
		switch {
		case a == "":
			a = id
		case s.queueFor(id) != s.queueFor(a):
			b = id
		}
	}
	putRun(t, s, a, 1)
	putRun(t, s, b, 1)
	in, out := make(chan struct{}), make(chan struct{})
	held := make(chan error, 1)
	go func() {
		held <- s.Update(store.ForRun(context.Background(), a), func(tx store.Tx) error {
			close(in)
			<-out
			return bump(tx, a)
		})
	}()
	<-in
	same := make(chan error, 1)
	go func() {
		same <- s.Update(store.ForRun(context.Background(), a), func(tx store.Tx) error { return bump(tx, a) })
	}()
	if err := s.Update(store.ForRun(context.Background(), b), func(tx store.Tx) error { return bump(tx, b) }); err != nil {
		t.Fatalf("an Update of another run, while run %s's loop is held: %v", a, err)
	}
	select {
	case err := <-same:
		t.Fatalf("an Update of run %s ran while its loop was held (err %v)", a, err)
	case <-time.After(100 * time.Millisecond):
	}
	close(out)
	if err := <-held; err != nil {
		t.Fatal(err)
	}
	if err := <-same; err != nil {
		t.Fatal(err)
	}
}

// After DueSteps, an Update does not wait for a run's row: DueSteps may
// have left it holding a row it does not know of (PostgreSQL locks a row
// another transaction changed before finding it no longer due), and the
// holder of that run may be waiting for it. It runs again at once, taking
// the run first, and commits once the holder lets go.
func TestNoRunWaitAfterDueSteps(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s1 := openStore(t, schema, Options{})
	s1.cache = nil // its Update holds run b from its read on
	s2 := openStore(t, schema, Options{Committers: 1})
	putRun(t, s1, "a", 1)
	putRun(t, s1, "b", 1)
	now := base.Add(time.Second)
	holding := make(chan struct{})
	done := make(chan error, 1)
	var tries atomic.Int32
	err := s1.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.Run("b"); err != nil {
			return err
		}
		go func() {
			done <- s2.Update(context.Background(), func(tx store.Tx) error {
				tries.Add(1)
				if _, err := tx.DueSteps(now, 1); err != nil {
					return err
				}
				return bump(tx, "b")
			})
		}()
		time.Sleep(200 * time.Millisecond) // s2 tries "b" meanwhile
		close(holding)
		return bump(tx, "b")
	})
	if err != nil {
		t.Fatal(err)
	}
	<-holding
	if err := <-done; err != nil {
		t.Fatalf("the Update after DueSteps: %v", err)
	}
	if st := s2.Stats(); st.Reordered == 0 || tries.Load() < 2 {
		t.Errorf("the Update after DueSteps ran %d times, %d of them again at once to lock in order; want it run again to take the run first", tries.Load(), st.Reordered)
	}
	if st := s2.Stats(); st.LockTimeouts != 0 {
		t.Errorf("%d lock timeouts: the Update waited for the run out of order", st.LockTimeouts)
	}
	err = s1.View(context.Background(), func(tx store.Tx) error {
		r, err := tx.Run("b")
		if err == nil && r.Done != 2 {
			t.Errorf("run b: Done = %d, want 2 (both Updates once)", r.Done)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The steps an Update names (store.ForRun) are locked only with their run's
// row: a fan-in step is named by every process's Updates, and one that held
// it before the run (reading a step it claimed first, say) would wait for
// the run while the run's holder waits for it.
func TestNamedStepsWithTheirRun(t *testing.T) {
	t.Parallel()
	schema := newSchema(t)
	s1 := openStore(t, schema, Options{})
	s2 := openStore(t, schema, Options{Committers: 1})
	putRun(t, s1, "big", 3*smallRun)
	// s2 claims step 3: its claimed set holds it.
	err := s2.Update(context.Background(), func(tx store.Tx) error {
		st, err := tx.Step("big", 3, 0)
		if err != nil {
			return err
		}
		st.State, st.Owner, st.Token = store.StepRunning, "s2", 1
		return tx.PutStep(st)
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	err = s1.Update(context.Background(), func(tx store.Tx) error {
		if _, err := tx.Run("big"); err != nil {
			return err
		}
		go func() {
			// Reads the step it claimed first, then the run (and waits
			// for s1), naming step 5.
			done <- s2.Update(store.ForRun(context.Background(), "big", 5), func(tx store.Tx) error {
				if _, err := tx.Step("big", 3, 0); err != nil {
					return err
				}
				return bump(tx, "big")
			})
		}()
		time.Sleep(100 * time.Millisecond) // s2 holds what it holds, and waits for "big"
		st, err := tx.Step("big", 5, 0)    // waits, if s2 holds it, until the lock timeout
		if err != nil {
			return err
		}
		st.Attempts++
		return tx.PutStep(st)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := s1.Stats().LockTimeouts + s2.Stats().LockTimeouts; n != 0 {
		t.Errorf("%d lock timeouts: a named step was locked without its run", n)
	}
}

// A group of Updates that name different runs (store.ForRun) locks those
// runs and reads the steps they name in one round trip, with BEGIN, instead
// of a round trip per run: the group costs that and COMMIT.
//
// From the row cache, which holds the rows putRun wrote, the reads cost
// none: the group costs its COMMIT, which checks them.
func TestGroupReadsItsRunsAhead(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		cache bool
		want  int32
	}{{"server", false, 2}, {"cache", true, 1}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			groupReadsAhead(t, tc.cache, tc.want)
		})
	}
}

func groupReadsAhead(t *testing.T, cache bool, want int32) {
	s, tracer := tracedStore(t, newSchema(t), Options{Committers: 1}, 4)
	if !cache {
		s.cache = nil
	}
	runs := []string{"run-c", "run-a", "run-b"}
	for _, id := range runs {
		putRun(t, s, id, 3*smallRun) // too large to be read whole with its row
	}

	wait, release := hold(t, s)
	errs := make(chan error, len(runs))
	for _, id := range runs {
		go func() {
			errs <- s.Update(store.ForRun(context.Background(), id, 5), func(tx store.Tx) error {
				if _, err := tx.Run(id); err != nil {
					return err
				}
				st, err := tx.Step(id, 5, 0)
				if err != nil {
					return err
				}
				st.Attempts++
				return tx.PutStep(st)
			})
		}()
	}
	wait(len(runs))
	tracer.batches.Store(0)
	tracer.queries.Store(0)
	groups := s.Stats().Groups
	release()
	for range runs {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if g := s.Stats().Groups - groups; g != 2 {
		t.Fatalf("%d groups committed, want 2 (the holder's, then the three Updates')", g)
	}
	if b, q := tracer.batches.Load(), tracer.queries.Load(); b+q != want {
		t.Errorf("the group of three Updates of three runs took %d batches and %d queries, want %d round trips", b, q, want)
	}
	err := s.View(context.Background(), func(tx store.Tx) error {
		for _, id := range runs {
			st, err := tx.Step(id, 5, 0)
			if err != nil {
				return err
			}
			if st.Attempts != 1 {
				t.Errorf("run %s step 5: %d attempts, want 1", id, st.Attempts)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
