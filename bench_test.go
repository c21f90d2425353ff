package dagflow_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// The benchmarks run the same DAGs of no-op steps on the engine (memory
// store) and on a hand-written errgroup program, in the same benchmark run,
// and report ns/step for each; compare the two lines of one run.

// benchGraph is a DAG as dependency lists by step index.
type benchGraph [][]int

func benchChain(n int) benchGraph {
	d := make(benchGraph, n)
	for i := 1; i < n; i++ {
		d[i] = []int{i - 1}
	}
	return d
}

// benchFan is a root, n-2 leaves depending on it, and a join depending on
// every leaf.
func benchFan(n int) benchGraph {
	d := make(benchGraph, n)
	join := make([]int, 0, n-2)
	for i := 1; i < n-1; i++ {
		d[i] = []int{0}
		join = append(join, i)
	}
	d[n-1] = join
	return d
}

// benchRandom gives each step up to three dependencies among earlier steps.
func benchRandom(n int, seed uint64) benchGraph {
	r := rand.New(rand.NewPCG(seed, seed))
	d := make(benchGraph, n)
	for i := 1; i < n; i++ {
		seen := map[int]bool{}
		for k := 0; k < 3; k++ {
			j := r.IntN(i)
			if !seen[j] {
				seen[j] = true
				d[i] = append(d[i], j)
			}
		}
	}
	return d
}

func (d benchGraph) workflow(id string) dagflow.Workflow {
	wf := dagflow.Workflow{ID: id, Steps: make([]dagflow.Step, len(d))}
	for i, deps := range d {
		s := dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: "noop", Parallel: true}
		for _, j := range deps {
			s.DependsOn = append(s.DependsOn, fmt.Sprintf("s%d", j))
		}
		wf.Steps[i] = s
	}
	return wf
}

// errgroupRun is the hand-written baseline: it reads the same workflow the
// engine gets (step ids and dependsOn), then runs it with in-degree
// counters, a central scheduler, and an errgroup with SetLimit running each
// ready step, the way a Go team writes a DAG runner without a library.
func errgroupRun(wf *dagflow.Workflow, limit int, step func(i int) error) error {
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

const benchConcurrency = 8

func runBench(b *testing.B, d benchGraph) {
	b.Run("errgroup", func(b *testing.B) {
		wf := d.workflow("run")
		var mu sync.Mutex
		results := make([]any, len(d))
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			errgroupRun(&wf, benchConcurrency, func(i int) error {
				// Keep a result per step, as the engine does.
				mu.Lock()
				results[i] = nil
				mu.Unlock()
				return nil
			})
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/step")
	})
	b.Run("dagflow-memory", func(b *testing.B) {
		// Each iteration runs on a fresh store and engine (made while the
		// timer is stopped), so that runs of earlier iterations, which a
		// memory store keeps, do not weigh on later ones.
		wf := d.workflow("run")
		noop := func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil }
		ctx := context.Background()
		for b.Loop() {
			b.StopTimer()
			eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithConcurrency(benchConcurrency),
				dagflow.WithHandler("noop", noop))
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.StartTimer()
			if _, err := eng.Create(ctx, wf); err != nil {
				b.Fatal(err)
			}
			st, err := eng.Wait(ctx, wf.ID)
			if err != nil || st.State != dagflow.StateCompleted {
				b.Fatalf("%v %v", st.State, err)
			}
			b.StopTimer()
			eng.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/step")
	})
}

func BenchmarkChain10k(b *testing.B)     { runBench(b, benchChain(10_000)) }
func BenchmarkFanOut100k(b *testing.B)   { runBench(b, benchFan(100_000)) }
func BenchmarkRandomDAG10k(b *testing.B) { runBench(b, benchRandom(10_000, 42)) }
