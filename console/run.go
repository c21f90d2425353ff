package console

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
)

// runView is what a run's page shows.
type runView struct {
	pageView
	Status   *dagflow.Status
	RunURL   string // the run's URL relative to the page, for its sub-resources
	Duration string
	Done     int
	Live     bool     // the run may still change
	Error    textView // the run's error, folded when long
	Parent   *parentView
	Children *childrenView
	Waiting  []waitView // steps waiting for a time or an event
	Removal  time.Time  // when the engine's retention removes the run; zero for never
	// Queued says what a run queued by its concurrency key waits for.
	Queued    string
	Graph     *graphView
	GraphNote string
	Timeline  *timelineView
	Steps     []stepView
	Context   jsonView
	Hooks     []hookView
	Actions   *actionsView // nil when actions are off
}

type actionsView struct {
	CSRF          string
	Token         bool // the forms ask for the token
	Retry, Cancel bool // which actions fit the run's state
	// Rerun says whether "rerun from this step" fits the run's state;
	// each step says whether it fits the step (stepView.Rerun).
	Rerun bool
	// Note says why a child run offers neither: it runs again with its
	// parent.
	Note string
}

// parentView is the run whose step started a child run.
type parentView struct {
	ID, URL       string
	Step, StepURL string // the step that started the child, and its page
	Item          string // the item of a map step, or ""
}

// childrenView lists the child runs of a run, the first page of them.
type childrenView struct {
	Runs []runRow
	More string // the run list of every child, when there are more
}

// waitView is a step that waits: for a time (a sleep) or an event.
type waitView struct {
	Index int
	ID    string
	What  string
}

type hookView struct {
	dagflow.Webhook
	Err textView
}

type stepView struct {
	dagflow.StepStatus
	Index    int
	Kind     string // "Go handler", "HTTP", "Sub-workflow", "Sleep", "Event"
	Target   string // the handler's name, the (redacted) URL, what it waits for
	Map      *mapView
	ChildURL string // the page of the child run of a workflow step
	Wait     string // what a waiting step waits for: "until ...", "for the event ..."
	// Works says the step has attempts of its own (handler and HTTP
	// steps, and a map's items): the step shows its input and attempts.
	Works bool
	// Anchor is what links to another step on the page begin with: ""
	// on the run's page, the run's URL on a step's page.
	Anchor string
	// ItemsURL leads to a map step's items.
	ItemsURL  string
	DependsOn []depView
	Duration  string
	Err       textView
	Result    jsonView
	InputURL  string
	PageURL   string // the step's own page (a map's items)
	History   []attemptView
	// ItemAttempts counts the attempts of a map step's items, which its
	// page shows rather than the run's.
	ItemAttempts int
	Critical     bool
	Open         bool // shown unfolded
	Rerun        bool // "rerun from this step" is offered
	RerunNote    string
	// RerunURL is where its form posts, Form the form's fields, Back
	// "step" when the form comes back to the step's page.
	RerunURL string
	Form     *actionsView
	Back     string
}

// mapView is what a map step runs over, and how far it got.
type mapView struct {
	Over           string // the items' path, or "a list of N items"
	MaxConcurrency int
	Tolerated      string
	Counts         dagflow.ItemCounts
	Started        bool // Counts are known
}

// depView is a dependency of a step with its result: part of the step's
// input.
type depView struct {
	ID     string
	Index  int
	State  dagflow.State
	Result jsonView
}

type attemptView struct {
	dagflow.Attempt
	Took  string
	Class string
	Err   textView
}

// graphView is the DAG of a run as the page draws it.
type graphView struct {
	Width, Height string
	Nodes         []nodeView
	Edges         []edgeView
}

type nodeView struct {
	Index        int
	ID, Label    string
	State        dagflow.State
	Kind         string // the step's kind as a class: map, workflow, sleep, waitForEvent, or ""
	Sub          string
	X, Y, W, H   string
	Stack        []rectView // the cards behind a map step's node
	CX, CY       string     // the state dot
	TX, LY, SY   string     // label and sub-line positions
	Critical     bool
	AttemptCount int
	// Link leads from the node to the items of a map step or the child
	// run of a workflow step; LinkText names it; LX is where it ends.
	Link, LinkText, LinkTitle string
	LX                        string
}

type rectView struct{ X, Y, W, H string }

type edgeView struct {
	Path     string
	Done     bool // the dependency completed
	Critical bool // on the critical path
}

// runData is what the pages of a run read from the engine.
type runData struct {
	st   *dagflow.Status
	wf   *dagflow.Workflow
	atts []dagflow.Attempt
	now  time.Time
	base string // the console's root relative to the page
	self string // the run's URL relative to the page
}

// read reads a run's status, workflow and attempts. It returns the
// engine's error for an unknown run.
func (c *console) read(r *request) (*runData, error) {
	ctx := r.Context()
	id := r.runID()
	st, err := c.eng.Status(ctx, id)
	if err != nil {
		return nil, err
	}
	wf, err := c.eng.Workflow(ctx, id)
	if err != nil {
		return nil, err
	}
	atts, err := c.eng.Attempts(ctx, id)
	if err != nil {
		return nil, err
	}
	scrubStatus(st)
	scrubAttempts(atts)
	return &runData{st: st, wf: wf, atts: atts, now: c.now(), base: r.base, self: r.base + runURL(id)}, nil
}

// load reads what a run's page shows. It returns the engine's error for an
// unknown run.
func (c *console) load(r *request) (*runView, error) {
	ctx := r.Context()
	d, err := c.read(r)
	if err != nil {
		return nil, err
	}
	st, wf, now, self := d.st, d.wf, d.now, d.self
	hooks, err := c.eng.Webhooks(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	v := &runView{
		pageView: c.page(r, st.ID), Status: st, RunURL: self, Live: !st.State.Final(),
		Duration: runDuration(st.StartedAt, st.CompletedAt, st.State, now), Done: len(st.CompletedSteps),
		Error: newTextView(st.Error, self+"/error"), Context: newJSONView(st.Context, ""),
	}
	for _, h := range hooks {
		h.URL, h.LastError = redactURL(h.URL), scrub(h.LastError)
		v.Hooks = append(v.Hooks, hookView{Webhook: h, Err: newTextView(h.LastError, "")})
	}
	if v.Live {
		v.Refresh = 5
	}
	if st.Parent != "" {
		v.Parent = newParentView(r.base, st.ID, st.Parent)
	}
	if hasChildren(wf) {
		kids, err := c.eng.List(ctx, dagflow.ListOptions{Parent: st.ID, Limit: maxChildren})
		if err != nil {
			return nil, err
		}
		if len(kids.Runs) > 0 {
			v.Children = &childrenView{Runs: c.rows(r.base, kids.Runs, now)}
			for i := range v.Children.Runs {
				v.Children.Runs[i].Parent = "" // this run
			}
			if kids.Next != "" {
				v.Children.More = r.base + listURL(dagflow.ListOptions{Parent: st.ID, Limit: defaultPageSize}, "")
			}
		}
	}
	if st.Phase == "queued" && wf.Concurrency != nil {
		v.Queued = fmt.Sprintf("a free slot: at most %s with the same %s may have steps under way at once, and this one waits its turn",
			plural(wf.Concurrency.Limit, "run"), wf.Concurrency.Key)
	}
	if runs, _ := c.eng.Retention(); runs > 0 && st.State.Final() && st.Parent == "" && !st.CompletedAt.IsZero() {
		v.Removal = st.CompletedAt.Add(runs)
	}
	critical := findCriticalPath(wf, d.atts, st, now)
	v.Timeline = newTimeline(st, d.atts, critical, now)
	v.Steps = stepViews(d, critical)
	for _, s := range v.Steps {
		if s.Wait != "" {
			v.Waiting = append(v.Waiting, waitView{Index: s.Index, ID: s.ID, What: s.Wait})
		}
	}
	if l, err := layoutGraph(ctx, wf); err != nil {
		v.GraphNote = "No graph: " + err.Error()
		slog.Debug("dagflow console: laying out a graph", "run", st.ID, "error", err)
	} else {
		v.Graph = newGraphView(l, st, wf, critical, v.Steps)
	}
	return v, nil
}

// maxChildren is how many child runs a run's page lists; the run list,
// filtered by parent, has them all.
const maxChildren = 20

// hasChildren reports whether a workflow has steps that start child runs.
func hasChildren(wf *dagflow.Workflow) bool {
	for _, s := range wf.Steps {
		if s.Workflow != nil {
			return true
		}
	}
	return false
}

// newParentView reads the step that started a child run from the child's
// id: "<parent>/<step>" or, for an item of a map step,
// "<parent>/<step>/<index>".
func newParentView(base, id, parent string) *parentView {
	p := &parentView{ID: parent, URL: base + runURL(parent)}
	rest, ok := strings.CutPrefix(id, parent+"/")
	if !ok {
		return p
	}
	p.Step, p.Item, _ = strings.Cut(rest, "/")
	p.StepURL = p.URL + "/steps/" + url.PathEscape(p.Step)
	return p
}

func (c *console) runPage(w http.ResponseWriter, r *request) {
	v, err := c.load(r)
	if err != nil {
		c.engineError(w, r, err)
		return
	}
	if c.cfg.actions {
		a := &actionsView{CSRF: c.csrfToken(w, r), Token: c.cfg.token != "", Cancel: !v.Status.State.Final()}
		if v.Status.Parent != "" {
			if v.Status.State.Final() {
				a.Note = "This run is a child of run " + v.Status.Parent + ": retry or rerun that run, and this one runs again with it."
			}
		} else {
			a.Retry, a.Rerun = retryable(v.Status), rerunnable(v.Status)
			for i := range v.Steps {
				s := &v.Steps[i]
				s.Rerun, s.Form = a.Rerun && s.RerunNote == "", a
				if !a.Rerun {
					s.RerunNote = ""
				}
			}
		}
		v.Actions = a
	}
	c.render(w, r, http.StatusOK, "run", v)
}

// retryable reports whether Engine.Retry takes the run: failed or
// cancelled, and not a saga that was compensated.
func retryable(st *dagflow.Status) bool {
	if st.State != dagflow.StateFailed && st.State != dagflow.StateCancelled {
		return false
	}
	return !rolledBack(st)
}

// rerunnable reports whether a step of the run may run again with what is
// downstream of it (Engine.Rerun): the run has ended, and is not a saga
// that was compensated.
func rerunnable(st *dagflow.Status) bool {
	return st.State.Final() && !rolledBack(st)
}

// rolledBack reports whether a saga compensated steps of the run.
func rolledBack(st *dagflow.Status) bool {
	for _, s := range st.Steps {
		if s.Compensation != nil {
			return true
		}
	}
	return false
}

// rerunBlocker says why a step cannot run again on its own, or "": each
// of its dependencies must have completed (a step downstream of one that
// did not is run again by Retry, with that one).
func rerunBlocker(st *dagflow.Status, wf *dagflow.Workflow, i int) string {
	if i >= len(wf.Steps) {
		return ""
	}
	for _, d := range wf.Steps[i].DependsOn {
		for _, s := range st.Steps {
			if s.ID == d && s.State != dagflow.StateCompleted {
				return fmt.Sprintf("its dependency %q is %s, not completed: retry the run, or rerun from %q", d, stateLabel(s.State), d)
			}
		}
	}
	return ""
}

func stepViews(d *runData, critical criticalPath) []stepView {
	st, wf, now, self := d.st, d.wf, d.now, d.self
	index := make(map[string]int, len(st.Steps))
	for i, s := range st.Steps {
		index[s.ID] = i
	}
	history := map[string][]attemptView{}
	items := map[string]int{}
	for _, a := range d.atts {
		if a.Item >= 0 {
			items[a.StepID]++
			continue
		}
		history[a.StepID] = append(history[a.StepID], newAttemptView(a, st, now, self+"/attempts"))
	}
	out := make([]stepView, len(st.Steps))
	for i, s := range st.Steps {
		stepURL := self + "/steps/" + url.PathEscape(s.ID)
		v := stepView{StepStatus: s, Index: i, History: history[s.ID], ItemAttempts: items[s.ID], Critical: critical.has(s.ID),
			Result: newJSONView(s.Result, stepURL+"/result"), InputURL: stepURL + "/input", PageURL: stepURL, RerunURL: stepURL + "/rerun",
			Err: newTextView(s.Error, stepURL+"/error"), ItemsURL: stepURL, Works: s.Kind == "handler" || s.Kind == "http",
			Open: s.State == dagflow.StateFailed || s.State == dagflow.StateCompensationFailed}
		if !s.StartedAt.IsZero() {
			v.Duration = runDuration(s.StartedAt, s.CompletedAt, s.State, now)
			if s.State != dagflow.StateRunning && s.State != dagflow.StateWaiting && s.CompletedAt.IsZero() {
				v.Duration = ""
			}
		}
		if s.Run != "" {
			v.ChildURL = d.base + runURL(s.Run)
		}
		if s.State == dagflow.StateWaiting {
			v.Wait = waitText(s, now)
		}
		v.Kind, v.Target = kindOf(s.Kind), ""
		if i < len(wf.Steps) && wf.Steps[i].ID == s.ID {
			spec := wf.Steps[i]
			v.Kind, v.Target = describe(spec)
			if spec.Map != nil {
				v.Map, v.Works = newMapView(spec.Map, s.Items), true
			}
			for _, d := range spec.DependsOn {
				j := index[d]
				dv := depView{ID: d, Index: j, State: st.Steps[j].State}
				if res, ok := st.Results[d]; ok {
					dv.Result = newJSONView(res, self+"/steps/"+url.PathEscape(d)+"/result")
				}
				v.DependsOn = append(v.DependsOn, dv)
			}
			v.RerunNote = rerunBlocker(st, wf, i)
		}
		out[i] = v
	}
	return out
}

func newAttemptView(a dagflow.Attempt, st *dagflow.Status, now time.Time, rawURL string) attemptView {
	end := attemptEnd(a, st, now)
	return attemptView{Attempt: a, Took: formatDuration(end.Sub(a.StartedAt)), Class: attemptClass(a), Err: newTextView(a.Error, rawURL)}
}

// kindOf names a step's kind (StepStatus.Kind) for people.
func kindOf(kind string) string {
	switch kind {
	case "handler":
		return "Go handler"
	case "http":
		return "HTTP"
	case "workflow":
		return "Sub-workflow"
	case "sleep":
		return "Sleep"
	case "waitForEvent":
		return "Event"
	}
	return kind
}

// describe names what a step does, and what it does it with.
func describe(s dagflow.Step) (kind, target string) {
	switch {
	case s.Workflow != nil:
		return "Sub-workflow", plural(len(s.Workflow.Steps), "step")
	case s.Sleep != nil:
		if s.Sleep.Until != "" {
			return "Sleep", "until " + s.Sleep.Until
		}
		return "Sleep", "for " + formatDuration(s.Sleep.Duration)
	case s.WaitForEvent != nil:
		target = fmt.Sprintf("%q with key %s", s.WaitForEvent.Name, s.WaitForEvent.Key)
		if s.WaitForEvent.Timeout > 0 {
			target += ", for at most " + formatDuration(s.WaitForEvent.Timeout)
		}
		return "Event", target
	case s.Handler != "":
		return "Go handler", s.Handler
	}
	return "HTTP", redactURL(s.URL)
}

// waitText says what a waiting step waits for: "until <time>" for a sleep,
// "for the event ..." for a wait for an event.
func waitText(s dagflow.StepStatus, now time.Time) string {
	switch {
	case s.Event != nil:
		return fmt.Sprintf("for the event %q with key %q", s.Event.Name, s.Event.Key)
	case !s.Until.IsZero():
		w := "until " + formatTime(s.Until) + " UTC"
		if d := s.Until.Sub(now); d > 0 {
			w += " (" + formatDuration(d.Round(time.Second)) + " from now)"
		}
		return w
	}
	return "for its turn"
}

func newMapView(m *dagflow.Map, counts *dagflow.ItemCounts) *mapView {
	v := &mapView{Over: m.Items.Path, MaxConcurrency: m.MaxConcurrency}
	if v.Over == "" {
		var list []json.RawMessage
		json.Unmarshal(m.Items.List, &list)
		v.Over = "a list of " + plural(len(list), "item")
	}
	var tol []string
	if m.ToleratedFailureCount != nil {
		tol = append(tol, plural(*m.ToleratedFailureCount, "failed item"))
	}
	if m.ToleratedFailurePercentage != nil {
		tol = append(tol, strconv.FormatFloat(*m.ToleratedFailurePercentage, 'f', -1, 64)+"% of the items")
	}
	v.Tolerated = strings.Join(tol, " and ")
	if counts != nil {
		v.Counts, v.Started = *counts, true
	}
	return v
}

// Room in a node for the link to a map's items or a child run, and the
// cards stacked behind a map step's node, in pixels.
const (
	linkRoom    = 52
	stackPad    = 6
	mapMinWidth = 236
	// A sleep's or a wait's node is wide enough for what it waits for:
	// the time, or waitRunes of the event's name.
	waitMinWidth = 200
	waitRunes    = 18
)

func newGraphView(l *layout, st *dagflow.Status, wf *dagflow.Workflow, critical criticalPath, steps []stepView) *graphView {
	f := func(x float64) string { return fmt.Sprintf("%.1f", x) }
	g := &graphView{Width: f(l.Width), Height: f(l.Height)}
	for i, s := range st.Steps {
		if i >= len(l.Nodes) || i >= len(steps) {
			break
		}
		b := l.Nodes[i]
		sv := steps[i]
		n := nodeView{Index: i, ID: s.ID, Label: truncate(s.ID, labelRunes), State: s.State, Critical: critical.has(s.ID),
			AttemptCount: s.Attempts}
		n.Sub = stateLabel(s.State)
		if s.Attempts > 1 {
			n.Sub += fmt.Sprintf(" · %d tries", s.Attempts)
		}
		switch {
		case sv.Map != nil:
			n.Kind = "map"
			n.Link, n.LinkText, n.LinkTitle = sv.PageURL, "items ›", "The items of "+s.ID
			if c := sv.Map.Counts; sv.Map.Started {
				n.Sub = fmt.Sprintf("%d/%d done", c.Completed, c.Total)
				if c.Failed > 0 {
					n.Sub += fmt.Sprintf(" · %d failed", c.Failed)
				}
			} else {
				n.Sub += " · map"
			}
			// The node's box leaves room for two cards behind it.
			for k := 2; k > 0; k-- {
				d := float64(k) * stackPad / 2
				n.Stack = append(n.Stack, rectView{f(b.X + d), f(b.Y + stackPad - d), f(b.W - stackPad), f(b.H - stackPad)})
			}
			b = box{X: b.X, Y: b.Y + stackPad, W: b.W - stackPad, H: b.H - stackPad}
		case s.Kind == "workflow":
			n.Kind = "workflow"
			if sv.ChildURL != "" {
				n.Link, n.LinkText, n.LinkTitle = sv.ChildURL, "run ›", "The child run "+s.Run
			}
		case s.Kind == "sleep" || s.Kind == "waitForEvent":
			n.Kind = s.Kind
			if s.State == dagflow.StateWaiting {
				if s.Event != nil {
					n.Sub = "waiting · " + truncate(s.Event.Name, waitRunes)
				} else if !s.Until.IsZero() {
					n.Sub = "waiting · until " + s.Until.UTC().Format("15:04:05")
				}
			}
		}
		n.X, n.Y, n.W, n.H = f(b.X), f(b.Y), f(b.W), f(b.H)
		n.CX, n.CY, n.TX, n.LY, n.SY = f(b.X+16), f(b.Y+16), f(b.X+28), f(b.Y+20), f(b.Y+35)
		n.LX = f(b.X + b.W - 10)
		g.Nodes = append(g.Nodes, n)
	}
	for _, e := range l.Edges {
		if e.From >= len(st.Steps) || e.To >= len(st.Steps) {
			continue
		}
		from, to := st.Steps[e.From], st.Steps[e.To]
		g.Edges = append(g.Edges, edgeView{Path: e.Path, Done: from.State == dagflow.StateCompleted,
			Critical: critical.edge(from.ID, to.ID)})
	}
	return g
}

// statusJSON answers the engine's dagflow.Status of a run, its errors
// scrubbed of URL secrets.
func (c *console) statusJSON(w http.ResponseWriter, r *request) {
	st, err := c.eng.Status(r.Context(), r.runID())
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	scrubStatus(st)
	writeJSON(w, http.StatusOK, st)
}

// attemptsJSON answers the engine's []dagflow.Attempt of a run, their
// errors scrubbed of URL secrets.
func (c *console) attemptsJSON(w http.ResponseWriter, r *request) {
	atts, err := c.eng.Attempts(r.Context(), r.runID())
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	if atts == nil {
		atts = []dagflow.Attempt{}
	}
	scrubAttempts(atts)
	writeJSON(w, http.StatusOK, atts)
}

// stepJSON answers a step's result as the step returned it, or the step's
// input: the body of the HTTP job protocol, with the results of the steps
// that had completed when its latest attempt started.
func (c *console) stepJSON(w http.ResponseWriter, r *request) {
	st, err := c.eng.Status(r.Context(), r.runID())
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	stepID, what := r.segs[3], r.segs[4]
	var step *dagflow.StepStatus
	for i := range st.Steps {
		if st.Steps[i].ID == stepID {
			step = &st.Steps[i]
		}
	}
	if step == nil {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("run %q has no step %q", st.ID, stepID))
		return
	}
	if what == "result" {
		res, ok := st.Results[stepID]
		if !ok {
			writeJSONError(w, http.StatusNotFound, fmt.Sprintf("step %q has no result: it is %s", stepID, step.State))
			return
		}
		writeRawJSON(w, http.StatusOK, res)
		return
	}
	type prev struct {
		Result json.RawMessage `json:"result"`
	}
	in := struct {
		WorkflowID    string          `json:"workflowId"`
		StepID        string          `json:"stepId"`
		Attempt       int             `json:"attempt"`
		Context       json.RawMessage `json:"context"`
		PreviousSteps map[string]prev `json:"previousSteps"`
	}{st.ID, stepID, max(step.Attempts, 1), st.Context, map[string]prev{}}
	for _, s := range st.Steps {
		done, ok := st.Results[s.ID]
		if ok && s.ID != stepID && (step.StartedAt.IsZero() || !s.CompletedAt.After(step.StartedAt)) {
			in.PreviousSteps[s.ID] = prev{done}
		}
	}
	writeJSON(w, http.StatusOK, in)
}
