package dagflow_test

import (
	"context"
	"fmt"
	"math/rand/v2"
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

// errgroupRun is the hand-written baseline: in-degree counters, a central
// scheduler, and an errgroup with SetLimit running each ready step, the way
// a Go team writes a DAG runner without a library.
func errgroupRun(d benchGraph, limit int, step func(i int) error) error {
	n := len(d)
	indeg := make([]int, n)
	dependents := make([][]int, n)
	for i, deps := range d {
		indeg[i] = len(deps)
		for _, j := range deps {
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
		var mu sync.Mutex
		results := make([]any, len(d))
		for b.Loop() {
			errgroupRun(d, benchConcurrency, func(i int) error {
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
		eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithConcurrency(benchConcurrency))
		if err != nil {
			b.Fatal(err)
		}
		defer eng.Close()
		eng.Handle("noop", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
		ctx := context.Background()
		i := 0
		for b.Loop() {
			b.StopTimer()
			wf := d.workflow(fmt.Sprintf("run-%d", i))
			i++
			b.StartTimer()
			if _, err := eng.Create(ctx, wf); err != nil {
				b.Fatal(err)
			}
			st, err := eng.Wait(ctx, wf.ID)
			if err != nil || st.State != dagflow.StateCompleted {
				b.Fatalf("%v %v", st.State, err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(d)), "ns/step")
	})
}

func BenchmarkChain10k(b *testing.B)     { runBench(b, benchChain(10_000)) }
func BenchmarkFanOut100k(b *testing.B)   { runBench(b, benchFan(100_000)) }
func BenchmarkRandomDAG10k(b *testing.B) { runBench(b, benchRandom(10_000, 42)) }
