package dagflow

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/dagflow/dagflow/internal/graph"
)

// problemList collects problems; fatal means the input could not be read far
// enough to validate what it describes.
type problemList struct {
	list  []Problem
	offs  []int64 // where in the input each problem is, -1 when nowhere
	fatal bool
	paths map[string]bool // for covers
}

func (p *problemList) add(ps ...Problem) *problemList {
	for _, q := range ps {
		p = p.addAt(-1, q)
	}
	return p
}

func (p *problemList) addAt(off int64, q Problem) *problemList {
	if p == nil {
		p = &problemList{}
	}
	p.list = append(p.list, q)
	p.offs = append(p.offs, off)
	return p
}

// sort puts the problems in the order of their place in the input.
func (p *problemList) sort() {
	if p == nil {
		return
	}
	idx := make([]int, len(p.list))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int { return cmp.Compare(p.offs[a], p.offs[b]) })
	list, offs := make([]Problem, len(idx)), make([]int64, len(idx))
	for i, j := range idx {
		list[i], offs[i] = p.list[j], p.offs[j]
	}
	p.list, p.offs = list, offs
}

// covers reports whether a problem of p, read from the JSON, is at path or
// at a place that holds it ("steps[2]" holds "steps[2].id"), so that
// validation does not report again, and less clearly, a value the JSON
// already could not supply.
func (p *problemList) covers(path string) bool {
	if p == nil || path == "" {
		return false
	}
	if p.paths == nil {
		p.paths = make(map[string]bool, len(p.list))
		for _, q := range p.list {
			p.paths[q.Path] = true
		}
	}
	for i := 1; i <= len(path); i++ {
		if (i == len(path) || path[i] == '.' || path[i] == '[') && p.paths[path[:i]] {
			return true
		}
	}
	return false
}

// decodeWorkflow reads the JSON form of a workflow, reporting syntax errors,
// wrong types and unknown fields with their line and column.
//
// A UTF-8 byte order mark at the start is skipped, as editors on some
// systems write one.
func decodeWorkflow(data []byte) (Workflow, *problemList) {
	var w Workflow
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	src := &source{data: data}
	if !json.Valid(data) {
		// The scanner behind Valid and Unmarshal gives the offset of the
		// first bad byte (json.Decoder's Token does not).
		p := (*problemList)(nil).add(syntaxProblem(src, json.Unmarshal(data, new(any))))
		p.fatal = true
		return w, p
	}
	ps := &parser{src: src, data: data}
	root, err := ps.value()
	if err != nil {
		p := ps.p.add(syntaxProblem(src, err))
		p.fatal = true
		return w, p
	}
	if root.kind != 'o' {
		p := ps.p.add(Problem{Message: "a workflow must be a JSON object, not " + root.kindName()})
		p.fatal = true
		return w, p
	}
	m := mapper{src: src, p: ps.p}
	m.workflow(root, "", &w, 0)
	return w, m.p
}

// workflow reads the fields of a workflow object at path.
func (m *mapper) workflow(root *jnode, path string, w *Workflow, depth int) {
	m.fields(root, path, workflowFields, func(v *jnode, at place) {
		switch at.key {
		case "id":
			w.ID = m.str(v, at)
		case "saga":
			w.Saga = m.bool(v, at)
		case "context":
			if v.kind != 'o' && v.kind != 'z' {
				m.typeProblem(v, at, "an object")
				return
			}
			if v.kind == 'o' {
				w.Context = compactJSON(m.src.data[v.off:v.end])
			}
		case "onComplete":
			w.OnComplete = m.str(v, at)
		case "onError":
			w.OnError = m.str(v, at)
		case "timeout":
			w.Timeout = m.seconds(v, at)
		case "onStepFailure":
			w.OnStepFailure = FailurePolicy(m.str(v, at))
		case "previousSteps":
			w.PreviousSteps = PreviousSteps(m.str(v, at))
		case "concurrency":
			if !m.object(v, at) {
				return
			}
			c := &Concurrency{}
			m.fields(v, at.String(), concurrencyFields, func(v *jnode, at place) {
				switch at.key {
				case "key":
					c.Key = m.str(v, at)
				case "limit":
					c.Limit = m.int(v, at)
				}
			})
			w.Concurrency = c
		case "steps":
			if v.kind != 'a' {
				m.typeProblem(v, at, "an array")
				return
			}
			w.Steps = make([]Step, len(v.items))
			for i, sv := range v.items {
				m.step(sv, placeIndex(at.String(), i), &w.Steps[i], depth)
			}
		}
	})
}

// object reports whether v is an object, reporting a problem if it is
// neither that nor null.
func (m *mapper) object(v *jnode, at place) bool {
	if v.kind == 'z' {
		return false
	}
	if v.kind != 'o' {
		m.typeProblem(v, at, "an object")
		return false
	}
	return true
}

// seconds reads a number of seconds as a duration.
func (m *mapper) seconds(v *jnode, at place) time.Duration {
	return durationOf(m.float(v, at))
}

var (
	workflowFields = []string{"id", "saga", "context", "onComplete", "onError", "timeout", "onStepFailure", "previousSteps",
		"concurrency", "steps"}
	stepFields = []string{"id", "url", "handler", "dependsOn", "parallel", "retries", "timeout", "compensation", "allowFailedDeps",
		"map", "workflow", "sleep", "waitForEvent"}
	retryFields       = []string{"maxAttempts", "backoff", "initialInterval", "maxInterval"}
	concurrencyFields = []string{"key", "limit"}
	mapFields         = []string{"items", "maxConcurrency", "toleratedFailurePercentage", "toleratedFailureCount"}
	sleepFields       = []string{"seconds", "until"}
	waitFields        = []string{"name", "key", "timeout"}
)

type mapper struct {
	src *source
	p   *problemList
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fields calls set for each known field of the object n, whose path is
// path, and reports unknown ones with a suggestion.
func (m *mapper) fields(n *jnode, path string, known []string, set func(v *jnode, at place)) {
	for _, f := range n.members {
		if !slices.Contains(known, f.key) {
			msg := "unknown field"
			if s := caseInsensitive(f.key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if s := graph.Suggest(f.key, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			m.p = m.p.addAt(f.off, Problem{Path: join(path, f.key), Message: fmt.Sprintf("%s (%s)", msg, m.src.at(f.off))})
			continue
		}
		set(f.val, placeKey(path, f.key))
	}
}

func caseInsensitive(k string, known []string) string {
	for _, x := range known {
		if strings.EqualFold(x, k) {
			return x
		}
	}
	return ""
}

func (m *mapper) typeProblem(v *jnode, at place, want string) {
	m.p = m.p.addAt(v.off, Problem{Path: at.String(), Message: fmt.Sprintf("must be %s, not %s (%s)", want, v.kindName(), m.src.at(v.off))})
}

func (m *mapper) str(v *jnode, at place) string {
	if v.kind == 'z' {
		return ""
	}
	if v.kind != 's' {
		m.typeProblem(v, at, "a string")
	} else if !utf8.Valid(m.src.data[v.off:v.end]) {
		// encoding/json would make each bad byte U+FFFD, silently.
		m.p = m.p.addAt(v.off, Problem{Path: at.String(), Message: fmt.Sprintf("is not valid UTF-8 (%s)", m.src.at(v.off))})
	}
	return v.str
}

func (m *mapper) bool(v *jnode, at place) bool {
	if v.kind == 'z' {
		return false
	}
	if v.kind != 'b' {
		m.typeProblem(v, at, "true or false")
	}
	return v.b
}

func (m *mapper) float(v *jnode, at place) float64 {
	if v.kind == 'z' {
		return 0
	}
	if v.kind != 'n' {
		m.typeProblem(v, at, "a number")
		return 0
	}
	f, err := v.num.Float64()
	if err != nil || math.IsInf(f, 0) {
		m.p = m.p.addAt(v.off, Problem{Path: at.String(), Message: fmt.Sprintf("number %s is out of range (%s)", v.num, m.src.at(v.off))})
		return 0
	}
	return f
}

func (m *mapper) int(v *jnode, at place) int {
	if v.kind == 'z' {
		return 0
	}
	if v.kind != 'n' {
		m.typeProblem(v, at, "a whole number")
		return 0
	}
	i, err := v.num.Int64()
	if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		m.p = m.p.addAt(v.off, Problem{Path: at.String(), Message: fmt.Sprintf("must be a whole number in range, not %s (%s)", v.num, m.src.at(v.off))})
		return 0
	}
	return int(i)
}

func (m *mapper) step(n *jnode, at place, s *Step, depth int) {
	if n.kind != 'o' {
		m.typeProblem(n, at, "an object")
		return
	}
	m.fields(n, at.String(), stepFields, func(v *jnode, at place) {
		switch at.key {
		case "id":
			s.ID = m.str(v, at)
		case "url":
			s.URL = m.str(v, at)
		case "handler":
			s.Handler = m.str(v, at)
		case "dependsOn":
			if v.kind == 'z' {
				return
			}
			if v.kind != 'a' {
				m.typeProblem(v, at, "an array of step ids")
				return
			}
			if len(v.items) == 0 {
				return // nil, as json.Marshal omits an empty list
			}
			s.DependsOn = make([]string, len(v.items))
			for i, d := range v.items {
				if d.kind == 's' {
					s.DependsOn[i] = d.str
				} else {
					s.DependsOn[i] = m.str(d, placeIndex(at.String(), i))
				}
			}
		case "parallel":
			s.Parallel = m.bool(v, at)
		case "retries":
			if v.kind == 'z' {
				return
			}
			if v.kind != 'o' {
				m.typeProblem(v, at, "an object")
				return
			}
			r := &RetryConfig{}
			m.fields(v, at.String(), retryFields, func(v *jnode, at place) {
				switch at.key {
				case "maxAttempts":
					r.MaxAttempts = m.int(v, at)
				case "backoff":
					r.Backoff = Backoff(m.str(v, at))
				case "initialInterval":
					r.InitialInterval = m.seconds(v, at)
				case "maxInterval":
					r.MaxInterval = m.seconds(v, at)
				}
			})
			s.Retries = r
		case "timeout":
			s.Timeout = m.seconds(v, at)
		case "compensation":
			s.Compensation = m.str(v, at)
		case "allowFailedDeps":
			s.AllowFailedDeps = m.bool(v, at)
		case "map":
			if !m.object(v, at) {
				return
			}
			mp := &Map{}
			m.fields(v, at.String(), mapFields, func(v *jnode, at place) {
				switch at.key {
				case "items":
					switch v.kind {
					case 's':
						mp.Items.Path = m.str(v, at)
					case 'a':
						mp.Items.List = compactJSON(m.src.data[v.off:v.end])
					default:
						m.typeProblem(v, at, "a path (a string) or an array")
					}
				case "maxConcurrency":
					mp.MaxConcurrency = m.int(v, at)
					if v.kind == 'n' && mp.MaxConcurrency < 1 {
						m.p = m.p.addAt(v.off, Problem{Path: at.String(), Message: fmt.Sprintf("must be at least 1, got %s (%s)", v.num, m.src.at(v.off))})
					}
				case "toleratedFailurePercentage":
					if v.kind != 'z' {
						f := m.float(v, at)
						mp.ToleratedFailurePercentage = &f
					}
				case "toleratedFailureCount":
					if v.kind != 'z' {
						c := m.int(v, at)
						mp.ToleratedFailureCount = &c
					}
				}
			})
			s.Map = mp
		case "workflow":
			if !m.object(v, at) {
				return
			}
			if depth >= maxParseDepth {
				m.p = m.p.addAt(v.off, Problem{Path: at.String(), Message: fmt.Sprintf("sub-workflows nest more than %d deep (%s)", maxParseDepth, m.src.at(v.off))})
				return
			}
			sub := &Workflow{}
			m.workflow(v, at.String(), sub, depth+1)
			s.Workflow = sub
		case "sleep":
			if !m.object(v, at) {
				return
			}
			sl := &Sleep{}
			m.fields(v, at.String(), sleepFields, func(v *jnode, at place) {
				switch at.key {
				case "seconds":
					sl.Duration = m.seconds(v, at)
				case "until":
					sl.Until = m.str(v, at)
				}
			})
			s.Sleep = sl
		case "waitForEvent":
			if !m.object(v, at) {
				return
			}
			ev := &WaitForEvent{}
			m.fields(v, at.String(), waitFields, func(v *jnode, at place) {
				switch at.key {
				case "name":
					ev.Name = m.str(v, at)
				case "key":
					ev.Key = m.str(v, at)
				case "timeout":
					ev.Timeout = m.seconds(v, at)
				}
			})
			s.WaitForEvent = ev
		}
	})
}

// maxParseDepth bounds the nesting of sub-workflows the parser reads (the
// engine's own limit, WithMaxDepth, is checked by Create).
const maxParseDepth = 64

// ParseWorkflow reads a workflow from its JSON form (durations in seconds)
// and validates it. It returns a *ValidationError listing every problem at
// once, each with its place; JSON syntax errors, values of the wrong type,
// unknown fields and fields given twice come with their line and column,
// first, in the order of the input. The context is kept compacted.
func ParseWorkflow(data []byte) (Workflow, error) {
	w, problems := decodeWorkflow(data)
	if problems == nil || !problems.fatal {
		problems.sort()
		var more []Problem
		for _, p := range w.validate(nil) {
			if !problems.covers(p.Path) {
				more = append(more, p)
			}
		}
		problems = problems.add(more...)
	}
	if problems != nil && len(problems.list) > 0 {
		return w, &ValidationError{WorkflowID: w.ID, Problems: problems.list}
	}
	return w, nil
}
