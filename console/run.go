package console

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/dagflow/dagflow"
)

// runView is what a run's page shows.
type runView struct {
	pageView
	Status    *dagflow.Status
	RunURL    string // the run's URL relative to the page, for its sub-resources
	Duration  string
	Done      int
	Live      bool // the run may still change
	Graph     *graphView
	GraphNote string
	Timeline  *timelineView
	Steps     []stepView
	Context   jsonView
	Hooks     []dagflow.Webhook
	Actions   *actionsView // nil when actions are off
}

type actionsView struct {
	CSRF          string
	Token         bool // the forms ask for the token
	Retry, Cancel bool // which actions fit the run's state
}

type stepView struct {
	dagflow.StepStatus
	Index     int
	Kind      string // "Go handler" or "HTTP"
	Target    string // the handler's name or the (redacted) URL
	DependsOn []depView
	Duration  string
	Result    jsonView
	InputURL  string
	History   []attemptView
	Critical  bool
	Open      bool // shown unfolded
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
	Sub          string
	X, Y, W, H   string
	CX, CY       string // the state dot
	TX, LY, SY   string // label and sub-line positions
	Critical     bool
	AttemptCount int
}

type edgeView struct {
	Path     string
	Done     bool // the dependency completed
	Critical bool // on the critical path
}

// load reads what a run's page shows. It returns the engine's error for an
// unknown run.
func (c *console) load(r *request) (*runView, error) {
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
	hooks, err := c.eng.Webhooks(ctx, id)
	if err != nil {
		return nil, err
	}
	scrubStatus(st)
	scrubAttempts(atts)
	for i := range hooks {
		hooks[i].URL, hooks[i].LastError = redactURL(hooks[i].URL), scrub(hooks[i].LastError)
	}
	now := c.now()
	self := r.base + runURL(id)
	v := &runView{
		pageView: c.page(r, id), Status: st, RunURL: self, Live: !st.State.Final(),
		Duration: runDuration(st.StartedAt, st.CompletedAt, st.State, now), Done: len(st.CompletedSteps),
		Context: newJSONView(st.Context, ""), Hooks: hooks,
	}
	if v.Live {
		v.Refresh = 5
	}
	critical := findCriticalPath(wf, atts, st, now)
	v.Timeline = newTimeline(st, atts, critical, now)
	v.Steps = stepViews(st, wf, atts, critical, self, now)
	if l, err := layoutGraph(ctx, wf); err != nil {
		v.GraphNote = "No graph: " + err.Error()
		slog.Debug("dagflow console: laying out a graph", "run", id, "error", err)
	} else {
		v.Graph = newGraphView(l, st, wf, critical)
	}
	return v, nil
}

func (c *console) runPage(w http.ResponseWriter, r *request) {
	v, err := c.load(r)
	if err != nil {
		c.engineError(w, r, err)
		return
	}
	if c.cfg.actions {
		v.Actions = &actionsView{CSRF: c.csrfToken(w, r), Token: c.cfg.token != "",
			Retry: retryable(v.Status), Cancel: !v.Status.State.Final()}
	}
	c.render(w, r, http.StatusOK, "run", v)
}

// retryable reports whether Engine.Retry takes the run: failed or
// cancelled, and not a saga that was compensated.
func retryable(st *dagflow.Status) bool {
	if st.State != dagflow.StateFailed && st.State != dagflow.StateCancelled {
		return false
	}
	for _, s := range st.Steps {
		if s.Compensation != nil {
			return false
		}
	}
	return true
}

func stepViews(st *dagflow.Status, wf *dagflow.Workflow, atts []dagflow.Attempt, critical criticalPath, self string, now time.Time) []stepView {
	index := make(map[string]int, len(st.Steps))
	for i, s := range st.Steps {
		index[s.ID] = i
	}
	history := map[string][]attemptView{}
	for _, a := range atts {
		end := attemptEnd(a, st, now)
		history[a.StepID] = append(history[a.StepID], attemptView{Attempt: a, Took: formatDuration(end.Sub(a.StartedAt)),
			Class: attemptClass(a)})
	}
	out := make([]stepView, len(st.Steps))
	for i, s := range st.Steps {
		stepURL := self + "/steps/" + url.PathEscape(s.ID)
		v := stepView{StepStatus: s, Index: i, History: history[s.ID], Critical: critical.has(s.ID),
			Result: newJSONView(s.Result, stepURL+"/result"), InputURL: stepURL + "/input",
			Open: s.State == dagflow.StateFailed || s.State == dagflow.StateCompensationFailed}
		if !s.StartedAt.IsZero() {
			v.Duration = runDuration(s.StartedAt, s.CompletedAt, s.State, now)
			if s.State != dagflow.StateRunning && s.CompletedAt.IsZero() {
				v.Duration = ""
			}
		}
		if i < len(wf.Steps) && wf.Steps[i].ID == s.ID {
			spec := wf.Steps[i]
			if spec.Handler != "" {
				v.Kind, v.Target = "Go handler", spec.Handler
			} else {
				v.Kind, v.Target = "HTTP", redactURL(spec.URL)
			}
			for _, d := range spec.DependsOn {
				j := index[d]
				dv := depView{ID: d, Index: j, State: st.Steps[j].State}
				if res, ok := st.Results[d]; ok {
					dv.Result = newJSONView(res, self+"/steps/"+url.PathEscape(d)+"/result")
				}
				v.DependsOn = append(v.DependsOn, dv)
			}
		}
		out[i] = v
	}
	return out
}

func newGraphView(l *layout, st *dagflow.Status, wf *dagflow.Workflow, critical criticalPath) *graphView {
	f := func(x float64) string { return fmt.Sprintf("%.1f", x) }
	g := &graphView{Width: f(l.Width), Height: f(l.Height)}
	for i, s := range st.Steps {
		if i >= len(l.Nodes) {
			break
		}
		b := l.Nodes[i]
		sub := stateLabel(s.State)
		if s.Attempts > 1 {
			sub += fmt.Sprintf(" · %d tries", s.Attempts)
		}
		g.Nodes = append(g.Nodes, nodeView{
			Index: i, ID: s.ID, Label: truncate(s.ID, labelRunes), State: s.State, Sub: sub, Critical: critical.has(s.ID),
			X: f(b.X), Y: f(b.Y), W: f(b.W), H: f(b.H), CX: f(b.X + 16), CY: f(b.Y + 16),
			TX: f(b.X + 28), LY: f(b.Y + 20), SY: f(b.Y + 35), AttemptCount: s.Attempts,
		})
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
