package console

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

// shapes are workflows of 200 steps: a chain, stages of fan-out and
// fan-in, and a dense graph (a binary tree with cross edges).
func shapes() map[string]*dagflow.Workflow {
	chain, stages, dense := &dagflow.Workflow{}, &dagflow.Workflow{}, &dagflow.Workflow{}
	for i := range 200 {
		s := dagflow.Step{ID: fmt.Sprintf("step-%03d", i)}
		if i > 0 {
			s.DependsOn = []string{fmt.Sprintf("step-%03d", i-1)}
		}
		chain.Steps = append(chain.Steps, s)

		s = dagflow.Step{ID: fmt.Sprintf("stage-%02d-item-%d", i/10, i%10)}
		if i >= 10 {
			for k := 0; k < 10; k += 3 {
				s.DependsOn = append(s.DependsOn, fmt.Sprintf("stage-%02d-item-%d", i/10-1, k))
			}
		}
		stages.Steps = append(stages.Steps, s)

		s = dagflow.Step{ID: fmt.Sprintf("n%d", i)}
		if i > 0 {
			s.DependsOn = append(s.DependsOn, fmt.Sprintf("n%d", (i-1)/2))
		}
		if i > 3 && (i-3) != (i-1)/2 {
			s.DependsOn = append(s.DependsOn, fmt.Sprintf("n%d", i-3))
		}
		dense.Steps = append(dense.Steps, s)
	}
	return map[string]*dagflow.Workflow{"chain": chain, "stages": stages, "dense": dense}
}

// TestLayout200Steps lays out graphs of 200 steps with Graphviz, measures
// it, and checks that the second time comes from the cache.
func TestLayout200Steps(t *testing.T) {
	ctx := context.Background()
	for name, wf := range shapes() {
		start := time.Now()
		l, err := layoutGraph(ctx, wf)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		first := time.Since(start)
		start = time.Now()
		again, err := layoutGraph(ctx, wf)
		cached := time.Since(start)
		if err != nil || again != l {
			t.Errorf("%s: the second layout is not the cached one (%v)", name, err)
		}
		t.Logf("%-6s 200 steps, %3d edges: laid out in %v, from the cache in %v; %.0fx%.0f px",
			name, len(l.Edges), first.Round(time.Millisecond), cached, l.Width, l.Height)
		if first > 20*time.Second {
			t.Errorf("%s: layout took %v", name, first)
		}
		for i, b := range l.Nodes {
			if b.W < nodeMinWidth-0.1 || math.Abs(b.H-nodeHeight) > 0.1 || b.X < 0 || b.Y < 0 || b.X+b.W > l.Width+0.5 || b.Y+b.H > l.Height+0.5 {
				t.Fatalf("%s: node %d at %+v, outside %vx%v", name, i, b, l.Width, l.Height)
			}
		}
	}
}

func TestLayoutLimit(t *testing.T) {
	wf := &dagflow.Workflow{}
	for i := range maxGraphSteps + 1 {
		wf.Steps = append(wf.Steps, dagflow.Step{ID: fmt.Sprint(i)})
	}
	if _, err := layoutGraph(context.Background(), wf); err == nil || !strings.Contains(err.Error(), "up to 400") {
		t.Errorf("layout of %d steps: %v", len(wf.Steps), err)
	}
}

func TestDotSourceHasNoIDs(t *testing.T) {
	// Graphviz never sees a step id, so no id can change the DOT text.
	wf := &dagflow.Workflow{Steps: []dagflow.Step{{ID: `a"];evil[label="x`}, {ID: "b\\", DependsOn: []string{`a"];evil[label="x`}}}}
	src := string(dotSource(wf, "LR"))
	if strings.Contains(src, "evil") || !strings.Contains(src, "n0->n1;") {
		t.Errorf("DOT source:\n%s", src)
	}
}

func TestParsePlain(t *testing.T) {
	out := "graph 1 4 2\nnode n0 1 1 1.5 0.6 \"\" solid box black lightgrey\nnode n1 3 1 1.5 0.6 \"\" solid box black lightgrey\n" +
		"edge n0 n1 4 1.75 1 2 1 2.1 1 2.25 1 solid black\nstop\n"
	l, err := parsePlain([]byte(out), 2)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 0.01 }
	if !near(l.Width, 4*72+2*graphPad) || !near(l.Nodes[1].X, 3*72+graphPad-54) || !near(l.Nodes[0].Y, 72+graphPad-21.6) {
		t.Errorf("layout %+v", l)
	}
	if len(l.Edges) != 1 || l.Edges[0].Path != "M134.0,80.0 C152.0,80.0 159.2,80.0 170.0,80.0" {
		t.Errorf("edges %+v", l.Edges)
	}
	for _, bad := range []string{"graph 1 4 2\nstop\n", "graph 1 4 2\nnode n5 1 1 1 1\nstop\n", "graph 1 4 2\nnode n0 1 1 1 1\nnode n1 1 1 1 1\nedge n0 n1 3 1 1 2 2 3 3\nstop\n", "graph 1 4 2\n"} {
		if _, err := parsePlain([]byte(bad), 2); err == nil {
			t.Errorf("parsePlain accepted %q", bad)
		}
	}
}
