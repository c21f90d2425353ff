package dagflow

import (
	"bytes"
	"encoding/json"
	"time"
)

// Workflow is the spec of one run: its steps and their dependencies. It has
// the JSON shape of the hosted platform's workflow files (camelCase fields),
// so ParseWorkflow reads those files unchanged and json.Marshal writes them.
//
// The zero values of the optional fields mean the documented defaults.
type Workflow struct {
	// ID names the run; it must be unique among runs, and may not contain
	// "/" (see Step.ID). Creating a workflow with an id that exists returns
	// that run when the spec is the same and ErrConflict when it differs.
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
	// Timeout is the time in seconds the whole run may take, counted from
	// its start. Zero means DefaultWorkflowTimeout (86400, one day).
	Timeout float64 `json:"timeout,omitempty"`
	// OnStepFailure says what happens when a step fails for good: "fail"
	// (the default) or "continue". See the package documentation.
	OnStepFailure FailurePolicy `json:"onStepFailure,omitempty"`
	// Steps are the steps of the workflow, each with a unique id.
	Steps []Step `json:"steps"`
}

// Step is one step of a workflow: a Go handler registered on the engine, or
// an HTTP job handler at a URL.
type Step struct {
	// ID names the step, unique within its workflow. It may not contain
	// "/" (the idempotency key is "<workflowId>/<stepId>").
	ID string `json:"id"`
	// URL is the HTTP job handler to POST the step's input to. Relative
	// URLs resolve against the engine's base URL. Exactly one of URL and
	// Handler is set.
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
	// Retries says how often and how fast a failed step is tried again.
	// Nil means one attempt only.
	Retries *RetryConfig `json:"retries,omitempty"`
	// Timeout is the time in seconds one attempt may take, counted from
	// the attempt's start (when the engine claimed it: the start its record
	// shows). The handler's context ends then. Zero means
	// DefaultStepTimeout (300).
	Timeout float64 `json:"timeout,omitempty"`
	// Compensation undoes the step in a saga: a URL for URL steps, a
	// handler name for handler steps. Only saga workflows may have them.
	Compensation string `json:"compensation,omitempty"`
	// AllowFailedDeps runs the step even when a dependency failed or was
	// skipped; it needs OnStepFailure "continue".
	AllowFailedDeps bool `json:"allowFailedDeps,omitempty"`
}

// RetryConfig is a step's retry policy. The zero values of its fields mean
// the defaults given on each.
type RetryConfig struct {
	// MaxAttempts is the number of attempts, the first included. Zero
	// means 1.
	MaxAttempts int `json:"maxAttempts,omitempty"`
	// Backoff is how the wait between attempts grows: "exponential" (the
	// default), "linear" or "fixed". Waits get full jitter: each is drawn
	// at random between zero and the computed interval.
	Backoff Backoff `json:"backoff,omitempty"`
	// InitialInterval is the first wait in seconds. Zero means 1.
	InitialInterval float64 `json:"initialInterval,omitempty"`
	// MaxInterval caps every wait, in seconds. Zero means 60.
	MaxInterval float64 `json:"maxInterval,omitempty"`
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
	DefaultWorkflowTimeout = 86400 // seconds
	DefaultStepTimeout     = 300   // seconds
	DefaultMaxAttempts     = 1
	DefaultInitialInterval = 1  // seconds
	DefaultMaxInterval     = 60 // seconds
)

// seconds turns a spec's seconds into a duration.
func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// normalized returns a copy of w with every default filled in and the context
// compacted, so that two specs that mean the same thing compare equal. It
// expects a valid workflow.
func (w *Workflow) normalized() Workflow {
	n := w.withDefaults()
	n.Steps = make([]Step, len(w.Steps))
	// Steps without a retry policy share one: normalized workflows are
	// never changed.
	shared := defaultRetries
	for i := range w.Steps {
		n.Steps[i] = normalizedStep(w.Steps[i], &shared)
	}
	return n
}

// withDefaults returns a copy of w with the defaults of the workflow's own
// fields filled in and the context compacted. Its steps are w's as they
// are: read each through normalizedStep. Create uses it so as not to copy
// every step of a large workflow.
func (w *Workflow) withDefaults() Workflow {
	n := *w
	if n.Timeout == 0 {
		n.Timeout = DefaultWorkflowTimeout
	}
	if n.OnStepFailure == "" {
		n.OnStepFailure = FailWorkflow
	}
	if len(bytes.TrimSpace(n.Context)) == 0 || string(bytes.TrimSpace(n.Context)) == "null" {
		n.Context = json.RawMessage(`{}`)
	} else {
		var b bytes.Buffer
		if json.Compact(&b, n.Context) == nil {
			n.Context = b.Bytes()
		}
	}
	return n
}

// defaultRetries is the retry policy of a step that sets none. Never
// change it: normalizedStep hands it out.
var defaultRetries = RetryConfig{MaxAttempts: DefaultMaxAttempts, Backoff: Exponential,
	InitialInterval: DefaultInitialInterval, MaxInterval: DefaultMaxInterval}

// normalizedStep returns s with every default filled in; a step without a
// retry policy gets shared. Normalizing a normalized step changes nothing.
func normalizedStep(s Step, shared *RetryConfig) Step {
	if s.Timeout == 0 {
		s.Timeout = DefaultStepTimeout
	}
	if len(s.DependsOn) == 0 {
		s.DependsOn = nil
	}
	if s.Retries == nil {
		s.Retries = shared
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
	if r != *s.Retries {
		s.Retries = &r
	}
	return s
}

// ParseWorkflow reads a workflow from its JSON form and validates it. It
// returns a *ValidationError listing every problem at once, each with its
// place; JSON syntax errors, values of the wrong type, unknown fields and
// fields given twice come with their line and column, first, in the order
// of the input. The context is kept compacted.
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
