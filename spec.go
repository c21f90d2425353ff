package dagflow

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/dagflow/dagflow/httpstep"
)

// The engine stores each run's workflow as its spec: the workflow normalized
// (every default filled in, the context in canonical form), then with every
// field that holds its default left out (Workflow.canonical), as JSON. Two
// workflows that mean the same thing have the same spec, byte for byte: that
// is how Create tells the same workflow from another under one id.

// specOf returns the spec the engine stores for a valid workflow, and the
// workflow normalized.
func specOf(w *Workflow) (json.RawMessage, Workflow, error) {
	n := w.normalized()
	c := n.canonical()
	b, err := c.MarshalJSON() // json.Marshal(c) would compact its output again
	return b, n, err
}

// decodeSpec reads a stored spec as a normalized workflow.
func decodeSpec(spec []byte) (Workflow, error) {
	var w Workflow
	if err := json.Unmarshal(spec, &w); err != nil {
		return Workflow{}, err
	}
	return w.normalized(), nil
}

// sameSpec reports whether a stored spec and a new one describe the same
// workflow. Specs the engine wrote compare byte for byte; one written by an
// earlier version, or laid out otherwise by a store, is read and written
// again first.
func sameSpec(stored, spec []byte) bool {
	if bytes.Equal(stored, spec) {
		return true
	}
	w, err := decodeSpec(stored)
	if err != nil {
		return false
	}
	again, _, err := specOf(&w)
	return err == nil && bytes.Equal(again, spec)
}

// canonicalContext returns a context in canonical form: {} when empty or
// null, otherwise the same JSON value with object members in key order and
// numbers in one notation (1.0 and 1e0 are 1), so that contexts that are the
// same value compare equal. A context that is not valid JSON is returned as
// it is (validation reports it).
func canonicalContext(c json.RawMessage) json.RawMessage {
	c = bytes.TrimSpace(c)
	if len(c) == 0 || string(c) == "null" {
		return json.RawMessage(`{}`)
	}
	d := json.NewDecoder(bytes.NewReader(c))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return c
	}
	var b bytes.Buffer
	writeCanonical(&b, v)
	return b.Bytes()
}

func writeCanonical(b *bytes.Buffer, v any) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			writeString(b, k)
			b.WriteByte(':')
			writeCanonical(b, v[k])
		}
		b.WriteByte('}')
	case []any:
		b.WriteByte('[')
		for i, x := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			writeCanonical(b, x)
		}
		b.WriteByte(']')
	case json.Number:
		b.WriteString(canonicalNumber(string(v)))
	case string:
		writeString(b, v)
	case bool:
		b.WriteString(strconv.FormatBool(v))
	default:
		b.WriteString("null")
	}
}

// writeString writes s as a JSON string, without escaping HTML characters.
func writeString(b *bytes.Buffer, s string) {
	enc := json.NewEncoder(b)
	enc.SetEscapeHTML(false)
	enc.Encode(s)
	b.Truncate(b.Len() - 1) // Encode's newline
}

// canonicalNumber writes a JSON number in one notation: an integer as its
// digits, any other number as digits with a decimal point (or in exponent
// form when its exponent is large), without trailing zeros. It is exact:
// 12345678901234567890 and 12345678901234567891 stay apart.
func canonicalNumber(n string) string {
	neg := strings.HasPrefix(n, "-")
	s := strings.TrimPrefix(n, "-")
	exp := 0
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		e, err := strconv.Atoi(s[i+1:])
		if err != nil || e > 1e6 || e < -1e6 {
			return n // absurd: kept as written
		}
		exp, s = e, s[:i]
	}
	digits := s
	if i := strings.IndexByte(s, '.'); i >= 0 {
		digits = s[:i] + s[i+1:]
		exp -= len(s) - i - 1
	}
	digits = strings.TrimLeft(digits, "0")
	if digits == "" {
		return "0"
	}
	for strings.HasSuffix(digits, "0") {
		digits = digits[:len(digits)-1]
		exp++
	}
	// The value is digits × 10^exp.
	var out string
	switch {
	case exp >= 0 && exp+len(digits) <= 21:
		out = digits + strings.Repeat("0", exp)
	case exp < 0 && -exp < len(digits):
		out = digits[:len(digits)+exp] + "." + digits[len(digits)+exp:]
	case exp < 0 && -exp-len(digits) < 6:
		out = "0." + strings.Repeat("0", -exp-len(digits)) + digits
	default:
		mant := digits[:1]
		if len(digits) > 1 {
			mant += "." + digits[1:]
		}
		out = mant + "e" + strconv.Itoa(exp+len(digits)-1)
	}
	if neg {
		out = "-" + out
	}
	return out
}

// redactURL is a URL fit to show: see httpstep.Redact.
func redactURL(raw string) string { return httpstep.Redact(raw) }
