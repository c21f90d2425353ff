package dagflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// This file holds the JSON reader behind ParseWorkflow: it reads input that
// json.Valid accepted into a tree of values that know the offset they start
// at, so that every problem can name its line and column.

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
