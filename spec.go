package dagflow

import (
	"encoding/json"
	"math"
	"strconv"
	"unicode/utf8"
)

// appendSpec appends the JSON of a normalized workflow to b: the bytes
// json.Marshal writes, without its reflection, since Create encodes every
// workflow it stores and a large one has many steps. TestSpecEncoding holds
// the two to the same output.
func appendSpec(b []byte, w *Workflow) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, w.ID)
	if w.Saga {
		b = append(b, `,"saga":true`...)
	}
	if len(w.Context) > 0 {
		b = append(b, `,"context":`...)
		b = append(b, w.Context...)
	}
	b = appendField(b, "onComplete", w.OnComplete)
	b = appendField(b, "onError", w.OnError)
	b = appendNumber(b, "timeout", w.Timeout)
	b = appendField(b, "onStepFailure", string(w.OnStepFailure))
	b = append(b, `,"steps":`...)
	if w.Steps == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range w.Steps {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendStep(b, &w.Steps[i])
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// specSize is about the length appendSpec writes for w, a little more
// when its strings need no escaping, so that the stored spec, which a run
// keeps, is neither copied while it grows nor much larger than it needs.
func specSize(w *Workflow) int {
	n := 160 + len(w.ID) + len(w.Context) + len(w.OnComplete) + len(w.OnError)
	for i := range w.Steps {
		s := &w.Steps[i]
		n += 48 + len(s.ID) + len(s.URL) + len(s.Handler) + len(s.Compensation)
		for _, d := range s.DependsOn {
			n += len(d) + 3
		}
		if s.Retries != nil {
			n += 110 + len(s.Retries.Backoff)
		}
		if s.Timeout != 0 {
			n += 24
		}
		if s.AllowFailedDeps {
			n += 24
		}
	}
	return n
}

func appendStep(b []byte, s *Step) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, s.ID)
	b = appendField(b, "url", s.URL)
	b = appendField(b, "handler", s.Handler)
	if len(s.DependsOn) > 0 {
		b = append(b, `,"dependsOn":[`...)
		for i, d := range s.DependsOn {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, d)
		}
		b = append(b, ']')
	}
	if s.Parallel {
		b = append(b, `,"parallel":true`...)
	}
	if r := s.Retries; r != nil {
		b = append(b, `,"retries":{`...)
		n := len(b)
		if r.MaxAttempts != 0 {
			b = append(b, `,"maxAttempts":`...)
			b = strconv.AppendInt(b, int64(r.MaxAttempts), 10)
		}
		b = appendField(b, "backoff", string(r.Backoff))
		b = appendNumber(b, "initialInterval", r.InitialInterval)
		b = appendNumber(b, "maxInterval", r.MaxInterval)
		if len(b) > n {
			b = append(b[:n], b[n+1:]...) // the first field's comma
		}
		b = append(b, '}')
	}
	b = appendNumber(b, "timeout", s.Timeout)
	b = appendField(b, "compensation", s.Compensation)
	if s.AllowFailedDeps {
		b = append(b, `,"allowFailedDeps":true`...)
	}
	return append(b, '}')
}

// appendField appends `,"name":"value"` unless value is empty (omitempty).
func appendField(b []byte, name, value string) []byte {
	if value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, value)
}

// appendNumber appends `,"name":v` unless v is 0 (omitempty), formatting v
// as encoding/json does.
func appendNumber(b []byte, name string, v float64) []byte {
	if v == 0 {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	if v == math.Trunc(v) && math.Abs(v) < 1e15 {
		return strconv.AppendInt(b, int64(v), 10) // what 'f' writes, faster
	}
	abs := math.Abs(v)
	format := byte('f')
	if abs < 1e-6 || abs >= 1e21 {
		format = 'e'
	}
	b = strconv.AppendFloat(b, v, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString appends s as a JSON string. Strings of plain printable ASCII
// (ids, names, URLs, nearly always) are copied as they are; any other goes
// through encoding/json, for its escaping of control characters, HTML
// characters, invalid UTF-8 and U+2028/U+2029.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
