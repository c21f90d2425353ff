package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/internal/benchdag"
)

// A graph is a DAG of no-op steps as dependency lists by step index; every
// dependency of step i has an index below i.
// graph is a DAG as dependency lists by step index.
type graph benchdag.Graph

// shape tells the workflow functions of the peers, which are code rather
// than data, how to walk a graph.
type shape int

const (
	shapeChain  shape = iota // each step after the one before
	shapeFan                 // a root, parallel leaves, a join
	shapeRandom              // any DAG: each step once its dependencies are done
	shapeOrder               // the order chain: five named steps in a row
)

func chainGraph(n int) graph { return graph(benchdag.Chain(n)) }

// fanGraph is a root, leaves steps that depend on it, and a join that
// depends on every leaf: leaves+2 steps.
func fanGraph(leaves int) graph { return graph(benchdag.Fan(leaves)) }

// randomGraph gives each step but the first up to three dependencies drawn
// among the steps before it (fewer when a draw repeats), as the root
// package's benchmarks do.
func randomGraph(n int, seed uint64) graph { return graph(benchdag.Random(n, seed)) }

func (g graph) edges() int {
	n := 0
	for _, d := range g {
		n += len(d)
	}
	return n
}

// workflow is the one definition every contender starts from: step ids
// s<i>, the graph's dependencies, one Go handler for every step.
func (g graph) workflow(id string, parallel bool) dagflow.Workflow {
	wf := dagflow.Workflow{ID: id, Steps: make([]dagflow.Step, len(g))}
	for i, deps := range g {
		s := dagflow.Step{ID: stepID(i), Handler: noopHandler, Parallel: parallel}
		for _, j := range deps {
			s.DependsOn = append(s.DependsOn, stepID(j))
		}
		wf.Steps[i] = s
	}
	return wf
}

func stepID(i int) string { return fmt.Sprintf("s%d", i) }

// noopHandler names the handler of every no-op step.
const noopHandler = "noop"

// orderSteps is the hosted docs' order chain (validate-order ->
// charge-payment -> ship-order -> send-confirmation) and one more step,
// each step a Go handler of the same name.
var orderSteps = []string{"validate-order", "charge-payment", "ship-order", "send-confirmation", "archive-order"}

// order is the context of an order workflow.
type order struct {
	OrderID string  `json:"orderId"`
	Amount  float64 `json:"amount"`
}

// stepResult is what each order step returns, in every contender.
type stepResult struct {
	Step string `json:"step"`
	OK   bool   `json:"ok"`
}

func orderWorkflow(i int) dagflow.Workflow {
	o := order{OrderID: fmt.Sprintf("order-%d", i), Amount: 49.90}
	ctx, _ := json.Marshal(o)
	wf := dagflow.Workflow{ID: o.OrderID, Context: ctx}
	for k, name := range orderSteps {
		s := dagflow.Step{ID: name, Handler: name}
		if k > 0 {
			s.DependsOn = []string{orderSteps[k-1]}
		}
		wf.Steps = append(wf.Steps, s)
	}
	return wf
}

// A workload is a set of workflows that every contender runs to the end:
// the engine's workflow definitions, and the same graphs for the peers.
type workload struct {
	name  string
	shape shape
	size  int // steps per workflow (chain, fan leaves, random) or workflows (orders)
	// defs are the workflow definitions every contender starts from;
	// graphs[i] is defs[i] as dependency lists by step index.
	defs   []dagflow.Workflow
	graphs []graph
	orders []order // the contexts of the order workflows
	steps  int     // steps over all workflows
}

// A workloadKind builds a workload of a given size.
type workloadKind struct {
	name  string
	desc  string
	shape shape
	full  int // the size of a full run
	quick int // the size of a -quick run
	// only, when set, lists the contenders that run this workload.
	only []string
	// maxSize caps the size of the workload for slow contenders, whose
	// rows are then marked as measured at a smaller size.
	maxSize map[string]int
	build   func(size int) *workload
}

// randomSeed is the seed of the random DAG, fixed so that every contender
// and every run gets the same graph.
const randomSeed = 42

var workloadKinds = []*workloadKind{
	{
		name: "chain-1k", desc: "a chain of 1,000 no-op steps, each depending on the one before",
		shape: shapeChain, full: 1000, quick: 100,
		build: func(n int) *workload { return single("chain", shapeChain, n, chainGraph(n), false) },
	},
	{
		name: "fan-10k", desc: "a root, 10,000 parallel no-op leaves depending on it, and a join depending on every leaf (10,002 steps)",
		shape: shapeFan, full: 10000, quick: 1000,
		build: func(n int) *workload { return single("fan", shapeFan, n, fanGraph(n), true) },
	},
	{
		name: "random-10k", desc: fmt.Sprintf("a random DAG of 10,000 parallel no-op steps, each depending on up to 3 earlier steps (seed %d)", randomSeed),
		shape: shapeRandom, full: 10000, quick: 1000,
		// One repetition at 10,000 took 5 min 15 s on go-workflows in
		// memory.
		maxSize: map[string]int{"go-workflows-sqlite-mem": 3000, "go-workflows-sqlite-file": 3000},
		build:   func(n int) *workload { return single("random", shapeRandom, n, randomGraph(n, randomSeed), true) },
	},
	{
		name: "orders-1k", desc: "1,000 order workflows of 5 chained steps (the hosted docs' order chain and one more step), created at once",
		shape: shapeOrder, full: 1000, quick: 100,
		build: buildOrders,
	},
	{
		name: "map-10k", desc: "a root, a map step over a list of 10,000 items in the context, and a join (10,002 units): the fan-out above whose width is data; the peers run it as the fan-out (futures in a loop)",
		shape: shapeFan, full: 10000, quick: 1000,
		build: func(n int) *workload { return mapWorkload("map", n) },
	},
	{
		name: "fan100k-mem", desc: "the memory check: a root, 100,000 parallel no-op leaves and a join on dagflow-memory (and errgroup)",
		shape: shapeFan, full: 100000, quick: 10000,
		only:  []string{"errgroup", "dagflow-memory"},
		build: func(n int) *workload { return single("fan100k", shapeFan, n, fanGraph(n), true) },
	},
	{
		name: "map100k-mem", desc: "the memory check of map steps: a root, a map of 100,000 items and a join on dagflow-memory (and errgroup)",
		shape: shapeFan, full: 100000, quick: 10000,
		only:  []string{"errgroup", "dagflow-memory"},
		build: func(n int) *workload { return mapWorkload("map100k", n) },
	},
}

// mapWorkload is a root, a map over n items of the context, and a join; for
// the peers and errgroup, the fan-out of n leaves.
func mapWorkload(id string, n int) *workload {
	items := make([]int, n)
	for i := range items {
		items[i] = i
	}
	list, _ := json.Marshal(map[string]any{"items": items})
	wf := dagflow.Workflow{ID: id, Context: list, Steps: []dagflow.Step{
		{ID: "root", Handler: noopHandler},
		{ID: "each", Handler: noopHandler, DependsOn: []string{"root"}, Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.items"}}},
		{ID: "join", Handler: noopHandler, DependsOn: []string{"each"}},
	}}
	g := fanGraph(n)
	return &workload{shape: shapeFan, size: n, defs: []dagflow.Workflow{wf}, graphs: []graph{g}, steps: len(g)}
}

func single(id string, sh shape, size int, g graph, parallel bool) *workload {
	return &workload{shape: sh, size: size, defs: []dagflow.Workflow{g.workflow(id, parallel)},
		graphs: []graph{g}, steps: len(g)}
}

func buildOrders(n int) *workload {
	w := &workload{shape: shapeOrder, size: n}
	g := chainGraph(len(orderSteps))
	for i := range n {
		wf := orderWorkflow(i)
		var o order
		json.Unmarshal(wf.Context, &o)
		w.defs = append(w.defs, wf)
		w.graphs = append(w.graphs, g)
		w.orders = append(w.orders, o)
		w.steps += len(wf.Steps)
	}
	return w
}

// startAll calls start for each workflow of w at once, one goroutine
// each (as a service taking many orders at the same moment would), and
// returns their errors joined once every call has returned.
func startAll(w *workload, start func(i int) error) error {
	errs := make([]error, len(w.defs))
	var wg sync.WaitGroup
	for i := range w.defs {
		wg.Go(func() { errs[i] = start(i) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// sizeLabel describes a workload's size for the table.
func (w *workload) sizeLabel() string {
	if w.shape == shapeOrder {
		return fmt.Sprintf("%s wf x %d", thousands(len(w.defs)), len(orderSteps))
	}
	return thousands(w.steps)
}
