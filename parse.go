package dagflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/dagflow/dagflow/internal/graph"
)

// problemList collects problems; fatal means the input could not be read far
// enough to validate what it describes.
type problemList struct {
	list  []Problem
	fatal bool
}

func (p *problemList) add(ps ...Problem) *problemList {
	if len(ps) == 0 {
		return p
	}
	if p == nil {
		p = &problemList{}
	}
	p.list = append(p.list, ps...)
	return p
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

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int64) (line, col int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	line = 1 + bytes.Count(data[:off], []byte("\n"))
	col = int(off) - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}

type parser struct {
	data []byte
	dec  *json.Decoder
	p    *problemList
}

// start returns the offset of the value that begins at or after off,
// skipping white space and the separators the decoder has not consumed.
func (ps *parser) start(off int64) int64 {
	for off < int64(len(ps.data)) {
		switch ps.data[off] {
		case ' ', '\t', '\r', '\n', ':', ',':
			off++
			continue
		}
		break
	}
	return off
}

const maxDepth = 200

func (ps *parser) value(depth int) (*jnode, error) {
	off := ps.start(ps.dec.InputOffset())
	tok, err := ps.dec.Token()
	if err != nil {
		return nil, err
	}
	n := &jnode{off: off}
	switch t := tok.(type) {
	case json.Delim:
		if depth > maxDepth {
			return nil, fmt.Errorf("nesting deeper than %d levels", maxDepth)
		}
		switch t {
		case '{':
			n.kind = 'o'
			for ps.dec.More() {
				koff := ps.start(ps.dec.InputOffset())
				kt, err := ps.dec.Token()
				if err != nil {
					return nil, err
				}
				key, _ := kt.(string)
				v, err := ps.value(depth + 1)
				if err != nil {
					return nil, err
				}
				if i := indexOf(n.keys, key); i >= 0 {
					line, col := position(ps.data, koff)
					ps.p = ps.p.add(Problem{Message: fmt.Sprintf("duplicate field %q (line %d, column %d)", key, line, col)})
					n.vals[i] = v
					continue
				}
				n.keys = append(n.keys, key)
				n.vals = append(n.vals, v)
			}
		case '[':
			n.kind = 'a'
			for ps.dec.More() {
				v, err := ps.value(depth + 1)
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
func decodeWorkflow(data []byte) (Workflow, *problemList) {
	var w Workflow
	ps := &parser{data: data, dec: json.NewDecoder(bytes.NewReader(data))}
	ps.dec.UseNumber()
	root, err := ps.value(0)
	if err == nil {
		if _, extra := ps.dec.Token(); extra != io.EOF {
			off := ps.start(ps.dec.InputOffset())
			line, col := position(data, off)
			err = &syntaxAt{msg: "unexpected data after the workflow object", line: line, col: col}
		}
	}
	if err != nil {
		p := ps.p.add(syntaxProblem(data, err))
		p.fatal = true
		return w, p
	}
	if root.kind != 'o' {
		p := ps.p.add(Problem{Message: "a workflow must be a JSON object, not " + root.kindName()})
		p.fatal = true
		return w, p
	}
	m := mapper{data: data, p: ps.p}
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
				w.Context = json.RawMessage(append([]byte(nil), data[v.off:v.end]...))
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
				m.step(sv, fmt.Sprintf("steps[%d]", i), &w.Steps[i])
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
	data []byte
	p    *problemList
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
			line, col := position(m.data, n.vals[i].off)
			msg := "unknown field"
			if s := graph.Suggest(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			} else if s := caseInsensitive(k, known); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			m.p = m.p.add(Problem{Path: join(path, k), Message: fmt.Sprintf("%s (line %d, column %d)", msg, line, col)})
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
	line, col := position(m.data, v.off)
	m.p = m.p.add(Problem{Path: path, Message: fmt.Sprintf("must be %s, not %s (line %d, column %d)", want, v.kindName(), line, col)})
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
		line, col := position(m.data, v.off)
		m.p = m.p.add(Problem{Path: path, Message: fmt.Sprintf("number %s is out of range (line %d, column %d)", v.num, line, col)})
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
		line, col := position(m.data, v.off)
		m.p = m.p.add(Problem{Path: path, Message: fmt.Sprintf("must be a whole number in range, not %s (line %d, column %d)", v.num, line, col)})
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

func syntaxProblem(data []byte, err error) Problem {
	var at *syntaxAt
	if errors.As(err, &at) {
		return Problem{Message: fmt.Sprintf("invalid JSON at line %d, column %d: %s", at.line, at.col, at.msg)}
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		off := se.Offset
		if off > 0 {
			off-- // Offset is just past the offending byte.
		}
		line, col := position(data, off)
		msg := strings.TrimPrefix(se.Error(), "json: ")
		return Problem{Message: fmt.Sprintf("invalid JSON at line %d, column %d: %s", line, col, msg)}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		line, col := position(data, int64(len(data)))
		if len(bytes.TrimSpace(data)) == 0 {
			return Problem{Message: "invalid JSON: the input is empty"}
		}
		return Problem{Message: fmt.Sprintf("invalid JSON at line %d, column %d: unexpected end of input", line, col)}
	}
	return Problem{Message: "invalid JSON: " + err.Error()}
}
