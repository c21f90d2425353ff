package console

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/goccy/go-graphviz"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console/internal/gvcache"
)

// go-graphviz has set itself up (with its cache in a directory of the
// user's own: see package gvcache); TMPDIR is the application's again.
func init() { gvcache.Restore() }

// The graph is laid out by Graphviz's dot (github.com/goccy/go-graphviz,
// Graphviz compiled to WebAssembly and run by wazero: no cgo, no
// executable) and drawn by the console's own template, so that every
// node carries its state as a class and every id is escaped by
// html/template. Graphviz sees no step id: nodes are named n0, n1, ...
// and sized by the console, so the layout depends only on the shape of the
// workflow and is cached by it.

// Sizes of a node in the drawing, in pixels.
const (
	nodeHeight   = 44
	nodeMinWidth = 140
	nodeMaxWidth = 300
	labelRunes   = 36  // longer step ids are cut in the drawing
	charWidth    = 7.3 // of the 12px monospace label
	graphPad     = 8
)

// maxGraphSteps bounds the workflows the console lays out: dot's time
// grows fast past a few hundred nodes, and the layout holds the one
// Graphviz instance of the process. Larger workflows get the timeline and
// the step list only.
const maxGraphSteps = 400

// layout is where dot put the nodes and edges of a graph, in pixels.
type layout struct {
	Width, Height float64
	Nodes         []box // by step index
	Edges         []edgeLine
}

type box struct{ X, Y, W, H float64 } // top-left corner and size

type edgeLine struct {
	From, To int
	Path     string // SVG path data
}

// graphViz is the one Graphviz of the process: its WebAssembly module is
// global and not safe for concurrent use, so every call holds gvMu.
var (
	gvMu    sync.Mutex
	gv      *graphviz.Graphviz
	gvCache = newLayoutCache(256)
)

// dotSource writes the graph of wf for dot, drawn in direction dir (LR
// or TB): nodes n<index> of the console's sizes, edges from dependsOn.
func dotSource(wf *dagflow.Workflow, dir string) []byte {
	index := make(map[string]int, len(wf.Steps))
	for i, s := range wf.Steps {
		index[s.ID] = i
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "digraph{graph[rankdir=%s,nodesep=0.25,ranksep=0.45,mclimit=0.5,nslimit=4,nslimit1=4];", dir)
	b.WriteString("node[shape=box,fixedsize=true,label=\"\"];\n")
	for i, s := range wf.Steps {
		w, h := nodeSize(s)
		fmt.Fprintf(&b, "n%d[width=%.4f,height=%.4f];\n", i, w/72, h/72)
	}
	for i, s := range wf.Steps {
		for _, d := range s.DependsOn {
			if j, ok := index[d]; ok {
				fmt.Fprintf(&b, "n%d->n%d;\n", j, i)
			}
		}
	}
	b.WriteString("}\n")
	return b.Bytes()
}

// nodeWidth is the width in pixels of a step's node.
func nodeWidth(id string) float64 {
	n := min(utf8.RuneCountInString(id), labelRunes)
	return min(max(34+float64(n)*charWidth+14, nodeMinWidth), nodeMaxWidth)
}

// nodeSize is the size in pixels of a step's node: a map step's leaves
// room for the cards stacked behind it, and for the link to its items; a
// workflow step's for the link to its child run.
func nodeSize(s dagflow.Step) (w, h float64) {
	w, h = nodeWidth(s.ID), nodeHeight
	switch {
	case s.Map != nil:
		w = max(w+linkRoom, mapMinWidth) + stackPad
		h += stackPad
	case s.Workflow != nil:
		w += linkRoom
	case s.Sleep != nil || s.WaitForEvent != nil:
		w = max(w, waitMinWidth)
	}
	return w, h
}

// The size of the screen a graph should fit, in pixels.
const screenWidth, screenHeight = 1200, 800

// overflow says how many screens the drawing needs across or down.
func (l *layout) overflow() float64 { return max(l.Width/screenWidth, l.Height/screenHeight) }

// layoutGraph lays out the graph of wf, from the cache when a workflow of
// the same shape was laid out before. Graphs read best left to right; one
// that comes out much wider than a screen is laid out top to bottom too,
// and the drawing that fits a screen better is kept.
func layoutGraph(ctx context.Context, wf *dagflow.Workflow) (*layout, error) {
	if len(wf.Steps) > maxGraphSteps {
		return nil, fmt.Errorf("the workflow has %d steps; the console draws graphs of up to %d", len(wf.Steps), maxGraphSteps)
	}
	src := dotSource(wf, "LR")
	key := sha256.Sum256(src)
	if l, ok := gvCache.get(key); ok {
		return l, nil
	}
	gvMu.Lock()
	defer gvMu.Unlock()
	if l, ok := gvCache.get(key); ok { // laid out while we waited
		return l, nil
	}
	l, err := runDot(ctx, src, len(wf.Steps))
	if err != nil {
		return nil, err
	}
	if l.Width > 2*screenWidth {
		if tb, err := runDot(ctx, dotSource(wf, "TB"), len(wf.Steps)); err == nil && tb.overflow() < l.overflow() {
			l = tb
		}
	}
	gvCache.put(key, l)
	return l, nil
}

// runDot lays out a graph of n nodes with dot. The caller holds gvMu.
func runDot(ctx context.Context, src []byte, n int) (*layout, error) {
	plain, err := dotPlain(ctx, src)
	if err != nil {
		return nil, err
	}
	return parsePlain(plain, n)
}

// dotPlain runs dot on src and returns its "plain" output. The caller
// holds gvMu.
func dotPlain(ctx context.Context, src []byte) (out []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("graphviz panicked: %v", p)
		}
	}()
	if gv == nil {
		g, err := graphviz.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("starting graphviz: %w", err)
		}
		gv = g
	}
	g, err := graphviz.ParseBytes(src)
	if err != nil {
		return nil, fmt.Errorf("graphviz: %w", err)
	}
	defer g.Close()
	var b bytes.Buffer
	if err := gv.Render(ctx, g, "plain", &b); err != nil {
		return nil, fmt.Errorf("graphviz: %w", err)
	}
	return b.Bytes(), nil
}

// parsePlain reads dot's plain output: "graph scale w h", "node name x y w
// h ...", "edge tail head n x1 y1 ... xn yn ...", "stop", in inches with y
// upwards.
func parsePlain(out []byte, steps int) (*layout, error) {
	l := &layout{Nodes: make([]box, steps)}
	seen := make([]bool, steps)
	var height float64 // of the graph, in inches
	px := func(x float64) float64 { return x*72 + graphPad }
	py := func(y float64) float64 { return (height-y)*72 + graphPad }
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "graph":
			v, err := floats(f[1:], 3)
			if err != nil {
				return nil, err
			}
			height = v[2]
			l.Width, l.Height = v[1]*72+2*graphPad, v[2]*72+2*graphPad
		case "node":
			if len(f) < 6 {
				return nil, errors.New("graphviz: short node line")
			}
			i, ok := nodeIndex(f[1], steps)
			v, err := floats(f[2:], 4)
			if !ok || err != nil {
				return nil, fmt.Errorf("graphviz: bad node line %q", sc.Text())
			}
			w, h := v[2]*72, v[3]*72
			l.Nodes[i] = box{X: px(v[0]) - w/2, Y: py(v[1]) - h/2, W: w, H: h}
			seen[i] = true
		case "edge":
			if len(f) < 4 {
				return nil, errors.New("graphviz: short edge line")
			}
			from, ok1 := nodeIndex(f[1], steps)
			to, ok2 := nodeIndex(f[2], steps)
			n, err := strconv.Atoi(f[3])
			if !ok1 || !ok2 || err != nil || n < 4 || (n-1)%3 != 0 {
				return nil, fmt.Errorf("graphviz: bad edge line %q", sc.Text())
			}
			pts, err := floats(f[4:], 2*n)
			if err != nil {
				return nil, err
			}
			var d strings.Builder
			for k := 0; k < n; k++ {
				switch {
				case k == 0:
					d.WriteString("M")
				case k%3 == 1:
					d.WriteString(" C")
				default:
					d.WriteString(" ")
				}
				fmt.Fprintf(&d, "%.1f,%.1f", px(pts[2*k]), py(pts[2*k+1]))
			}
			l.Edges = append(l.Edges, edgeLine{From: from, To: to, Path: d.String()})
		case "stop":
			for i, ok := range seen {
				if !ok {
					return nil, fmt.Errorf("graphviz: no place for node %d", i)
				}
			}
			return l, nil
		}
	}
	return nil, errors.New("graphviz: plain output cut short")
}

func nodeIndex(name string, steps int) (int, bool) {
	if !strings.HasPrefix(name, "n") {
		return 0, false
	}
	i, err := strconv.Atoi(name[1:])
	return i, err == nil && i >= 0 && i < steps
}

func floats(f []string, n int) ([]float64, error) {
	if len(f) < n {
		return nil, errors.New("graphviz: short line in plain output")
	}
	v := make([]float64, n)
	for i := range v {
		x, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			return nil, fmt.Errorf("graphviz: %w", err)
		}
		v[i] = x
	}
	return v, nil
}

// layoutCache keeps the layouts of the last workflow shapes drawn, up to a
// number, dropping the oldest first.
type layoutCache struct {
	mu    sync.Mutex
	max   int
	m     map[[32]byte]*layout
	order [][32]byte
}

func newLayoutCache(n int) *layoutCache {
	return &layoutCache{max: n, m: make(map[[32]byte]*layout)}
}

func (c *layoutCache) get(k [32]byte) (*layout, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.m[k]
	return l, ok
}

func (c *layoutCache) put(k [32]byte, l *layout) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[k]; ok {
		return
	}
	if len(c.order) == c.max {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = l
	c.order = append(c.order, k)
}
