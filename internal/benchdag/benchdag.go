// Package benchdag holds what the root package's benchmarks and the
// benchmarks module share, so that both measure the same thing: the DAG
// shapes (a chain, a fan-out with a fan-in, a random DAG), the
// hand-written errgroup program that is the floor the engine is compared
// with.
package benchdag

import (
	"math/rand/v2"

	"golang.org/x/sync/errgroup"

	"github.com/dagflow/dagflow"
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
