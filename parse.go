package dagflow

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
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

// jnode is a JSON value with the offset it starts at, so that problems can
// name a line and column.
type jnode struct {
	off     int64
	end     int64
	kind    byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	b       bool
	str     string
	num     json.Number
	members []member // of an object, in order, each key once
	items   []*jnode // of an array
}

// member is a key of an object and its value.
type member struct {
	key string
	off int64 // where the key starts
	val *jnode
}

func (n *jnode) kindName() string {
	switch n.kind {
	case 'o':
		return "an object"
	case 'a':
		return "an array"
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 'b':
		return "a boolean"
	}
	return "null"
}

// source is the input with an index of its lines, built on first use, so
// that naming the place of many problems does not read the input many times.
type source struct {
	data  []byte
	lines []int64 // offset of the start of each line after the first
	built bool
}

// position turns a byte offset into a 1-based line and column. Columns
// count bytes, as go/token does.
func (s *source) position(off int64) (line, col int) {
	off = min(max(off, 0), int64(len(s.data)))
	if !s.built {
		s.built = true
		for i, c := range s.data {
			if c == '\n' {
				s.lines = append(s.lines, int64(i+1))
			}
		}
	}
	// The number of line starts at or before off.
	n, _ := slices.BinarySearch(s.lines, off+1)
	start := int64(0)
	if n > 0 {
		start = s.lines[n-1]
	}
	return n + 1, int(off-start) + 1
}

// at formats a place for a message: "line 3, column 7".
func (s *source) at(off int64) string {
	line, col := s.position(off)
	return fmt.Sprintf("line %d, column %d", line, col)
}

// place is the path of a value in a problem, "parent.key" or
// "parent[index]", turned into a string only when a problem needs it.
type place struct {
	parent string
	key    string
	index  int // -1 for a key
}

func placeKey(parent, k string) place       { return place{parent: parent, key: k, index: -1} }
func placeIndex(parent string, i int) place { return place{parent: parent, index: i} }

func (p place) String() string {
	if p.index >= 0 {
		return p.parent + "[" + strconv.Itoa(p.index) + "]"
	}
	return join(p.parent, p.key)
}

// parser reads JSON that json.Valid has accepted into a tree of jnodes
// that know where they start. As the input is known to be valid, it needs
// no error handling of its own beyond the depth limit.
type parser struct {
	src   *source
	data  []byte
	pos   int
	p     *problemList
	path  []place           // of the value being read, for problems
	nodes []jnode           // allocated in blocks
	keys  map[string]string // each object key once, for all objects
	// Stacks of the members and items of the objects and arrays being
	// read; each gets a slice of its exact size once it ends.
	members []member
	items   []*jnode
}

func (ps *parser) node() *jnode {
	if len(ps.nodes) == cap(ps.nodes) {
		ps.nodes = make([]jnode, 0, 256)
	}
	ps.nodes = ps.nodes[:len(ps.nodes)+1]
	return &ps.nodes[len(ps.nodes)-1]
}

// pathString is the path of the value being read.
func (ps *parser) pathString() string {
	s := ""
	for _, p := range ps.path {
		p.parent = s
		s = p.String()
	}
	return s
}

func (ps *parser) space() {
	for ps.pos < len(ps.data) {
		switch ps.data[ps.pos] {
		case ' ', '\t', '\r', '\n':
			ps.pos++
		default:
			return
		}
	}
}

// maxDepth bounds the nesting of objects and arrays, so that the parser's
// recursion stays shallow whatever the input.
const maxDepth = 200

// smallObject is the number of keys up to which duplicates are found by a
// scan; larger objects use a map, so that reading stays linear.
const smallObject = 16

func (ps *parser) value() (*jnode, error) {
	ps.space()
	n := ps.node()
	n.off = int64(ps.pos)
	switch ps.data[ps.pos] {
	case '{', '[':
		if len(ps.path) >= maxDepth {
			line, col := ps.src.position(n.off)
			return nil, &syntaxAt{msg: fmt.Sprintf("objects and arrays nested more than %d deep", maxDepth), line: line, col: col}
		}
		if ps.data[ps.pos] == '[' {
			return n, ps.array(n)
		}
		return n, ps.object(n)
	case '"':
		n.kind, n.str = 's', ps.string()
	case 't':
		n.kind, n.b = 'b', true
		ps.pos += len("true")
	case 'f':
		n.kind = 'b'
		ps.pos += len("false")
	case 'n':
		n.kind = 'z'
		ps.pos += len("null")
	default:
		start := ps.pos
		for ps.pos < len(ps.data) && strings.IndexByte("+-0123456789.eE", ps.data[ps.pos]) >= 0 {
			ps.pos++
		}
		n.kind, n.num = 'n', json.Number(ps.data[start:ps.pos])
	}
	n.end = int64(ps.pos)
	return n, nil
}

func (ps *parser) object(n *jnode) error {
	n.kind = 'o'
	ps.pos++ // {
	base := len(ps.members)
	var seen map[string]int
	for {
		ps.space()
		if ps.data[ps.pos] == '}' {
			break
		}
		koff := int64(ps.pos)
		k := ps.key()
		ps.space()
		ps.pos++ // :
		ps.path = append(ps.path, placeKey("", k))
		v, err := ps.value()
		if err != nil {
			return err
		}
		members := ps.members[base:]
		i := -1
		if seen != nil {
			if j, ok := seen[k]; ok {
				i = j
			}
		} else {
			for j := range members {
				if members[j].key == k {
					i = j
					break
				}
			}
		}
		if i >= 0 {
			ps.p = ps.p.addAt(koff, Problem{Path: ps.pathString(), Message: fmt.Sprintf("is given twice (%s, and first at %s)", ps.src.at(koff), ps.src.at(members[i].off))})
			members[i].val = v
		} else {
			ps.members = append(ps.members, member{key: k, off: koff, val: v})
			if seen != nil {
				seen[k] = len(members)
			} else if len(members)+1 > smallObject {
				seen = make(map[string]int, 2*smallObject)
				for j, m := range ps.members[base:] {
					seen[m.key] = j
				}
			}
		}
		ps.path = ps.path[:len(ps.path)-1]
		ps.space()
		if ps.data[ps.pos] == ',' {
			ps.pos++
		}
	}
	ps.pos++ // }
	n.end = int64(ps.pos)
	n.members = slices.Clone(ps.members[base:])
	clear(ps.members[base:]) // let the garbage collector have the values
	ps.members = ps.members[:base]
	return nil
}

func (ps *parser) array(n *jnode) error {
	n.kind = 'a'
	ps.pos++ // [
	base := len(ps.items)
	for i := 0; ; i++ {
		ps.space()
		if ps.data[ps.pos] == ']' {
			break
		}
		ps.path = append(ps.path, placeIndex("", i))
		v, err := ps.value()
		if err != nil {
			return err
		}
		ps.path = ps.path[:len(ps.path)-1]
		ps.items = append(ps.items, v)
		ps.space()
		if ps.data[ps.pos] == ',' {
			ps.pos++
		}
	}
	ps.pos++ // ]
	n.end = int64(ps.pos)
	n.items = slices.Clone(ps.items[base:])
	clear(ps.items[base:])
	ps.items = ps.items[:base]
	return nil
}

// key reads an object's key, keeping one copy of each.
func (ps *parser) key() string {
	start := ps.pos
	if end := bytes.IndexByte(ps.data[start+1:], '"'); end >= 0 {
		raw := ps.data[start+1 : start+1+end]
		if k, ok := ps.keys[string(raw)]; ok && bytes.IndexByte(raw, '\\') < 0 {
			ps.pos = start + end + 2
			return k
		}
	}
	k := ps.string()
	if ps.keys == nil {
		ps.keys = make(map[string]string)
	}
	if raw := ps.data[start+1 : ps.pos-1]; string(raw) == k {
		ps.keys[k] = k
	}
	return k
}

// string reads the string at ps.pos, decoding it as encoding/json does.
func (ps *parser) string() string {
	start := ps.pos
	plain, ascii := true, true
	i := start + 1
	for ps.data[i] != '"' {
		switch c := ps.data[i]; {
		case c == '\\':
			plain = false
			i += 2 // an escaped quote does not end the string
		case c >= utf8.RuneSelf:
			ascii = false
			i++
		default:
			i++
		}
	}
	ps.pos = i + 1
	raw := ps.data[start:ps.pos]
	if plain && (ascii || utf8.Valid(raw)) {
		return string(raw[1 : len(raw)-1])
	}
	// Escapes, or bytes that are not UTF-8 (which become U+FFFD).
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		panic("dagflow: a string json.Valid accepted does not decode: " + err.Error())
	}
	return s
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

// syntaxAt is a syntax error with its place already worked out.
type syntaxAt struct {
	msg       string
	line, col int
}

func (e *syntaxAt) Error() string { return e.msg }

// syntaxProblem describes a syntax error. A *json.SyntaxError must come from
// json.Unmarshal or json.Valid's scanner, whose Offset is just past the
// offending byte.
func syntaxProblem(src *source, err error) Problem {
	var at *syntaxAt
	if errors.As(err, &at) {
		return Problem{Message: fmt.Sprintf("invalid JSON at line %d, column %d: %s", at.line, at.col, at.msg)}
	}
	if len(bytes.TrimSpace(src.data)) == 0 {
		return Problem{Message: "invalid JSON: the input is empty"}
	}
	end := fmt.Sprintf("invalid JSON at %s: unexpected end of input", src.at(int64(len(src.data))))
	var se *json.SyntaxError
	if errors.As(err, &se) {
		msg := strings.TrimPrefix(se.Error(), "json: ")
		switch {
		case msg == "unexpected end of JSON input":
			return Problem{Message: end}
		case strings.HasSuffix(msg, "after top-level value"):
			msg = "unexpected data after the workflow object"
		}
		return Problem{Message: fmt.Sprintf("invalid JSON at %s: %s", src.at(max(se.Offset-1, 0)), msg)}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return Problem{Message: end}
	}
	return Problem{Message: "invalid JSON: " + err.Error()}
}

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
