package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dagflow/dagflow"
)

const graphHelp = `Usage: dagflow graph [--format dot|mermaid] [--db FILE] (FILE.json | ID)

Graph prints the dependency graph of a workflow on stdout, as Graphviz dot
(render it with 'dot -Tsvg') or as a Mermaid flowchart (paste it into a
Markdown file). An argument that names an existing file is read as a workflow
file; any other is the id of a run in the database, whose steps are coloured
by state and labelled with it:
  pending white, running light blue, waiting yellow, completed green,
  failed red, skipped grey, cancelled orange, compensated violet,
  compensationFailed pink.
Steps that do other work than a url or handler say so under their id: (map),
(sub-workflow), (map of sub-workflows), (sleep), (wait for event NAME).
Reading a run only reads the database: unfinished runs are not resumed.

A workflow file whose only problems are cycles is drawn all the same, with a
note on stderr naming each cycle.

Exit status: 0, 2 an invalid workflow file, an unknown run id or a bad flag,
3 the database is in use or cannot be opened.
`

func (c *cli) cmdGraph(ctx context.Context, args []string) error {
	fs := c.newFlagSet("graph", graphHelp)
	var f dbFlags
	f.register(c, fs)
	format := fs.String("format", "dot", "the output `format`: dot or mermaid")
	pos, err := c.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	var draw func(io.Writer, *dagflow.Workflow, map[string]dagflow.State) error
	switch *format {
	case "dot":
		draw = drawDot
	case "mermaid":
		draw = drawMermaid
	default:
		return inputError("graph: --format %q: not dot or mermaid", *format)
	}
	arg := pos[0]
	if fi, err := os.Stat(arg); arg == "-" || (err == nil && !fi.IsDir()) {
		wf, ve, err := c.loadWorkflow(arg)
		if err != nil {
			return err
		}
		if ve != nil {
			// A cycle is drawn, to be seen; any other problem is not.
			for _, p := range ve.Problems {
				if p.Path != "" || !strings.HasPrefix(p.Message, "cycle: ") {
					return problemsError(displayName(arg), ve)
				}
			}
			for _, p := range ve.Problems {
				c.note(displayName(arg), "%s (drawn all the same; the workflow cannot run)", p)
			}
		}
		return c.writeOut(draw, &wf, nil)
	}
	if _, err := os.Stat(f.db); errors.Is(err, os.ErrNotExist) {
		return inputError("%s: no such file (nor a database %s to find a run with that id in)", arg, f.db)
	}
	eng, err := c.open(&f, openReadOnly)
	if err != nil {
		return err
	}
	defer c.close(eng)
	wf, err := eng.Workflow(ctx, arg)
	if errors.Is(err, dagflow.ErrNotFound) {
		return inputError("%s: no such file, nor a run with that id in %s", arg, f.db)
	} else if err != nil {
		return c.runError(f.db, arg, err)
	}
	st, err := eng.Status(ctx, arg)
	if err != nil {
		return c.runError(f.db, arg, err)
	}
	states := make(map[string]dagflow.State, len(st.Steps))
	for _, s := range st.Steps {
		states[s.ID] = s.State
	}
	return c.writeOut(draw, wf, states)
}

func (c *cli) writeOut(draw func(io.Writer, *dagflow.Workflow, map[string]dagflow.State) error,
	wf *dagflow.Workflow, states map[string]dagflow.State) error {
	if err := draw(c.stdout, wf, states); err != nil {
		return opError("writing the output: %v", err)
	}
	return nil
}

// stateColors are the fill colours of steps by state (CSS colour names,
// which Graphviz and Mermaid both know).
var stateColors = map[dagflow.State]string{
	dagflow.StatePending:            "white",
	dagflow.StateRunning:            "lightblue",
	dagflow.StateWaiting:            "lightyellow",
	dagflow.StateCompleted:          "palegreen",
	dagflow.StateFailed:             "salmon",
	dagflow.StateSkipped:            "lightgrey",
	dagflow.StateCancelled:          "orange",
	dagflow.StateCompensated:        "violet",
	dagflow.StateCompensationFailed: "pink",
}

// drawDot writes wf as a Graphviz digraph, left to right; with states, each
// step is filled with the colour of its state and labelled with it.
func drawDot(w io.Writer, wf *dagflow.Workflow, states map[string]dagflow.State) error {
	var b strings.Builder
	fmt.Fprintf(&b, "digraph %s {\n", dotQuote(wf.ID))
	b.WriteString("  rankdir=LR;\n")
	b.WriteString("  node [shape=box, style=\"rounded,filled\", fillcolor=white];\n")
	for _, s := range wf.Steps {
		label := s.ID
		if k := stepKind(&s); k != "" {
			label += "\n(" + k + ")"
		}
		switch {
		case states != nil:
			st := states[s.ID]
			fmt.Fprintf(&b, "  %s [label=%s, fillcolor=%s];\n", dotQuote(s.ID),
				dotQuote(label+"\n"+string(st)), stateColor(st))
		case label != s.ID:
			fmt.Fprintf(&b, "  %s [label=%s];\n", dotQuote(s.ID), dotQuote(label))
		default:
			fmt.Fprintf(&b, "  %s;\n", dotQuote(s.ID))
		}
	}
	for _, s := range wf.Steps {
		for _, d := range s.DependsOn {
			fmt.Fprintf(&b, "  %s -> %s;\n", dotQuote(d), dotQuote(s.ID))
		}
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// dotQuote returns s as a DOT double-quoted string.
func dotQuote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", "")
	return `"` + r.Replace(s) + `"`
}

// drawMermaid writes wf as a Mermaid flowchart, left to right. Steps are
// nodes s0, s1, ... in declaration order, labelled with their ids (and
// states), since step ids may hold characters Mermaid ids cannot.
func drawMermaid(w io.Writer, wf *dagflow.Workflow, states map[string]dagflow.State) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%%%% workflow %s\n", mermaidText(wf.ID))
	b.WriteString("flowchart LR\n")
	node := make(map[string]string, len(wf.Steps))
	for i, s := range wf.Steps {
		node[s.ID] = fmt.Sprintf("s%d", i)
	}
	used := map[dagflow.State]bool{}
	for _, s := range wf.Steps {
		label := mermaidText(s.ID)
		if k := stepKind(&s); k != "" {
			label += "<br/>(" + mermaidText(k) + ")"
		}
		if states != nil {
			label += "<br/>" + string(states[s.ID])
		}
		fmt.Fprintf(&b, "  %s[\"%s\"]\n", node[s.ID], label)
		if states != nil {
			fmt.Fprintf(&b, "  class %s %s\n", node[s.ID], states[s.ID])
			used[states[s.ID]] = true
		}
	}
	for _, s := range wf.Steps {
		for _, d := range s.DependsOn {
			fmt.Fprintf(&b, "  %s --> %s\n", node[d], node[s.ID])
		}
	}
	for _, st := range []dagflow.State{dagflow.StatePending, dagflow.StateRunning, dagflow.StateWaiting, dagflow.StateCompleted,
		dagflow.StateFailed, dagflow.StateSkipped, dagflow.StateCancelled, dagflow.StateCompensated,
		dagflow.StateCompensationFailed} {
		if used[st] {
			fmt.Fprintf(&b, "  classDef %s fill:%s,stroke:#333\n", st, stateColor(st))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// stepKind says what a step does when it is not one call of a url or
// handler, or "".
func stepKind(s *dagflow.Step) string {
	switch {
	case s.Map != nil && s.Workflow != nil:
		return "map of sub-workflows"
	case s.Map != nil:
		return "map"
	case s.Workflow != nil:
		return "sub-workflow"
	case s.Sleep != nil:
		return "sleep"
	case s.WaitForEvent != nil:
		return "wait for event " + s.WaitForEvent.Name
	}
	return ""
}

// mermaidText escapes s for a quoted Mermaid label with entity codes.
func mermaidText(s string) string {
	r := strings.NewReplacer("#", "#35;", `"`, "#quot;", "<", "#lt;", ">", "#gt;", "\n", " ", "\r", "")
	return r.Replace(s)
}

func stateColor(st dagflow.State) string {
	if c, ok := stateColors[st]; ok {
		return c
	}
	return "white"
}
