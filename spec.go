package dagflow

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"
)

// appendSpec appends the JSON of a workflow to b, its steps normalized
// (normalizedStep) on the way, the workflow's own fields as they are: the bytes
// json.Marshal writes, without its reflection, since Create encodes every
// workflow it stores and a large one has many steps. TestSpecEncoding holds
// the two to the same output.
//
// With canon, fields whose value is the default are left out (see
// canonical): this is the form the engine stores, a third the size of the
// full one for steps that keep the defaults, and equal for workflows that
// mean the same, whether their defaults were written out or not.
func appendSpec(b []byte, w *Workflow, canon bool) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, w.ID)
	if w.Saga {
		b = append(b, `,"saga":true`...)
	}
	if len(w.Context) > 0 && !(canon && string(w.Context) == "{}") {
		b = append(b, `,"context":`...)
		b = append(b, w.Context...)
	}
	b = appendField(b, "onComplete", w.OnComplete)
	b = appendField(b, "onError", w.OnError)
	if !(canon && w.Timeout == DefaultWorkflowTimeout) {
		b = appendNumber(b, "timeout", w.Timeout)
	}
	if !(canon && w.OnStepFailure == FailWorkflow) {
		b = appendField(b, "onStepFailure", string(w.OnStepFailure))
	}
	b = append(b, `,"steps":`...)
	if w.Steps == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range w.Steps {
			if i > 0 {
				b = append(b, ',')
			}
			st := normalizedStep(w.Steps[i], &defaultRetries)
			b = appendStep(b, &st, canon)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

// canonical is a normalized workflow's canonical form, the workflow
// appendSpec writes with canon: every field holding its default is zero (a
// retry policy of defaults only, nil). Decoding that form and normalizing
// it gives the normalized workflow back.
func canonical(w *Workflow) Workflow {
	c := *w
	if string(c.Context) == "{}" {
		c.Context = nil
	}
	if c.Timeout == DefaultWorkflowTimeout {
		c.Timeout = 0
	}
	if c.OnStepFailure == FailWorkflow {
		c.OnStepFailure = ""
	}
	c.Steps = slices.Clone(w.Steps)
	for i := range c.Steps {
		s := &c.Steps[i]
		if s.Timeout == DefaultStepTimeout {
			s.Timeout = 0
		}
		if r := canonicalRetries(s.Retries); r != s.Retries {
			s.Retries = r
		}
	}
	return c
}

// canonicalRetries returns a normalized retry policy with its default
// fields zero, or nil when every field is the default; r itself when no
// field is.
func canonicalRetries(r *RetryConfig) *RetryConfig {
	if r == nil {
		return nil
	}
	c := *r
	if c.MaxAttempts == DefaultMaxAttempts {
		c.MaxAttempts = 0
	}
	if c.Backoff == Exponential {
		c.Backoff = ""
	}
	if c.InitialInterval == DefaultInitialInterval {
		c.InitialInterval = 0
	}
	if c.MaxInterval == max(DefaultMaxInterval, r.InitialInterval) {
		c.MaxInterval = 0
	}
	switch c {
	case RetryConfig{}:
		return nil
	case *r:
		return r
	}
	return &c
}

// specSize is about the length appendSpec writes for w, a little more
// when its strings need no escaping, so that the stored spec, which a run
// keeps, is neither copied while it grows nor much larger than it needs.
func specSize(w *Workflow, canon bool) int {
	n := 160 + len(w.ID) + len(w.Context) + len(w.OnComplete) + len(w.OnError)
	for i := range w.Steps {
		st := normalizedStep(w.Steps[i], &defaultRetries)
		s := &st
		n += 10 + len(s.ID) // {"id":""},
		if s.Handler != "" {
			n += 13 + len(s.Handler)
		}
		if s.URL != "" {
			n += 9 + len(s.URL)
		}
		if len(s.DependsOn) > 0 {
			n += 15
			for _, d := range s.DependsOn {
				n += len(d) + 3
			}
		}
		if s.Parallel {
			n += 16
		}
		if s.Compensation != "" {
			n += 18 + len(s.Compensation)
		}
		if s.AllowFailedDeps {
			n += 23
		}
		if s.Retries != nil && !(canon && canonicalRetries(s.Retries) == nil) {
			n += 110 + len(s.Retries.Backoff)
		}
		if s.Timeout != 0 && !(canon && s.Timeout == DefaultStepTimeout) {
			n += 32
		}
	}
	return n
}

func appendStep(b []byte, s *Step, canon bool) []byte {
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
	r := s.Retries
	if canon {
		r = canonicalRetries(r)
	}
	if r != nil {
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
	if !(canon && s.Timeout == DefaultStepTimeout) {
		b = appendNumber(b, "timeout", s.Timeout)
	}
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
