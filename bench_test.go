package dagflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
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

// openBenchEngine opens an engine on a new memory store that runs every
// step of a benchGraph's workflows with h.
func openBenchEngine(b *testing.B, h dagflow.HandlerFunc) *dagflow.Engine {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithConcurrency(benchConcurrency),
		dagflow.WithHandler("noop", h))
	if err != nil {
		b.Fatal(err)
	}
	return eng
}

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
			eng := openBenchEngine(b, noop)
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

// orderSteps is the hosted docs' order chain and one more step.
var orderSteps = []string{"validate-order", "charge-payment", "ship-order", "send-confirmation", "archive-order"}

type orderResult struct {
	Step string `json:"step"`
	OK   bool   `json:"ok"`
}

// BenchmarkOrders1k: 1,000 workflows of five chained steps, each created
// and waited for on its own goroutine, as a service does per request; each
// step returns a small result. Beside the same in errgroup programs.
func BenchmarkOrders1k(b *testing.B) {
	const runs = 1000
	wfs := make([]dagflow.Workflow, runs)
	for i := range wfs {
		wf := dagflow.Workflow{ID: fmt.Sprintf("order-%d", i),
			Context: []byte(fmt.Sprintf(`{"orderId":"order-%d","amount":49.9}`, i))}
		for k, name := range orderSteps {
			s := dagflow.Step{ID: name, Handler: name}
			if k > 0 {
				s.DependsOn = []string{orderSteps[k-1]}
			}
			wf.Steps = append(wf.Steps, s)
		}
		wfs[i] = wf
	}
	steps := runs * len(orderSteps)
	b.Run("errgroup", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			runtime.GC()
			b.StartTimer()
			var wg sync.WaitGroup
			for i := range wfs {
				wg.Go(func() {
					var mu sync.Mutex
					results := make([]any, len(orderSteps))
					benchdag.ErrgroupRun(&wfs[i], benchConcurrency, func(k int) error {
						mu.Lock()
						results[k] = orderResult{Step: orderSteps[k], OK: true}
						mu.Unlock()
						return nil
					})
				})
			}
			wg.Wait()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*steps), "ns/step")
	})
	b.Run("dagflow-memory", func(b *testing.B) {
		ctx := context.Background()
		for b.Loop() {
			b.StopTimer()
			opts := []dagflow.Option{dagflow.WithStore(memory.New()), dagflow.WithConcurrency(benchConcurrency)}
			for _, name := range orderSteps {
				opts = append(opts, dagflow.WithHandler(name, func(ctx context.Context, in dagflow.Input) (any, error) {
					return orderResult{Step: name, OK: true}, nil
				}))
			}
			eng, err := dagflow.Open(opts...)
			if err != nil {
				b.Fatal(err)
			}
			runtime.GC()
			b.StartTimer()
			var wg sync.WaitGroup
			for i := range wfs {
				wg.Go(func() {
					if _, err := eng.Create(ctx, wfs[i]); err != nil {
						b.Error(err)
						return
					}
					st, err := eng.Wait(ctx, wfs[i].ID)
					if err != nil || st.State != dagflow.StateCompleted {
						b.Errorf("%s: %v %v", wfs[i].ID, st.State, err)
					}
				})
			}
			wg.Wait()
			b.StopTimer()
			eng.Close()
			b.StartTimer()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*steps), "ns/step")
	})
	// One workflow after another on one goroutine: the store's work
	// without the cost of 1,000 goroutines sharing its lock.
}

// BenchmarkCreateAndStatus measures, per step, the two costs of a run that
// do not depend on how its steps run: Create (validation, the compiled plan,
// the stored spec and step records, the pending status it returns) and the
// final Status that Wait returns (every step's state and every result). Both
// are in the time per step of BenchmarkChain10k, BenchmarkFanOut100k and
// BenchmarkRandomDAG10k; compare them with those benchmarks' errgroup lines.
func BenchmarkCreateAndStatus(b *testing.B) {
	for _, c := range []struct {
		name string
		d    benchGraph
	}{
		{"chain10k", benchChain(10_000)},
		{"fanout100k", benchFan(100_000)},
		{"random10k", benchRandom(10_000, 42)},
	} {
		wf := c.d.workflow("run")
		ctx := context.Background()
		b.Run(c.name+"/create", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				release := make(chan struct{})
				eng := openBenchEngine(b, func(ctx context.Context, in dagflow.Input) (any, error) { <-release; return nil, nil })
				runtime.GC()
				b.StartTimer()
				if _, err := eng.Create(ctx, wf); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				close(release)
				if st, err := eng.Wait(ctx, wf.ID); err != nil || st.State != dagflow.StateCompleted {
					b.Fatalf("%v %v", st.State, err)
				}
				eng.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c.d)), "ns/step")
		})
		b.Run(c.name+"/status", func(b *testing.B) {
			eng := openBenchEngine(b, func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil })
			defer eng.Close()
			if _, err := eng.Create(ctx, wf); err != nil {
				b.Fatal(err)
			}
			if st, err := eng.Wait(ctx, wf.ID); err != nil || st.State != dagflow.StateCompleted {
				b.Fatalf("%v %v", st.State, err)
			}
			for b.Loop() {
				st, err := eng.Status(ctx, wf.ID)
				if err != nil || len(st.Steps) != len(c.d) || len(st.Results) != len(c.d) {
					b.Fatalf("%v: %d steps, %d results", err, len(st.Steps), len(st.Results))
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(c.d)), "ns/step")
		})
	}
}

// BenchmarkCreateMap compares, on bbolt, Create of a run whose map step will
// have 10,000 items (a list in the context) with Create of a 3-step run with
// the same context: the items are not written until the map step starts, so
// both write a run, its spec and three steps.
func BenchmarkCreateMap(b *testing.B) {
	items, _ := json.Marshal(make([]int, 10_000))
	for _, c := range []struct {
		name string
		wf   func(id string) dagflow.Workflow
	}{
		{"three-steps", func(id string) dagflow.Workflow {
			return dagflow.Workflow{ID: id, Context: json.RawMessage(`{"n":` + string(items) + `}`), Steps: []dagflow.Step{
				{ID: "a", Handler: "block"}, {ID: "b", Handler: "block", DependsOn: []string{"a"}}, {ID: "c", Handler: "block", DependsOn: []string{"b"}},
			}}
		}},
		{"map-10k-items", func(id string) dagflow.Workflow {
			return dagflow.Workflow{ID: id, Context: json.RawMessage(`{"n":` + string(items) + `}`), Steps: []dagflow.Step{
				{ID: "a", Handler: "block"},
				{ID: "each", Handler: "block", DependsOn: []string{"a"}, Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.n"}}},
				{ID: "c", Handler: "block", DependsOn: []string{"each"}},
			}}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			// The first steps wait until Close cuts them short: no map starts.
			eng, err := dagflow.Open(dagflow.WithPath(filepath.Join(b.TempDir(), "c.db")), dagflow.WithLogger(testLogger(b)),
				dagflow.WithHandler("block", func(ctx context.Context, in dagflow.Input) (any, error) {
					<-ctx.Done()
					return nil, ctx.Err()
				}))
			if err != nil {
				b.Fatal(err)
			}
			defer eng.Close()
			ctx := context.Background()
			for i := 0; b.Loop(); i++ {
				if _, err := eng.Create(ctx, c.wf(fmt.Sprintf("r%d", i))); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
