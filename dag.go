package dagflow

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/dagflow/dagflow/internal/graph"
)

// Validate checks a workflow and returns a *ValidationError that lists every
// problem with its place, or nil. It checks what the workflow alone can tell:
// ids, dependencies, cycles, and the values of every field. Create checks the
// same and also what depends on the engine, such as handler names that are
// not registered. Validation takes time linear in steps plus dependencies.
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
}

const maxIDLen = 256

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
	}
	return ""
}

// checkURL reports what is wrong with a step or webhook URL, or "".
func checkURL(raw string, e *engineCheck) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("is not a valid URL: %v", unwrapURLError(err))
	}
	if u.IsAbs() {
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Sprintf("has scheme %q; only http and https are supported", u.Scheme)
		}
		if u.Host == "" {
			return "has no host"
		}
		return ""
	}
	if u.Host != "" {
		return "has a host but no scheme"
	}
	if e != nil && !e.hasBaseURL {
		return fmt.Sprintf("%q is relative, and the engine has no base URL to resolve it against (set one with WithHTTP)", redactURL(raw))
	}
	return ""
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// redactURL hides the password of a URL's userinfo.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}

func badSeconds(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "must be a finite number of seconds"
	case v < 0:
		return fmt.Sprintf("must not be negative, got %v", v)
	case v > 10*365*86400:
		return fmt.Sprintf("%v seconds is more than ten years", v)
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
	sortProblems(ps)
	return ps
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

// depGraph is a valid workflow's dependencies by step index: step i
// depends on edges[first[i]:first[i+1]], in the order of its dependsOn.
type depGraph struct {
	edges, first []int32
}

// check validates w and, when it has no problem, also returns its
// dependency graph, which compile then need not build again.
func (w *Workflow) check(e *engineCheck) ([]Problem, *depGraph) {
	var ps []Problem
	add := func(path, format string, args ...any) {
		ps = append(ps, Problem{Path: path, Message: fmt.Sprintf(format, args...)})
	}
	if msg := checkID(w.ID, false); msg != "" {
		add("id", "%s", msg)
	}
	if msg := badSeconds(w.Timeout); msg != "" {
		add("timeout", "%s", msg)
	}
	switch w.OnStepFailure {
	case "", FailWorkflow, ContinueOnFailure:
	default:
		add("onStepFailure", "must be %q or %q, not %q", FailWorkflow, ContinueOnFailure, w.OnStepFailure)
	}
	if c := bytes.TrimSpace(w.Context); len(c) > 0 && string(c) != "null" {
		if !json.Valid(c) {
			add("context", "is not valid JSON")
		} else if !utf8.Valid(c) {
			add("context", "is not valid UTF-8")
		} else if c[0] != '{' {
			add("context", "must be a JSON object, not %s", jsonKind(c[0]))
		}
	}
	for _, hook := range []struct{ name, u string }{{"onComplete", w.OnComplete}, {"onError", w.OnError}} {
		if hook.u != "" {
			if msg := checkURL(hook.u, e); msg != "" {
				add(hook.name, "%s", msg)
			}
		}
	}
	if len(w.Steps) == 0 {
		add("steps", "a workflow needs at least one step")
		return ps, nil
	}

	index := make(map[string]int32, len(w.Steps))
	for i := range w.Steps {
		s := &w.Steps[i]
		if msg := checkID(s.ID, false); msg != "" {
			add(fmt.Sprintf("steps[%d].id", i), "%s", msg)
			continue
		}
		if j, dup := index[s.ID]; dup {
			add(fmt.Sprintf("steps[%d].id", i), "duplicate step id %q (also steps[%d])", s.ID, j)
			continue
		}
		index[s.ID] = int32(i)
	}
	var ids []string // built only when a suggestion is needed
	suggestions := 0
	// The dependency edges, in one slice: step i's are
	// edges[first[i]:first[i+1]], each the index of a step it depends on.
	ndeps := 0
	for i := range w.Steps {
		ndeps += len(w.Steps[i].DependsOn)
	}
	// listed[k] is 1 + the step that last listed step k as a dependency, to
	// find a dependency listed twice without a set per step. One allocation
	// holds the three.
	buf := make([]int32, ndeps+2*len(w.Steps)+1)
	edges := buf[:0:ndeps]
	first := buf[ndeps : ndeps+len(w.Steps)+1 : ndeps+len(w.Steps)+1]
	listed := buf[ndeps+len(w.Steps)+1:]
	// ordered stays true while every dependency comes before its step in
	// the list, as in most workflows: then there can be no cycle.
	ordered := true
	for i := range w.Steps {
		s := &w.Steps[i]
		first[i] = int32(len(edges))
		// at names a place in the step; built only for a problem.
		at := func(field string) string { return "steps[" + strconv.Itoa(i) + "]" + field }
		switch {
		case s.URL != "" && s.Handler != "":
			add(at(""), "has both url and handler; a step is either an HTTP job (url) or a Go handler (handler)")
		case s.URL == "" && s.Handler == "":
			add(at(""), "needs a url (an HTTP job handler) or a handler (a Go handler registered on the engine)")
		case s.URL != "":
			if msg := checkURL(s.URL, e); msg != "" {
				add(at(".url"), "%s", msg)
			}
		case e != nil && !e.hasHandler(s.Handler):
			add(at(".handler"), "no handler named %q is registered on the engine (register it with Engine.Handle)", s.Handler)
		}
		var unknown map[string]bool // the unknown ids this step lists, once it lists one
		for j, d := range s.DependsOn {
			dpath := func() string { return at(".dependsOn[" + strconv.Itoa(j) + "]") }
			k, ok := index[d]
			switch {
			case d == "":
				add(dpath(), "is empty")
			case d == s.ID:
				add(dpath(), "step %q depends on itself", s.ID)
			case ok && listed[k] == int32(i)+1, !ok && unknown[d]:
				add(dpath(), "lists %q twice", d)
			case ok:
				listed[k] = int32(i) + 1
				edges = append(edges, int32(k))
				ordered = ordered && int(k) < i
			default:
				if unknown == nil {
					unknown = make(map[string]bool)
				}
				unknown[d] = true
				msg := fmt.Sprintf("unknown step %q", d)
				if suggestions < maxSuggestions {
					suggestions++
					if ids == nil {
						// The valid ids, in the order of the steps.
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
				ps = append(ps, Problem{Path: dpath(), Message: msg})
			}
		}
		if s.Retries != nil {
			r := s.Retries
			if r.MaxAttempts < 0 {
				add(at(".retries.maxAttempts"), "must be at least 1, got %d", r.MaxAttempts)
			}
			switch r.Backoff {
			case "", Exponential, Linear, Fixed:
			default:
				add(at(".retries.backoff"), "must be %q, %q or %q, not %q", Exponential, Linear, Fixed, r.Backoff)
			}
			if msg := badSeconds(r.InitialInterval); msg != "" {
				add(at(".retries.initialInterval"), "%s", msg)
			}
			if msg := badSeconds(r.MaxInterval); msg != "" {
				add(at(".retries.maxInterval"), "%s", msg)
			} else if r.MaxInterval > 0 && r.InitialInterval == 0 && r.MaxInterval < DefaultInitialInterval {
				add(at(".retries.maxInterval"), "%v is less than the default initialInterval %v", r.MaxInterval, DefaultInitialInterval)
			} else if r.MaxInterval > 0 && r.MaxInterval < r.InitialInterval {
				add(at(".retries.maxInterval"), "%v is less than initialInterval %v", r.MaxInterval, r.InitialInterval)
			}
		}
		if msg := badSeconds(s.Timeout); msg != "" {
			add(at(".timeout"), "%s", msg)
		}
		if s.Compensation != "" {
			switch {
			case !w.Saga:
				add(at(".compensation"), "only saga workflows compensate steps; set \"saga\": true or remove the compensation")
			case s.URL != "":
				if msg := checkURL(s.Compensation, e); msg != "" {
					if !strings.Contains(s.Compensation, "/") {
						msg += "; a step with a url is compensated by a URL, not by a handler name"
					}
					add(at(".compensation"), "%s", msg)
				}
			case s.Handler != "" && e != nil && !e.hasHandler(s.Compensation):
				add(at(".compensation"), "no handler named %q is registered on the engine (register it with Engine.Handle)", s.Compensation)
			}
		}
		if s.AllowFailedDeps && w.OnStepFailure != ContinueOnFailure {
			add(at(".allowFailedDeps"), "has no effect unless the workflow's onStepFailure is %q", ContinueOnFailure)
		}
	}
	first[len(w.Steps)] = int32(len(edges))
	var cycles [][]int
	if !ordered {
		cycles = graph.Cycles(len(w.Steps), func(i int) []int32 { return edges[first[i]:first[i+1]] })
	}
	for _, c := range cycles {
		// deps edges point from a step to what it depends on; name the
		// cycle in the order the steps would run, starting from its first
		// step in the workflow, so that the name does not depend on where
		// the search entered the cycle.
		c = c[:len(c)-1]
		first := 0
		for k, i := range c {
			if i < c[first] {
				first = k
			}
		}
		names := make([]string, 0, len(c)+1)
		for k := range c {
			names = append(names, w.Steps[c[(first-k+len(c))%len(c)]].ID)
		}
		names = append(names, names[0])
		add("", "cycle: %s", strings.Join(names, " -> "))
	}
	if len(ps) > 0 {
		return ps, nil
	}
	return nil, &depGraph{edges: edges, first: first}
}

func jsonKind(c byte) string {
	switch c {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}
