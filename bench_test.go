package dagflow_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/internal/benchdag"
	"github.com/dagflow/dagflow/store/memory"
)

// The benchmarks run the same DAGs of no-op steps on the engine (memory
// store) and on a hand-written errgroup program, in the same benchmark run,
// and report ns/step for each; compare the two lines of one run.

// benchGraph is a DAG as dependency lists by step index.
type benchGraph benchdag.Graph

func benchChain(n int) benchGraph { return benchGraph(benchdag.Chain(n)) }

// benchFan is a root, n-2 leaves depending on it, and a join depending on
// every leaf.
func benchFan(n int) benchGraph { return benchGraph(benchdag.Fan(n - 2)) }

// benchRandom gives each step up to three dependencies among earlier steps.
func benchRandom(n int, seed uint64) benchGraph { return benchGraph(benchdag.Random(n, seed)) }

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
			benchdag.ErrgroupRun(&wf, benchConcurrency, func(i int) error {
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
