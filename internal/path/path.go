// Package path reads the dotted paths that workflow fields use to take a
// value from a run: "context.items", "steps.list-images.result.images",
// "steps.pick.result.0". A path names a place in the document
// {"context": ..., "steps": {"<id>": {"result": ...}}}; a number indexes an
// array (and is a key in an object).
package path

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Path is a parsed path.
type Path struct {
	// Step is the id of the step the path goes through, or "" for a path
	// into the context.
	Step string
	// Rest are the keys and indexes after "context" or after
	// "steps.<id>.result".
	Rest []string
	// Raw is the path as written.
	Raw string
}

// String returns the path as written.
func (p Path) String() string { return p.Raw }

// MaxLen bounds the length of a path.
const MaxLen = 1024

// Parse reads a path. isStep reports whether a string is a step id of the
// workflow, to find where a step id with dots in it ends; it may be nil when
// no step id has a dot.
func Parse(s string, isStep func(string) bool) (Path, error) {
	p := Path{Raw: s}
	switch {
	case s == "":
		return p, errors.New("is empty")
	case len(s) > MaxLen:
		return p, fmt.Errorf("is %d bytes long; the limit is %d", len(s), MaxLen)
	}
	head, rest, _ := strings.Cut(s, ".")
	switch head {
	case "context":
	case "steps":
		if rest == "" {
			return p, errors.New(`"steps" must be followed by a step id: steps.<id>.result`)
		}
		id, after := stepID(rest, isStep)
		if id == "" {
			return p, errors.New("has an empty step id")
		}
		p.Step = id
		if after == "" {
			return p, nil
		}
		r, more, _ := strings.Cut(after, ".")
		if r != "result" {
			return p, fmt.Errorf("%q: after the step id comes \"result\" (steps.%s.result...)", s, id)
		}
		rest = more
		if rest == "" {
			return p, nil
		}
	default:
		return p, fmt.Errorf("%q must start with \"context\" or \"steps\"", s)
	}
	if rest == "" {
		if strings.HasSuffix(s, ".") {
			return p, fmt.Errorf("%q ends with a dot", s)
		}
		return p, nil
	}
	p.Rest = strings.Split(rest, ".")
	for _, k := range p.Rest {
		if k == "" {
			return p, fmt.Errorf("%q has an empty key (two dots, or a dot at the end)", s)
		}
	}
	return p, nil
}

// stepID splits "id.result.x" into the step id and what follows it. The
// longest prefix that isStep accepts wins; without one, the id ends at the
// first dot.
func stepID(s string, isStep func(string) bool) (id, after string) {
	if isStep != nil {
		for i := len(s); i > 0; i-- {
			if (i == len(s) || s[i] == '.') && isStep(s[:i]) {
				if i == len(s) {
					return s, ""
				}
				return s[:i], s[i+1:]
			}
		}
	}
	id, after, _ = strings.Cut(s, ".")
	return id, after
}

// ErrNotFound is returned (wrapped) by Resolve when a path leads nowhere.
var ErrNotFound = errors.New("resolves to nothing")

// Resolve follows p from a value: the context for a path into the context,
// the step's result for a path through a step. It returns the JSON found, or
// an error wrapping ErrNotFound that says where the path ends.
func Resolve(p Path, from json.RawMessage) (json.RawMessage, error) {
	v := bytes.TrimSpace(from)
	if len(v) == 0 {
		v = []byte("null")
	}
	for i, k := range p.Rest {
		next, err := member(v, k)
		if err != nil {
			where := "context"
			if p.Step != "" {
				where = "steps." + p.Step + ".result"
			}
			if i > 0 {
				where += "." + strings.Join(p.Rest[:i], ".")
			}
			return nil, fmt.Errorf("path %q %w: %s %s", p.Raw, ErrNotFound, where, err)
		}
		v = next
	}
	return v, nil
}

// member returns the member k of an object, or the element k of an array.
func member(v json.RawMessage, k string) (json.RawMessage, error) {
	switch v[0] {
	case '{':
		var m map[string]json.RawMessage
		if err := json.Unmarshal(v, &m); err != nil {
			return nil, err
		}
		x, ok := m[k]
		if !ok {
			return nil, fmt.Errorf("has no key %q", k)
		}
		return bytes.TrimSpace(x), nil
	case '[':
		i, err := strconv.Atoi(k)
		if err != nil || i < 0 {
			return nil, fmt.Errorf("is an array, and %q is not an index", k)
		}
		var a []json.RawMessage
		if err := json.Unmarshal(v, &a); err != nil {
			return nil, err
		}
		if i >= len(a) {
			return nil, fmt.Errorf("has %d elements, no index %d", len(a), i)
		}
		return bytes.TrimSpace(a[i]), nil
	}
	return nil, fmt.Errorf("is %s, not an object or array", kind(v))
}

// kind names the JSON type of a value.
func kind(v json.RawMessage) string {
	switch v[0] {
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '{':
		return "an object"
	case '[':
		return "an array"
	}
	return "a number"
}

// Kind names the JSON type of a value, for messages.
func Kind(v json.RawMessage) string {
	v = bytes.TrimSpace(v)
	if len(v) == 0 {
		return "nothing"
	}
	return kind(v)
}
