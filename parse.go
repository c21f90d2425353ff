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
	off   int64
	end   int64
	kind  byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	str   string
	num   json.Number
	b     bool
	keys  []string
	koffs []int64 // where each key starts
	vals  []*jnode
	items []*jnode
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

// jpath is the place of a value while the parser descends, turned into a
// string only when a problem needs it.
type jpath struct {
	parent *jpath
	key    string
	index  int // when key is ""
}

func (p *jpath) String() string {
	if p == nil {
		return ""
	}
	if p.key == "" {
		return fmt.Sprintf("%s[%d]", p.parent, p.index)
	}
	return join(p.parent.String(), p.key)
}

type parser struct {
	src *source
	dec *json.Decoder
	p   *problemList
}

// start returns the offset of the value that begins at or after off,
// skipping white space and the separators the decoder has not consumed.
func (ps *parser) start(off int64) int64 {
	for off < int64(len(ps.src.data)) {
		switch ps.src.data[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
			continue
		}
		break
	}
	return off
}

// maxDepth bounds the nesting of objects and arrays, so that the parser's
// recursion stays shallow whatever the input.
const maxDepth = 200

// smallObject is the number of keys up to which duplicates are found by a
// scan; larger objects use a map, so that reading stays linear.
const smallObject = 16

func (ps *parser) value(depth int, at *jpath) (*jnode, error) {
	off := ps.start(ps.dec.InputOffset())
	tok, err := ps.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &jnode{off: off}
	switch t := tok.(type) {
	case json.Delim:
		if depth >= maxDepth {
			line, col := ps.src.position(off)
			return nil, &syntaxAt{msg: fmt.Sprintf("objects and arrays nested more than %d deep", maxDepth), line: line, col: col}
		}
		switch t {
		case '{':
			n.kind = 'o'
			var index map[string]int
			for ps.dec.More() {
				koff := ps.start(ps.dec.InputOffset())
				kt, err := ps.dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				v, err := ps.value(depth+1, &jpath{parent: at, key: key})
				if err != nil {
					return nil, err
				}
				i := -1
				if index != nil {
					if j, ok := index[key]; ok {
						i = j
					}
				} else {
					i = indexOf(n.keys, key)
				}
				if i >= 0 {
					ps.p = ps.p.addAt(koff, Problem{Path: join(at.String(), key), Message: fmt.Sprintf("is given twice (%s, and first at %s)", ps.src.at(koff), ps.src.at(n.koffs[i]))})
					n.vals[i] = v
					continue
				}
				n.keys = append(n.keys, key)
				n.koffs = append(n.koffs, koff)
				n.vals = append(n.vals, v)
				if index != nil {
					index[key] = len(n.keys) - 1
				} else if len(n.keys) > smallObject {
					index = make(map[string]int, 2*len(n.keys))
					for j, k := range n.keys {
						index[k] = j
					}
				}
			}
		case '[':
			n.kind = 'a'
			for i := 0; ps.dec.More(); i++ {
				v, err := ps.value(depth+1, &jpath{parent: at, index: i})
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
		}
		if _, err := ps.dec.Token(); err != nil { // closing delimiter
			return nil, err
		}
	case string:
		n.kind, n.str = 's', t
	case json.Number:
		n.kind, n.num = 'n', t
	case bool:
		n.kind, n.b = 'b', t
	case nil:
		n.kind = 'z'
	}
	n.end = ps.dec.InputOffset()
	return n, nil
}

func indexOf(keys []string, k string) int {
	for i, x := range keys {
		if x == k {
			return i
		}
	}
	return -1
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
		// first bad byte; the Decoder's token reader, used below, does not
		// (its offsets count from the start of the current value).
		p := (*problemList)(nil).add(syntaxProblem(src, json.Unmarshal(data, new(any))))
		p.fatal = true
		return w, p
	}
	ps := &parser{src: src, dec: json.NewDecoder(bytes.NewReader(data))}
	ps.dec.UseNumber()
	root, err := ps.value(0, nil)
	if err == nil {
		if _, extra := ps.dec.Token(); extra != io.EOF {
			line, col := src.position(ps.start(ps.dec.InputOffset()))
			err = &syntaxAt{msg: "unexpected data after the workflow object", line: line, col: col}
		}
	}
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
	m.fields(root, "", workflowFields, func(key string, v *jnode, path string) {
		switch key {
		case "id":
			w.ID = m.str(v, path)
		case "saga":
			w.Saga = m.bool(v, path)
		case "context":
			if v.kind != 'o' && v.kind != 'z' {
				m.typeProblem(v, path, "an object")
				return
			}
			if v.kind == 'o' {
				// Compacted, so that the same context in two layouts reads
				// the same; json.Marshal writes it compacted too.
				var b bytes.Buffer
				if json.Compact(&b, data[v.off:v.end]) != nil {
					b.Reset()
					b.Write(data[v.off:v.end])
				}
				w.Context = json.RawMessage(b.Bytes())
			}
		case "onComplete":
			w.OnComplete = m.str(v, path)
		case "onError":
			w.OnError = m.str(v, path)
		case "timeout":
			w.Timeout = m.float(v, path)
		case "onStepFailure":
			w.OnStepFailure = FailurePolicy(m.str(v, path))
		case "steps":
			if v.kind != 'a' {
				m.typeProblem(v, path, "an array")
				return
			}
			w.Steps = make([]Step, len(v.items))
			for i, sv := range v.items {
				m.step(sv, "steps["+strconv.Itoa(i)+"]", &w.Steps[i])
			}
		}
	})
	return w, m.p
}

var (
	workflowFields = []string{"id", "saga", "context", "onComplete", "onError", "timeout", "onStepFailure", "steps"}
	stepFields     = []string{"id", "url", "handler", "dependsOn", "parallel", "retries", "timeout", "compensation", "allowFailedDeps"}
	retryFields    = []string{"maxAttempts", "backoff", "initialInterval", "maxInterval"}
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

// fields calls set for each known field of the object n and reports unknown
// ones with a suggestion.
func (m *mapper) fields(n *jnode, path string, known []string, set func(key string, v *jnode, path string)) {
	for i, k := range n.keys {
		if indexOf(known, k) < 0 {
			msg := "unknown field"
			if s := caseInsensitive(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if s := graph.Suggest(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			m.p = m.p.addAt(n.koffs[i], Problem{Path: join(path, k), Message: fmt.Sprintf("%s (%s)", msg, m.src.at(n.koffs[i]))})
			continue
		}
		set(k, n.vals[i], join(path, k))
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

func (m *mapper) typeProblem(v *jnode, path, want string) {
	m.p = m.p.addAt(v.off, Problem{Path: path, Message: fmt.Sprintf("must be %s, not %s (%s)", want, v.kindName(), m.src.at(v.off))})
}

func (m *mapper) str(v *jnode, path string) string {
	if v.kind == 'z' {
		return ""
	}
	if v.kind != 's' {
		m.typeProblem(v, path, "a string")
	}
	return v.str
}

func (m *mapper) bool(v *jnode, path string) bool {
	if v.kind == 'z' {
		return false
	}
	if v.kind != 'b' {
		m.typeProblem(v, path, "true or false")
	}
	return v.b
}

func (m *mapper) float(v *jnode, path string) float64 {
	if v.kind == 'z' {
		return 0
	}
	if v.kind != 'n' {
		m.typeProblem(v, path, "a number")
		return 0
	}
	f, err := v.num.Float64()
	if err != nil || math.IsInf(f, 0) {
		m.p = m.p.addAt(v.off, Problem{Path: path, Message: fmt.Sprintf("number %s is out of range (%s)", v.num, m.src.at(v.off))})
		return 0
	}
	return f
}

func (m *mapper) int(v *jnode, path string) int {
	if v.kind == 'z' {
		return 0
	}
	if v.kind != 'n' {
		m.typeProblem(v, path, "a whole number")
		return 0
	}
	i, err := v.num.Int64()
	if err != nil || i > math.MaxInt32 || i < math.MinInt32 {
		m.p = m.p.addAt(v.off, Problem{Path: path, Message: fmt.Sprintf("must be a whole number in range, not %s (%s)", v.num, m.src.at(v.off))})
		return 0
	}
	return int(i)
}

func (m *mapper) step(n *jnode, path string, s *Step) {
	if n.kind != 'o' {
		m.typeProblem(n, path, "an object")
		return
	}
	m.fields(n, path, stepFields, func(key string, v *jnode, path string) {
		switch key {
		case "id":
			s.ID = m.str(v, path)
		case "url":
			s.URL = m.str(v, path)
		case "handler":
			s.Handler = m.str(v, path)
		case "dependsOn":
			if v.kind == 'z' {
				return
			}
			if v.kind != 'a' {
				m.typeProblem(v, path, "an array of step ids")
				return
			}
			if len(v.items) == 0 {
				return // nil, as json.Marshal omits an empty list
			}
			s.DependsOn = make([]string, len(v.items))
			for i, d := range v.items {
				s.DependsOn[i] = m.str(d, fmt.Sprintf("%s[%d]", path, i))
			}
		case "parallel":
			s.Parallel = m.bool(v, path)
		case "retries":
			if v.kind == 'z' {
				return
			}
			if v.kind != 'o' {
				m.typeProblem(v, path, "an object")
				return
			}
			r := &RetryConfig{}
			m.fields(v, path, retryFields, func(key string, v *jnode, path string) {
				switch key {
				case "maxAttempts":
					r.MaxAttempts = m.int(v, path)
				case "backoff":
					r.Backoff = Backoff(m.str(v, path))
				case "initialInterval":
					r.InitialInterval = m.float(v, path)
				case "maxInterval":
					r.MaxInterval = m.float(v, path)
				}
			})
			s.Retries = r
		case "timeout":
			s.Timeout = m.float(v, path)
		case "compensation":
			s.Compensation = m.str(v, path)
		case "allowFailedDeps":
			s.AllowFailedDeps = m.bool(v, path)
		}
	})
}

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
