package dagflow

import (
	"bytes"
	"encoding/json"
	"math"
	"time"
)

// Workflow is the spec of one run: its steps and their dependencies. It has
// the JSON shape of the hosted platform's workflow files (camelCase fields,
// durations in seconds), so ParseWorkflow reads those files unchanged and
// json.Marshal writes them. In Go, durations are time.Duration.
//
// The zero values of the optional fields mean the documented defaults.
type Workflow struct {
	// ID names the run; it must be unique among runs. It may contain "/"
	// (child runs and scheduled runs have such ids). Creating a workflow
	// with an id that exists returns that run when the spec is the same and
	// ErrConflict when it differs. A sub-workflow (Step.Workflow) has no id
	// of its own: its run's id is "<parentId>/<stepId>".
	ID string `json:"id"`
	// Saga, when true, compensates the completed steps in reverse order of
	// completion when the run fails, times out or is cancelled.
	Saga bool `json:"saga,omitempty"`
	// Context is a JSON object handed to every step. Empty means {}.
	Context json.RawMessage `json:"context,omitempty"`
	// OnComplete is a URL POSTed the final status when the run completes.
	OnComplete string `json:"onComplete,omitempty"`
	// OnError is a URL POSTed the final status when the run fails or is
	// cancelled.
	OnError string `json:"onError,omitempty"`
	// Timeout is the time the whole run may take, counted from its start.
	// Zero means DefaultWorkflowTimeout (one day). In JSON, seconds.
	Timeout time.Duration `json:"timeout,omitempty"`
	// OnStepFailure says what happens when a step fails for good: "fail"
	// (the default) or "continue". See the package documentation.
	OnStepFailure FailurePolicy `json:"onStepFailure,omitempty"`
	// PreviousSteps says which results a step receives: "ancestors" (the
	// default: the results of the steps it depends on, directly or not) or
	// "all" (every step completed when its attempt started).
	PreviousSteps PreviousSteps `json:"previousSteps,omitempty"`
	// Concurrency, when set, lets at most Limit runs with the same key
	// value have steps under way at once.
	Concurrency *Concurrency `json:"concurrency,omitempty"`
	// Steps are the steps of the workflow, each with a unique id.
	Steps []Step `json:"steps"`
}

// Step is one step of a workflow. It does one kind of work: a Go handler
// registered on the engine (Handler), an HTTP job handler (URL), a
// sub-workflow (Workflow), a durable timer (Sleep) or a wait for an event
// (WaitForEvent). Map runs a handler, URL or sub-workflow once per item of a
// list.
type Step struct {
	// ID names the step, unique within its workflow. It may not contain
	// "/" (the idempotency key is "<workflowId>/<stepId>").
	ID string `json:"id"`
	// URL is the HTTP job handler to POST the step's input to. Relative
	// URLs resolve against the engine's base URL.
	URL string `json:"url,omitempty"`
	// Handler names a Go handler registered with Engine.Handle.
	Handler string `json:"handler,omitempty"`
	// DependsOn lists the ids of the steps that must complete before this
	// one starts.
	DependsOn []string `json:"dependsOn,omitempty"`
	// Parallel lets the step run at the same time as other ready steps.
	// Ready steps that are not parallel run one at a time within a run, in
	// the order they are declared.
	Parallel bool `json:"parallel,omitempty"`
	// Retries says how often and how fast a failed attempt is tried again.
	// Nil means one attempt only.
	Retries *RetryConfig `json:"retries,omitempty"`
	// Timeout is the time one attempt may take, counted from the attempt's
	// start. The handler's context ends then. Zero means
	// DefaultStepTimeout (five minutes). In JSON, seconds.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Compensation undoes the step in a saga: a URL for URL steps, a
	// handler name for handler steps. Only saga workflows may have them.
	Compensation string `json:"compensation,omitempty"`
	// AllowFailedDeps runs the step even when a dependency failed or was
	// skipped; it needs OnStepFailure "continue".
	AllowFailedDeps bool `json:"allowFailedDeps,omitempty"`
	// Map runs the step once per item of a list.
	Map *Map `json:"map,omitempty"`
	// Workflow runs a sub-workflow as a child run of its own.
	Workflow *Workflow `json:"workflow,omitempty"`
	// Sleep waits, holding no worker, until a time.
	Sleep *Sleep `json:"sleep,omitempty"`
	// WaitForEvent waits, holding no worker, for an event sent with
	// Engine.SendEvent.
	WaitForEvent *WaitForEvent `json:"waitForEvent,omitempty"`
}

// RetryConfig is a step's retry policy. The zero values of its fields mean
// the defaults given on each.
type RetryConfig struct {
	// MaxAttempts is the number of attempts, the first included. Zero
	// means 1. An attempt cut short because its engine stopped does not
	// count (see WithMaxInterruptions).
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Backoff is how the wait between attempts grows: "exponential" (the
	// default), "linear" or "fixed". Waits get full jitter: each is drawn
	// at random between zero and the computed interval.
	Backoff Backoff `json:"backoff,omitempty"`
	// InitialInterval is the first wait. Zero means one second. In JSON,
	// seconds.
	InitialInterval time.Duration `json:"initialInterval,omitempty"`
	// MaxInterval caps every wait. Zero means one minute (or
	// InitialInterval, if longer). In JSON, seconds.
	MaxInterval time.Duration `json:"maxInterval,omitempty"`
}

// Map runs a step once per item of a list: a fan-out whose width is data.
type Map struct {
	// Items is the list: a path into the run, or a literal array.
	Items MapItems `json:"items"`
	// MaxConcurrency bounds the items under way at once; zero means as
	// many as the engine's concurrency allows.
	MaxConcurrency int `json:"maxConcurrency,omitempty"`
	// ToleratedFailurePercentage and ToleratedFailureCount say how many
	// items may fail before the step fails; when neither is set, none may.
	ToleratedFailurePercentage *float64 `json:"toleratedFailurePercentage,omitempty"`
	ToleratedFailureCount      *int     `json:"toleratedFailureCount,omitempty"`
}

// MapItems is the list of a map step: Path, a path into the run
// ("context.items", "steps.list.result.images"), or List, a JSON array. In
// JSON it is a string (the path) or an array.
type MapItems struct {
	Path string
	List json.RawMessage
}

// MarshalJSON writes the path as a string, or the list as it is.
func (m MapItems) MarshalJSON() ([]byte, error) {
	if m.Path != "" || len(m.List) == 0 {
		return json.Marshal(m.Path)
	}
	return compactJSON(m.List), nil
}

// UnmarshalJSON reads a string as a path and an array as a list.
func (m *MapItems) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '"' {
		*m = MapItems{}
		return json.Unmarshal(b, &m.Path)
	}
	*m = MapItems{List: append(json.RawMessage(nil), b...)}
	return nil
}

// Sleep is a durable timer: for a duration, or until a time.
type Sleep struct {
	// Duration is how long to sleep. In JSON, "seconds".
	Duration time.Duration `json:"-"`
	// Until is a path to an RFC 3339 time in the run, or an RFC 3339
	// time.
	Until string `json:"until,omitempty"`
}

// WaitForEvent waits for an event with a name and a key.
type WaitForEvent struct {
	// Name is the event's name.
	Name string `json:"name"`
	// Key is the path of the value the event's key must match
	// ("context.orderId").
	Key string `json:"key"`
	// Timeout fails the step when no event came by then; zero means the
	// run's remaining time. In JSON, seconds.
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Concurrency limits the runs with the same key value that have steps under
// way at once.
type Concurrency struct {
	// Key is the path of the key value in the context ("context.customerId").
	Key string `json:"key"`
	// Limit is how many runs with one key value may be under way at once.
	Limit int `json:"limit"`
}

// FailurePolicy says what a run does when a step fails for good.
type FailurePolicy string

// The failure policies.
const (
	// FailWorkflow starts no new step once a step has failed for good;
	// running steps finish their attempt and the run fails.
	FailWorkflow FailurePolicy = "fail"
	// ContinueOnFailure skips the steps downstream of a failed step
	// (unless they set AllowFailedDeps) and runs every independent branch
	// to its end; the run then fails with every result that was reached.
	ContinueOnFailure FailurePolicy = "continue"
)

// PreviousSteps says which results a step receives in its input.
type PreviousSteps string

// The choices of PreviousSteps.
const (
	// PreviousAncestors: the results of the step's dependencies, direct
	// or not. The default.
	PreviousAncestors PreviousSteps = "ancestors"
	// PreviousAll: the results of every step completed when the attempt
	// started.
	PreviousAll PreviousSteps = "all"
)

// Backoff names a way of spacing retries.
type Backoff string

// The backoff kinds.
const (
	Exponential Backoff = "exponential" // initial * 2^(attempt-1)
	Linear      Backoff = "linear"      // initial * attempt
	Fixed       Backoff = "fixed"       // initial
)

// Defaults of a workflow's optional fields.
const (
	DefaultWorkflowTimeout = 24 * time.Hour
	DefaultStepTimeout     = 5 * time.Minute
	DefaultMaxAttempts     = 1
	DefaultInitialInterval = time.Second
	DefaultMaxInterval     = time.Minute
)

// The JSON forms, with durations in seconds.
type (
	// workflowHead is the workflow's fields but its steps.
	workflowHead struct {
		ID            string          `json:"id"`
		Saga          bool            `json:"saga,omitempty"`
		Context       json.RawMessage `json:"context,omitempty"`
		OnComplete    string          `json:"onComplete,omitempty"`
		OnError       string          `json:"onError,omitempty"`
		Timeout       seconds         `json:"timeout,omitempty"`
		OnStepFailure FailurePolicy   `json:"onStepFailure,omitempty"`
		PreviousSteps PreviousSteps   `json:"previousSteps,omitempty"`
		Concurrency   *Concurrency    `json:"concurrency,omitempty"`
	}
	workflowJSON struct {
		workflowHead
		Steps []Step `json:"steps"`
	}
	// workflowOut is what MarshalJSON writes: the steps' JSON forms in one
	// pass of the encoder, not one json.Marshal (and the compaction of its
	// output) per step.
	workflowOut struct {
		workflowHead
		Steps []stepJSON `json:"steps"`
	}
	stepJSON struct {
		ID              string        `json:"id"`
		URL             string        `json:"url,omitempty"`
		Handler         string        `json:"handler,omitempty"`
		DependsOn       []string      `json:"dependsOn,omitempty"`
		Parallel        bool          `json:"parallel,omitempty"`
		Retries         *RetryConfig  `json:"retries,omitempty"`
		Timeout         seconds       `json:"timeout,omitempty"`
		Compensation    string        `json:"compensation,omitempty"`
		AllowFailedDeps bool          `json:"allowFailedDeps,omitempty"`
		Map             *Map          `json:"map,omitempty"`
		Workflow        *Workflow     `json:"workflow,omitempty"`
		Sleep           *Sleep        `json:"sleep,omitempty"`
		WaitForEvent    *WaitForEvent `json:"waitForEvent,omitempty"`
	}
	retryJSON struct {
		MaxAttempts     int     `json:"maxAttempts,omitempty"`
		Backoff         Backoff `json:"backoff,omitempty"`
		InitialInterval seconds `json:"initialInterval,omitempty"`
		MaxInterval     seconds `json:"maxInterval,omitempty"`
	}
	sleepJSON struct {
		Seconds seconds `json:"seconds,omitempty"`
		Until   string  `json:"until,omitempty"`
	}
	waitJSON struct {
		Name    string  `json:"name"`
		Key     string  `json:"key"`
		Timeout seconds `json:"timeout,omitempty"`
	}
)

// seconds is a duration written in JSON as a number of seconds.
type seconds time.Duration

func (s seconds) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(s).Seconds())
}

func (s *seconds) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	*s = seconds(durationOf(f))
	return nil
}

// durationOf turns seconds into a duration, saturating.
func durationOf(f float64) time.Duration {
	d := f * float64(time.Second)
	switch {
	case math.IsNaN(d):
		return 0
	case d >= math.MaxInt64:
		return math.MaxInt64
	case d <= math.MinInt64:
		return math.MinInt64
	}
	return time.Duration(math.Round(d))
}

// MarshalJSON writes the workflow's JSON form, durations in seconds.
func (w Workflow) MarshalJSON() ([]byte, error) {
	steps := make([]stepJSON, len(w.Steps))
	for i := range w.Steps {
		steps[i] = w.Steps[i].wire()
	}
	return json.Marshal(workflowOut{workflowHead{w.ID, w.Saga, w.Context, w.OnComplete, w.OnError, seconds(w.Timeout),
		w.OnStepFailure, w.PreviousSteps, w.Concurrency}, steps})
}

// UnmarshalJSON reads the workflow's JSON form. ParseWorkflow reads it too,
// and says where each problem is.
func (w *Workflow) UnmarshalJSON(b []byte) error {
	var j workflowJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	h := &j.workflowHead
	*w = Workflow{h.ID, h.Saga, h.Context, h.OnComplete, h.OnError, time.Duration(h.Timeout), h.OnStepFailure,
		h.PreviousSteps, h.Concurrency, j.Steps}
	return nil
}

// MarshalJSON writes the step's JSON form, durations in seconds.
func (s Step) MarshalJSON() ([]byte, error) {
	return json.Marshal(s.wire())
}

func (s *Step) wire() stepJSON {
	return stepJSON{s.ID, s.URL, s.Handler, s.DependsOn, s.Parallel, s.Retries, seconds(s.Timeout),
		s.Compensation, s.AllowFailedDeps, s.Map, s.Workflow, s.Sleep, s.WaitForEvent}
}

// UnmarshalJSON reads the step's JSON form.
func (s *Step) UnmarshalJSON(b []byte) error {
	var j stepJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Step{j.ID, j.URL, j.Handler, j.DependsOn, j.Parallel, j.Retries, time.Duration(j.Timeout), j.Compensation,
		j.AllowFailedDeps, j.Map, j.Workflow, j.Sleep, j.WaitForEvent}
	return nil
}

// MarshalJSON writes the policy's JSON form, intervals in seconds.
func (r RetryConfig) MarshalJSON() ([]byte, error) {
	return json.Marshal(retryJSON{r.MaxAttempts, r.Backoff, seconds(r.InitialInterval), seconds(r.MaxInterval)})
}

// UnmarshalJSON reads the policy's JSON form.
func (r *RetryConfig) UnmarshalJSON(b []byte) error {
	var j retryJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*r = RetryConfig{j.MaxAttempts, j.Backoff, time.Duration(j.InitialInterval), time.Duration(j.MaxInterval)}
	return nil
}

// MarshalJSON writes {"seconds": n} or {"until": "..."}.
func (s Sleep) MarshalJSON() ([]byte, error) {
	return json.Marshal(sleepJSON{seconds(s.Duration), s.Until})
}

// UnmarshalJSON reads {"seconds": n} or {"until": "..."}.
func (s *Sleep) UnmarshalJSON(b []byte) error {
	var j sleepJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*s = Sleep{time.Duration(j.Seconds), j.Until}
	return nil
}

// MarshalJSON writes the wait's JSON form, its timeout in seconds.
func (w WaitForEvent) MarshalJSON() ([]byte, error) {
	return json.Marshal(waitJSON{w.Name, w.Key, seconds(w.Timeout)})
}

// UnmarshalJSON reads the wait's JSON form.
func (w *WaitForEvent) UnmarshalJSON(b []byte) error {
	var j waitJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*w = WaitForEvent{j.Name, j.Key, time.Duration(j.Timeout)}
	return nil
}

// normalized returns a copy of w with every default filled in and the
// context in canonical form, so that two specs that mean the same thing
// compare equal. It expects a valid workflow. The copy shares what it does
// not change with w, and is never changed itself.
func (w *Workflow) normalized() Workflow {
	n := *w
	if n.Timeout == 0 {
		n.Timeout = DefaultWorkflowTimeout
	}
	if n.OnStepFailure == "" {
		n.OnStepFailure = FailWorkflow
	}
	if n.PreviousSteps == "" {
		n.PreviousSteps = PreviousAncestors
	}
	n.Context = canonicalContext(n.Context)
	if n.Concurrency != nil {
		c := *n.Concurrency
		n.Concurrency = &c
	}
	n.Steps = make([]Step, len(w.Steps))
	for i := range w.Steps {
		n.Steps[i] = normalizedStep(w.Steps[i])
	}
	return n
}

// defaultRetries is the retry policy of a step that sets none, shared by
// every normalized step without one; never change it.
var defaultRetries = RetryConfig{MaxAttempts: DefaultMaxAttempts, Backoff: Exponential,
	InitialInterval: DefaultInitialInterval, MaxInterval: DefaultMaxInterval}

// normalizedStep returns s with every default filled in. The slices and
// pointers it holds may be shared with s: a normalized workflow is never
// changed.
func normalizedStep(s Step) Step {
	if len(s.DependsOn) == 0 {
		s.DependsOn = nil
	}
	if s.Sleep != nil || s.WaitForEvent != nil || s.Workflow != nil {
		// They have no attempts: neither timeout nor retries apply.
		s.Timeout, s.Retries = 0, nil
	} else {
		if s.Timeout == 0 {
			s.Timeout = DefaultStepTimeout
		}
		if s.Retries == nil {
			s.Retries = &defaultRetries // shared: normalized workflows are not changed
			return s
		}
		r := *s.Retries
		if r.MaxAttempts == 0 {
			r.MaxAttempts = DefaultMaxAttempts
		}
		if r.Backoff == "" {
			r.Backoff = Exponential
		}
		if r.InitialInterval == 0 {
			r.InitialInterval = DefaultInitialInterval
		}
		if r.MaxInterval == 0 {
			r.MaxInterval = max(DefaultMaxInterval, r.InitialInterval)
		}
		s.Retries = &r
	}
	if s.Map != nil {
		m := *s.Map
		if m.Items.Path == "" {
			m.Items.List = compactJSON(m.Items.List)
		}
		s.Map = &m
	}
	if s.Sleep != nil {
		c := *s.Sleep
		s.Sleep = &c
	}
	if s.WaitForEvent != nil {
		c := *s.WaitForEvent
		s.WaitForEvent = &c
	}
	if s.Workflow != nil {
		c := s.Workflow.normalized()
		s.Workflow = &c
	}
	return s
}

// canonical returns a normalized workflow with every field that holds its
// default zeroed: the form the engine stores, shorter than the normalized
// one, and the same for workflows that mean the same whether their defaults
// were written out or not.
func (w *Workflow) canonical() Workflow {
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
	if c.PreviousSteps == PreviousAncestors {
		c.PreviousSteps = ""
	}
	c.Steps = make([]Step, len(w.Steps))
	for i, s := range w.Steps {
		if s.Timeout == DefaultStepTimeout {
			s.Timeout = 0
		}
		if s.Retries == &defaultRetries {
			s.Retries = nil
		} else if s.Retries != nil {
			r := *s.Retries
			if r.MaxAttempts == DefaultMaxAttempts {
				r.MaxAttempts = 0
			}
			if r.Backoff == Exponential {
				r.Backoff = ""
			}
			if r.MaxInterval == max(DefaultMaxInterval, r.InitialInterval) {
				r.MaxInterval = 0
			}
			if r.InitialInterval == DefaultInitialInterval {
				r.InitialInterval = 0
			}
			s.Retries = &r
			if r == (RetryConfig{}) {
				s.Retries = nil
			}
		}
		if s.Workflow != nil {
			cw := s.Workflow.canonical()
			s.Workflow = &cw
		}
		c.Steps[i] = s
	}
	return c
}

// compactJSON returns v without insignificant space, or v when it is not
// valid JSON.
func compactJSON(v json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return v
	}
	return b.Bytes()
}
