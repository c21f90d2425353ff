package dagflow

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/dagflow/dagflow/internal/graph"
	"github.com/dagflow/dagflow/internal/path"
)

// Validate checks a workflow and returns a *ValidationError that lists every
// problem with its place, or nil. It checks what the workflow alone can tell:
// ids, dependencies, cycles, paths, the kinds of step and the values of every
// field, in sub-workflows too. Create checks the same and also what depends
// on the engine, such as handler names that are not registered. Validation
// takes time linear in steps plus dependencies.
func (w *Workflow) Validate() error {
	if ps := w.validate(nil); len(ps) > 0 {
		return &ValidationError{WorkflowID: w.ID, Problems: ps}
	}
	return nil
}

// engineCheck holds what validation needs to know of an engine.
type engineCheck struct {
	hasHandler func(name string) bool
	hasBaseURL bool
	maxDepth   int
	// slashID allows "/" in the workflow's id: runs the engine makes
	// (schedules' ticks) have such ids.
	slashID bool
}

// Limits of what a workflow may hold.
const (
	maxIDLen  = 256
	maxURLLen = 8192
	// maxQuote bounds what a problem quotes of a value.
	maxQuote = 120
	// minDuration is the shortest timeout or interval a workflow may set.
	minDuration = time.Millisecond
	// maxDuration is the longest.
	maxDuration = 10 * 365 * 24 * time.Hour
	// defaultMaxDepth is the nesting of sub-workflows validation allows
	// without an engine (see WithMaxDepth).
	defaultMaxDepth = 8
)

// quote quotes s for a message, cut to maxQuote bytes.
func quote(s string) string {
	if len(s) <= maxQuote {
		return strconv.Quote(s)
	}
	cut := maxQuote
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]) + fmt.Sprintf("… (%d bytes)", len(s))
}

// checkID reports what is wrong with an id, or "".
func checkID(id string, slash bool) string {
	switch {
	case id == "":
		return "is required"
	case len(id) > maxIDLen:
		return fmt.Sprintf("is %d bytes long; the limit is %d", len(id), maxIDLen)
	case !utf8.ValidString(id):
		return "is not valid UTF-8"
	case strings.TrimSpace(id) != id:
		return fmt.Sprintf("%q has leading or trailing white space", id)
	case !slash && strings.Contains(id, "/"):
		return fmt.Sprintf("%q contains \"/\", which the idempotency key <workflowId>/<stepId> reserves", id)
	}
	for _, r := range id {
		if unicode.IsControl(r) {
			return fmt.Sprintf("%q contains a control character", id)
		}
		if unicode.Is(unicode.Bidi_Control, r) {
			return fmt.Sprintf("%q contains the bidirectional control character %U, which can make text display as something else", id, r)
		}
	}
	return ""
}

// checkURL reports what is wrong with a step or webhook URL, or "".
func checkURL(raw string, e *engineCheck) string {
	switch {
	case strings.TrimSpace(raw) == "":
		return "is blank"
	case len(raw) > maxURLLen:
		return fmt.Sprintf("is %d bytes long; the limit is %d", len(raw), maxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("is not a valid URL: %v", unwrapURLError(err))
	}
	if strings.TrimSpace(raw) != raw {
		return fmt.Sprintf("%s has leading or trailing white space", quote(redactURL(raw)))
	}
	if u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Sprintf("has scheme %q; only http and https are supported", u.Scheme)
		}
		if u.Hostname() == "" {
			return "has no host"
		}
		if p := u.Port(); p != "" {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Sprintf("has port %s; a port is 1 to 65535", quote(p))
			}
		}
		return ""
	}
	if u.Host != "" {
		return "has a host but no scheme"
	}
	if e != nil && !e.hasBaseURL {
		return fmt.Sprintf("%s is relative, and the engine has no base URL to resolve it against (set one with WithHTTP)", quote(redactURL(raw)))
	}
	return ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// checkDuration reports what is wrong with a timeout or interval, or "".
// Zero (the default) is fine.
func checkDuration(d time.Duration) string {
	switch {
	case d < 0:
		return fmt.Sprintf("must not be negative, got %v", d)
	case d > maxDuration:
		return fmt.Sprintf("%v is more than ten years", d)
	case d > 0 && d < minDuration:
		return fmt.Sprintf("must be at least %v, got %v", minDuration, d)
	}
	return ""
}

// maxSuggestions bounds the "did you mean" searches, each of which looks at
// every step id, so that validation stays linear however many dependencies
// are unknown.
const maxSuggestions = 16

// validate returns every problem of w. e, when not nil, adds the checks that
// depend on the engine.
func (w *Workflow) validate(e *engineCheck) []Problem {
	ps, _ := w.check(e)
	return ps
}

// depGraph is a valid workflow's dependencies by step index: step i
// depends on edges[first[i]:first[i+1]], in the order of its dependsOn.
type depGraph struct {
	edges, first []int32
}

func (g *depGraph) deps(i int) []int32 { return g.edges[g.first[i]:g.first[i+1]] }

// check validates w and, when it has no problem, also returns its
// dependency graph, which compile then need not build again.
func (w *Workflow) check(e *engineCheck) ([]Problem, *depGraph) {
	v := &validator{e: e, maxDepth: defaultMaxDepth}
	if e != nil && e.maxDepth > 0 {
		v.maxDepth = e.maxDepth
	}
	g := v.workflow(w, "", 0)
	if len(v.ps) > 0 {
		sortProblems(v.ps)
		return v.ps, nil
	}
	return nil, g
}

// validator collects the problems of a workflow and of its sub-workflows.
type validator struct {
	e           *engineCheck
	maxDepth    int
	ps          []Problem
	suggestions int
}

func (v *validator) add(path, format string, args ...any) {
	v.ps = append(v.ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
}

// workflow checks w, whose fields' paths start with prefix, nested depth
// levels deep, and returns its graph when its own steps' graph is sound.
func (v *validator) workflow(w *Workflow, prefix string, depth int) *depGraph {
	at := func(field string) string { return prefix + field }
	v.fields(w, at, depth)
	if len(w.Steps) == 0 {
		v.add(at("steps"), "a workflow needs at least one step")
		return nil
	}

	index := v.stepIndex(w, at)
	var ids []string // built only when a suggestion is needed
	ndeps := 0
	for i := range w.Steps {
		ndeps += len(w.Steps[i].DependsOn)
	}
	// The dependency edges, in one slice: step i's are
	// edges[first[i]:first[i+1]]. listed[k] is 1 + the step that last
	// listed step k, to find a dependency listed twice without a set per
	// step.
	edges := make([]int32, 0, ndeps)
	first := make([]int32, len(w.Steps)+1)
	listed := make([]int32, len(w.Steps))
	// ordered stays true while every dependency comes before its step in
	// the list, as in most workflows: then there can be no cycle.
	ordered := true
	type pathUse struct {
		step  int
		field string
		p     path.Path
	}
	var paths []pathUse // paths through steps, checked once the graph is known
	isStep := func(id string) bool { _, ok := index[id]; return ok }
	for i := range w.Steps {
		s := &w.Steps[i]
		first[i] = int32(len(edges))
		sat := func(field string) string { return at("steps[" + strconv.Itoa(i) + "]" + field) }
		v.stepKind(s, sat)
		for j, d := range s.DependsOn {
			dpath := func() string { return sat(".dependsOn[" + strconv.Itoa(j) + "]") }
			k, ok := index[d]
			switch {
			case d == "":
				v.add(dpath(), "is empty")
			case d == s.ID:
				v.add(dpath(), "step %q depends on itself", s.ID)
			case ok && listed[k] == int32(i)+1:
				v.add(dpath(), "lists %q twice", d)
			case ok:
				listed[k] = int32(i) + 1
				edges = append(edges, k)
				ordered = ordered && int(k) < i
			case slices.Contains(s.DependsOn[:j], d):
				v.add(dpath(), "lists %s twice", quote(d))
			default:
				msg := fmt.Sprintf("unknown step %s", quote(d))
				if v.suggestions < maxSuggestions {
					v.suggestions++
					if ids == nil {
						ids = make([]string, 0, len(index))
						for k, st := range w.Steps {
							if at, ok := index[st.ID]; ok && int(at) == k {
								ids = append(ids, st.ID)
							}
						}
					}
					if sug := graph.Suggest(d, ids); sug != "" {
						msg += fmt.Sprintf(" (did you mean %q?)", sug)
					}
				}
				v.add(dpath(), "%s", msg)
			}
		}
		usePath := func(field, raw string) {
			p, err := path.Parse(raw, isStep)
			if err != nil {
				v.add(sat(field), "%s", err)
				return
			}
			if p.Step != "" {
				paths = append(paths, pathUse{i, field, p})
			}
		}
		v.step(w, s, sat, depth, usePath)
	}
	first[len(w.Steps)] = int32(len(edges))
	g := &depGraph{edges: edges, first: first}
	var cycles [][]int
	if !ordered {
		cycles = graph.Cycles(len(w.Steps), func(i int) []int32 { return g.deps(i) })
	}
	for _, c := range cycles {
		v.add(strings.TrimSuffix(prefix, "."), "cycle: %s", cycleName(w, c))
	}
	if len(cycles) == 0 {
		for _, u := range paths {
			k, ok := index[u.p.Step]
			if !ok {
				v.add(at("steps["+strconv.Itoa(u.step)+"]"+u.field), "%s goes through step %s, which does not exist", quote(u.p.Raw), quote(u.p.Step))
			} else if !dependsOn(g, u.step, int(k)) {
				v.add(at("steps["+strconv.Itoa(u.step)+"]"+u.field), "%s goes through step %q, which is not a dependency of step %q (add it to dependsOn)",
					quote(u.p.Raw), u.p.Step, w.Steps[u.step].ID)
			}
		}
	}
	return g
}

// fields checks the workflow's own fields: its id, timeout, policies,
// context, webhooks and concurrency key.
func (v *validator) fields(w *Workflow, at func(string) string, depth int) {
	if depth == 0 {
		slash := v.e != nil && v.e.slashID
		if msg := checkID(w.ID, slash); msg != "" {
			v.add("id", "%s", msg)
		}
	} else if w.ID != "" {
		v.add(at("id"), "a sub-workflow has no id of its own: its run's id is <parentId>/<stepId>")
	}
	if msg := checkDuration(w.Timeout); msg != "" {
		v.add(at("timeout"), "%s", msg)
	}
	switch w.OnStepFailure {
	case "", FailWorkflow, ContinueOnFailure:
	default:
		v.add(at("onStepFailure"), "must be %q or %q, not %s", FailWorkflow, ContinueOnFailure, quote(string(w.OnStepFailure)))
	}
	switch w.PreviousSteps {
	case "", PreviousAncestors, PreviousAll:
	default:
		v.add(at("previousSteps"), "must be %q or %q, not %s", PreviousAncestors, PreviousAll, quote(string(w.PreviousSteps)))
	}
	if c := bytes.TrimSpace(w.Context); len(c) > 0 && string(c) != "null" {
		if !json.Valid(c) {
			v.add(at("context"), "is not valid JSON")
		} else if !utf8.Valid(c) {
			v.add(at("context"), "is not valid UTF-8")
		} else if c[0] != '{' {
			v.add(at("context"), "must be a JSON object, not %s", path.Kind(c))
		}
	}
	for _, hook := range []struct{ name, u string }{{"onComplete", w.OnComplete}, {"onError", w.OnError}} {
		if hook.u != "" {
			if msg := checkURL(hook.u, v.e); msg != "" {
				v.add(at(hook.name), "%s", msg)
			}
		}
	}
	if c := w.Concurrency; c != nil {
		if c.Limit < 1 {
			v.add(at("concurrency.limit"), "must be at least 1, got %d", c.Limit)
		}
		if p, err := path.Parse(c.Key, nil); err != nil {
			v.add(at("concurrency.key"), "%s", err)
		} else if p.Step != "" {
			v.add(at("concurrency.key"), "%s: a concurrency key comes from the context (context.<field>): no step has run when the run is created", quote(c.Key))
		}
	}
}

// stepIndex checks the steps' ids and returns the index of each unique one.
func (v *validator) stepIndex(w *Workflow, at func(string) string) map[string]int32 {
	index := make(map[string]int32, len(w.Steps))
	for i := range w.Steps {
		s := &w.Steps[i]
		if msg := checkID(s.ID, false); msg != "" {
			v.add(at(fmt.Sprintf("steps[%d].id", i)), "%s", msg)
			continue
		}
		if j, dup := index[s.ID]; dup {
			v.add(at(fmt.Sprintf("steps[%d].id", i)), "duplicate step id %q (also steps[%d])", s.ID, j)
			continue
		}
		index[s.ID] = int32(i)
	}
	return index
}

// cycleName names a cycle (as graph.Cycles returns it, its first step
// repeated at the end) in the order its steps would run, starting from its
// first step in the workflow, so that the name does not depend on where the
// search entered the cycle.
func cycleName(w *Workflow, c []int) string {
	c = c[:len(c)-1]
	start := 0
	for k, i := range c {
		if i < c[start] {
			start = k
		}
	}
	names := make([]string, 0, len(c)+1)
	for k := range c {
		names = append(names, w.Steps[c[(start-k+len(c))%len(c)]].ID)
	}
	return strings.Join(append(names, names[0]), " -> ")
}

// dependsOn reports whether step i depends on step k, directly or not.
func dependsOn(g *depGraph, i, k int) bool {
	seen := map[int32]bool{}
	stack := []int32{int32(i)}
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range g.deps(int(j)) {
			if int(d) == k {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}

// stepKind checks what a step does: one kind of work, and its url or
// handler.
func (v *validator) stepKind(s *Step, at func(string) string) {
	kinds := 0
	for _, set := range []bool{s.URL != "", s.Handler != "", s.Workflow != nil, s.Sleep != nil, s.WaitForEvent != nil} {
		if set {
			kinds++
		}
	}
	switch {
	case kinds == 0:
		v.add(at(""), "needs a url (an HTTP job handler), a handler (a Go handler registered on the engine), a workflow, a sleep or a waitForEvent")
	case s.URL != "" && s.Handler != "":
		v.add(at(""), "has both url and handler; a step is either an HTTP job (url) or a Go handler (handler)")
	case kinds > 1:
		var names []string
		for _, k := range []struct {
			set  bool
			name string
		}{{s.URL != "", "url"}, {s.Handler != "", "handler"}, {s.Workflow != nil, "workflow"}, {s.Sleep != nil, "sleep"}, {s.WaitForEvent != nil, "waitForEvent"}} {
			if k.set {
				names = append(names, k.name)
			}
		}
		v.add(at(""), "has %s; a step does one kind of work", strings.Join(names, " and "))
	case s.URL != "":
		if msg := checkURL(s.URL, v.e); msg != "" {
			v.add(at(".url"), "%s", msg)
		}
	case s.Handler != "":
		if v.e != nil && v.e.hasHandler != nil && !v.e.hasHandler(s.Handler) {
			v.add(at(".handler"), "no handler named %s is registered on the engine (register it with Engine.Handle)", quote(s.Handler))
		}
	}
}

// step checks the fields of one step other than its id, kind and
// dependencies.
func (v *validator) step(w *Workflow, s *Step, at func(string) string, depth int, usePath func(field, raw string)) {
	kinds := 0
	for _, set := range []bool{s.URL != "", s.Handler != "", s.Workflow != nil, s.Sleep != nil, s.WaitForEvent != nil} {
		if set {
			kinds++
		}
	}
	task := s.URL != "" || s.Handler != ""
	what := "a sleep step"
	switch {
	case s.WaitForEvent != nil:
		what = "a waitForEvent step"
	case s.Workflow != nil:
		what = "a workflow step"
	}
	if r := s.Retries; r != nil {
		if !task && kinds == 1 {
			v.add(at(".retries"), "has no effect on %s, which makes no attempts", what)
		}
		if r.MaxAttempts < 0 {
			v.add(at(".retries.maxAttempts"), "must be at least 1, got %d", r.MaxAttempts)
		}
		switch r.Backoff {
		case "", Exponential, Linear, Fixed:
		default:
			v.add(at(".retries.backoff"), "must be %q, %q or %q, not %s", Exponential, Linear, Fixed, quote(string(r.Backoff)))
		}
		if msg := checkDuration(r.InitialInterval); msg != "" {
			v.add(at(".retries.initialInterval"), "%s", msg)
		}
		if msg := checkDuration(r.MaxInterval); msg != "" {
			v.add(at(".retries.maxInterval"), "%s", msg)
		} else if r.MaxInterval > 0 && r.InitialInterval == 0 && r.MaxInterval < DefaultInitialInterval {
			v.add(at(".retries.maxInterval"), "%v is less than the default initialInterval %v", r.MaxInterval, DefaultInitialInterval)
		} else if r.MaxInterval > 0 && r.MaxInterval < r.InitialInterval {
			v.add(at(".retries.maxInterval"), "%v is less than initialInterval %v", r.MaxInterval, r.InitialInterval)
		}
	}
	if msg := checkDuration(s.Timeout); msg != "" {
		v.add(at(".timeout"), "%s", msg)
	} else if s.Timeout != 0 && !task && kinds == 1 {
		v.add(at(".timeout"), "has no effect on %s, which makes no attempts", what)
	}
	if s.Compensation != "" {
		switch {
		case !w.Saga:
			v.add(at(".compensation"), "only saga workflows compensate steps; set \"saga\": true or remove the compensation")
		case !task && kinds == 1:
			v.add(at(".compensation"), "%s has no compensation of its own (a sub-workflow compensates itself as a saga)", what)
		case s.URL != "":
			if msg := checkURL(s.Compensation, v.e); msg != "" {
				if !strings.Contains(s.Compensation, "/") {
					msg += "; a step with a url is compensated by a URL, not by a handler name"
				}
				v.add(at(".compensation"), "%s", msg)
			}
		case s.Handler != "" && v.e != nil && v.e.hasHandler != nil && !v.e.hasHandler(s.Compensation):
			v.add(at(".compensation"), "no handler named %s is registered on the engine (register it with Engine.Handle)", quote(s.Compensation))
		}
	}
	if s.AllowFailedDeps && w.OnStepFailure != ContinueOnFailure {
		v.add(at(".allowFailedDeps"), "has no effect unless the workflow's onStepFailure is %q", ContinueOnFailure)
	}
	if m := s.Map; m != nil {
		if s.Sleep != nil || s.WaitForEvent != nil {
			v.add(at(".map"), "cannot go with %s: a map runs a url, a handler or a workflow once per item", what)
		}
		switch {
		case m.Items.Path != "":
			usePath(".map.items", m.Items.Path)
		case len(bytes.TrimSpace(m.Items.List)) == 0:
			v.add(at(".map.items"), "is required: a path (\"context.items\") or a JSON array")
		case !json.Valid(m.Items.List):
			v.add(at(".map.items"), "is not valid JSON")
		case bytes.TrimSpace(m.Items.List)[0] != '[':
			v.add(at(".map.items"), "must be a path or an array, not %s", path.Kind(m.Items.List))
		}
		if m.MaxConcurrency < 0 {
			v.add(at(".map.maxConcurrency"), "must be at least 1, got %d", m.MaxConcurrency)
		}
		if p := m.ToleratedFailurePercentage; p != nil && (*p < 0 || *p > 100 || *p != *p) {
			v.add(at(".map.toleratedFailurePercentage"), "must be between 0 and 100, got %v", *p)
		}
		if c := m.ToleratedFailureCount; c != nil && *c < 0 {
			v.add(at(".map.toleratedFailureCount"), "must not be negative, got %d", *c)
		}
	}
	if sl := s.Sleep; sl != nil {
		switch {
		case sl.Duration != 0 && sl.Until != "":
			v.add(at(".sleep"), "has both seconds and until; give one")
		case sl.Until != "":
			if _, err := time.Parse(time.RFC3339Nano, sl.Until); err != nil {
				usePath(".sleep.until", sl.Until)
			}
		case sl.Duration < 0:
			v.add(at(".sleep.seconds"), "must not be negative, got %v", sl.Duration)
		case sl.Duration > maxDuration:
			v.add(at(".sleep.seconds"), "%v is more than ten years", sl.Duration)
		case sl.Duration == 0:
			v.add(at(".sleep"), "needs seconds (how long) or until (a path to an RFC 3339 time)")
		}
	}
	if ev := s.WaitForEvent; ev != nil {
		if strings.TrimSpace(ev.Name) == "" {
			v.add(at(".waitForEvent.name"), "is required")
		} else if msg := checkID(ev.Name, true); msg != "" {
			v.add(at(".waitForEvent.name"), "%s", msg)
		}
		if ev.Key == "" {
			v.add(at(".waitForEvent.key"), "is required: the path of the value an event's key must match (\"context.orderId\")")
		} else {
			usePath(".waitForEvent.key", ev.Key)
		}
		if msg := checkDuration(ev.Timeout); msg != "" {
			v.add(at(".waitForEvent.timeout"), "%s", msg)
		}
	}
	if s.Workflow != nil {
		if depth+1 > v.maxDepth {
			v.add(at(".workflow"), "nests sub-workflows %d deep; the limit is %d (WithMaxDepth)", depth+1, v.maxDepth)
			return
		}
		v.workflow(s.Workflow, at(".workflow."), depth+1)
	}
}

// sortProblems puts problems in the order of the workflow: those of the
// workflow's own fields first, then those of each step in step order, then
// cycles. Problems of one place keep the order check found them in.
func sortProblems(ps []Problem) {
	rank := func(p *Problem) (int, int) {
		switch {
		case p.Path == "":
			return 2, 0 // a cycle
		case strings.HasPrefix(p.Path, "steps["):
			if end := strings.IndexByte(p.Path, ']'); end > 0 {
				if i, err := strconv.Atoi(p.Path[len("steps["):end]); err == nil {
					return 1, i
				}
			}
		}
		return 0, 0
	}
	slices.SortStableFunc(ps, func(a, b Problem) int {
		ga, ia := rank(&a)
		gb, ib := rank(&b)
		return cmp.Or(cmp.Compare(ga, gb), cmp.Compare(ia, ib))
	})
}
