// Package benchdag holds what the root package's benchmarks and the
// benchmarks module share, so that both measure the same thing: the DAG
// shapes (a chain, a fan-out with a fan-in, a random DAG), the
// hand-written errgroup program that is the floor the engine is compared
// with, and StoreRun, the store's share of the engine's work.
package benchdag

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
)

// Graph is a DAG as dependency lists by step index.
type Graph [][]int

// Chain is n steps, each depending on the one before.
func Chain(n int) Graph {
	g := make(Graph, n)
	for i := 1; i < n; i++ {
		g[i] = []int{i - 1}
	}
	return g
}

// Fan is a root, leaves steps depending on it, and a join depending on
// every leaf: leaves+2 steps.
func Fan(leaves int) Graph {
	n := leaves + 2
	g := make(Graph, n)
	join := make([]int, 0, leaves)
	for i := 1; i <= leaves; i++ {
		g[i] = []int{0}
		join = append(join, i)
	}
	g[n-1] = join
	return g
}

// Random gives each step but the first up to three dependencies drawn among
// the steps before it (fewer when a draw repeats).
func Random(n int, seed uint64) Graph {
	r := rand.New(rand.NewPCG(seed, seed))
	g := make(Graph, n)
	for i := 1; i < n; i++ {
		seen := map[int]bool{}
		for range 3 {
			j := r.IntN(i)
			if !seen[j] {
				seen[j] = true
				g[i] = append(g[i], j)
			}
		}
	}
	return g
}

// ErrgroupRun is the hand-written baseline: it reads the same workflow the
// engine gets (step ids and dependsOn), then runs it with in-degree
// counters, a central scheduler, and an errgroup with SetLimit running each
// ready step, the way a Go team writes a DAG runner without a library.
func ErrgroupRun(wf *dagflow.Workflow, limit int, step func(i int) error) error {
	n := len(wf.Steps)
	index := make(map[string]int, n)
	for i := range wf.Steps {
		index[wf.Steps[i].ID] = i
	}
	indeg := make([]int, n)
	dependents := make([][]int, n)
	for i := range wf.Steps {
		indeg[i] = len(wf.Steps[i].DependsOn)
		for _, d := range wf.Steps[i].DependsOn {
			j := index[d]
			dependents[j] = append(dependents[j], i)
		}
	}
	var g errgroup.Group
	g.SetLimit(limit)
	done := make(chan int, n)
	var ready []int
	for i := range indeg {
		if indeg[i] == 0 {
			ready = append(ready, i)
		}
	}
	for finished := 0; finished < n; {
		for len(ready) > 0 {
			i := ready[len(ready)-1]
			if !g.TryGo(func() error { err := step(i); done <- i; return err }) {
				break
			}
			ready = ready[:len(ready)-1]
		}
		i := <-done
		finished++
		for _, k := range dependents[i] {
			if indeg[k]--; indeg[k] == 0 {
				ready = append(ready, k)
			}
		}
	}
	return g.Wait()
}

// StoreRun does on s, with no engine, the store work that the engine's
// contract asks of a run of wf whose steps are all no-ops, as the engine
// does it when a worker slot is always free: one transaction that writes the
// run, its spec and every step, the first one started; then, step after step
// in declaration order (wf must list every step after its dependencies),
// one transaction that records the previous step completed, counts down its
// dependents and starts the next step (written once, running, when it is
// the dependent made ready), as an engine's worker does when it goes on
// with its run; and, at the end, a read of the run and every step, as the
// final status needs. There is no validation, no status, no handler and no
// goroutine: it measures how much of an engine's time per step the store's
// records alone take. started, if not nil, is called as each step starts.
func StoreRun(ctx context.Context, s store.Store, runID string, wf *dagflow.Workflow, spec json.RawMessage, started func(i int)) error {
	n := len(wf.Steps)
	if n == 0 || len(wf.Steps[0].DependsOn) > 0 {
		return fmt.Errorf("run %q: the first step must depend on nothing", runID)
	}
	index := make(map[string]int, n)
	for i := range wf.Steps {
		index[wf.Steps[i].ID] = i
	}
	w := &storeWalk{id: runID, wf: wf, spec: spec, now: time.Now(), dependents: make([][]int, n)}
	for i := range wf.Steps {
		for _, d := range wf.Steps[i].DependsOn {
			j, ok := index[d]
			if !ok || j >= i {
				return fmt.Errorf("step %q: dependency %q is not listed before it", wf.Steps[i].ID, d)
			}
			w.dependents[j] = append(w.dependents[j], i)
		}
	}
	if err := s.Update(ctx, w.create); err != nil {
		return err
	}
	if started != nil {
		started(0)
	}
	for w.i = 1; w.i <= n; w.i++ {
		if err := s.Update(ctx, w.step); err != nil {
			return err
		}
		if started != nil && w.i < n {
			started(w.i)
		}
	}
	if err := s.View(ctx, w.read); err != nil {
		return err
	}
	if w.seen != n {
		return fmt.Errorf("run %q: %d of %d steps read back completed", runID, w.seen, n)
	}
	return nil
}

// storeWalk is one StoreRun, its transactions bound as methods so that
// they allocate no closure.
type storeWalk struct {
	id         string
	wf         *dagflow.Workflow
	spec       json.RawMessage
	now        time.Time
	dependents [][]int
	i, seen    int
}

var null = json.RawMessage("null")

// start marks st as started by this engine.
func (w *storeWalk) start(st *store.Step) {
	st.State, st.Attempts, st.StartedAt, st.AttemptAt, st.DueAt = store.StepRunning, 1, w.now, w.now, time.Time{}
	st.Owner, st.Token = "engine", 1
}

func (w *storeWalk) create(tx store.Tx) error {
	r := store.Run{ID: w.id, State: store.RunRunning, Phase: store.PhaseActive, CreatedAt: w.now, StartedAt: w.now,
		Deadline: w.now.Add(24 * time.Hour), Total: len(w.wf.Steps), Serial: -1, Running: 1}
	if err := tx.PutRun(r); err != nil {
		return err
	}
	if err := tx.PutSpec(w.id, w.spec); err != nil {
		return err
	}
	for i := range w.wf.Steps {
		s := &w.wf.Steps[i]
		st := store.Step{RunID: w.id, Index: i, ID: s.ID, State: store.StepPending, Waiting: len(s.DependsOn)}
		switch {
		case i == 0:
			w.start(&st)
		case st.Waiting == 0:
			st.State, st.DueAt = store.StepReady, w.now
		}
		if err := tx.PutStep(st); err != nil {
			return err
		}
	}
	return nil
}

// step completes step i-1, counting down its dependents, and starts step i.
func (w *storeWalk) step(tx store.Tx) error {
	r, err := tx.Run(w.id)
	if err != nil {
		return err
	}
	i := w.i - 1
	st, err := tx.Step(w.id, i)
	if err != nil {
		return err
	}
	r.Seq++
	r.Done++
	r.Running--
	st.State, st.Result, st.Seq, st.CompletedAt = store.StepCompleted, null, r.Seq, w.now
	st.AttemptAt = time.Time{}
	if err := tx.PutStep(st); err != nil {
		return err
	}
	var next store.Step
	held := false
	for _, k := range w.dependents[i] {
		dst, err := tx.Step(w.id, k)
		if err != nil {
			return err
		}
		if dst.Waiting--; dst.Waiting == 0 {
			if k == w.i {
				next, held = dst, true // started below, written once
				continue
			}
			dst.State, dst.DueAt = store.StepReady, w.now
		}
		if err := tx.PutStep(dst); err != nil {
			return err
		}
	}
	if r.Done == r.Total {
		r.State, r.CompletedAt = store.RunCompleted, w.now
	}
	if w.i < len(w.wf.Steps) {
		if !held {
			if next, err = tx.Step(w.id, w.i); err != nil {
				return err
			}
			if next.State != store.StepReady {
				return fmt.Errorf("run %q: step %d is %s, not ready", w.id, w.i, next.State)
			}
		}
		w.start(&next)
		if err := tx.PutStep(next); err != nil {
			return err
		}
		r.Running++
	}
	r.UpdatedAt = w.now
	return tx.PutRun(r)
}

func (w *storeWalk) read(tx store.Tx) error {
	if _, err := tx.Run(w.id); err != nil {
		return err
	}
	w.seen = 0
	count := func(st *store.Step) bool {
		if st.State == store.StepCompleted {
			w.seen++
		}
		return true
	}
	if rg, ok := tx.(store.StepRanger); ok {
		return rg.RangeSteps(w.id, count)
	}
	steps, err := tx.Steps(w.id)
	for i := range steps {
		count(&steps[i])
	}
	return err
}
