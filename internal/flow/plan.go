package flow

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/dagflow/dagflow/internal/path"
)

// Plan is a compiled workflow: what the state machine needs to know of it.
// Plans are shared by the goroutines of an engine and never changed.
type Plan struct {
	Saga     bool
	Continue bool // onStepFailure "continue"
	Timeout  time.Duration
	Steps    []StepPlan
	// OnComplete and OnError are the webhook URLs, "" for none.
	OnComplete, OnError string
	// Concurrency, when set, limits the runs with the same key value.
	Concurrency *ConcurrencyPlan
}

// ConcurrencyPlan is a workflow's concurrency key.
type ConcurrencyPlan struct {
	Key   path.Path
	Limit int
}

// Kind is what a step does.
type Kind uint8

// The kinds of step.
const (
	// Task: an attempt of a Go handler or an HTTP job, run by a worker.
	Task Kind = iota
	// Sleep: a durable timer.
	Sleep
	// Event: waits for an event sent with SendEvent.
	Event
	// Child: runs a sub-workflow as a run of its own.
	Child
)

// StepPlan is one compiled step.
type StepPlan struct {
	ID              string
	Deps            []int32
	Dependents      []int32
	Parallel        bool
	AllowFailedDeps bool
	// Kind is what the step (or each of its items, for a map step) does.
	Kind Kind
	// HasComp says whether the step (or each item) has a compensation: a
	// handler or URL, or for a Child, a saga child with compensations.
	HasComp bool
	Retry   *Retry
	Timeout time.Duration
	// Handler and CompHandler name the Go handlers of the step and of its
	// compensation, URL and CompURL the job handlers of an HTTP step.
	Handler, CompHandler string
	URL, CompURL         string
	// Map, when set, runs the step once per item of a list.
	Map *MapPlan
	// Sleep: a fixed duration, a time, or the path to an RFC 3339 time.
	SleepFor   time.Duration
	SleepAt    time.Time
	SleepUntil *path.Path
	// Event: the name waited for, the path of its key, the wait's
	// timeout (0: the run's remaining time).
	EventName    string
	EventKey     path.Path
	EventTimeout time.Duration
}

// MapPlan is a map step's list and limits.
type MapPlan struct {
	// Items is the path of the list, or nil when the list is Literal.
	Items   *path.Path
	Literal json.RawMessage
	// MaxConcurrency bounds the items under way; 0 means no bound.
	MaxConcurrency int
	// FailCount and FailPercent are the tolerances, each nil when not set.
	FailCount   *int
	FailPercent *float64
}

// Exceeded reports whether failed items out of total break a tolerance.
func (m *MapPlan) Exceeded(failed, total int) bool {
	if m.FailCount == nil && m.FailPercent == nil {
		return failed > 0
	}
	if m.FailCount != nil && failed > *m.FailCount {
		return true
	}
	return m.FailPercent != nil && total > 0 && float64(failed)*100 > *m.FailPercent*float64(total)
}

// Retry is a retry policy.
type Retry struct {
	MaxAttempts int
	Kind        BackoffKind
	Initial     time.Duration
	Max         time.Duration
}

// BackoffKind says how waits between attempts grow.
type BackoffKind uint8

// The backoff kinds.
const (
	Exponential BackoffKind = iota
	Linear
	Fixed
)

// Interval returns the longest wait after the given number of failed
// attempts (1 after the first failure), before jitter: the initial interval
// grown by the backoff kind, capped at Max.
func (r Retry) Interval(failures int) time.Duration {
	if failures < 1 {
		failures = 1
	}
	var d time.Duration
	switch r.Kind {
	case Fixed:
		d = r.Initial
	case Linear:
		if r.Initial > 0 && int64(failures) > math.MaxInt64/int64(r.Initial) {
			d = r.Max
		} else {
			d = r.Initial * time.Duration(failures)
		}
	default:
		if failures > 62 || r.Initial<<(failures-1)>>(failures-1) != r.Initial {
			d = r.Max
		} else {
			d = r.Initial << (failures - 1)
		}
	}
	if d > r.Max || d < 0 {
		d = r.Max
	}
	return d
}

// Ancestors returns the indexes of the steps that step i depends on,
// directly or not, in increasing order.
func (p *Plan) Ancestors(i int) []int {
	seen := make([]bool, len(p.Steps))
	stack := []int32{int32(i)}
	var out []int
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range p.Steps[j].Deps {
			if !seen[d] {
				seen[d] = true
				out = append(out, int(d))
				stack = append(stack, d)
			}
		}
	}
	slices.Sort(out)
	return out
}

// Descendants marks the steps downstream of the marked ones, in place.
func (p *Plan) Descendants(marked []bool) {
	var stack []int32
	for i, m := range marked {
		if m {
			stack = append(stack, int32(i))
		}
	}
	for len(stack) > 0 {
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range p.Steps[j].Dependents {
			if !marked[d] {
				marked[d] = true
				stack = append(stack, d)
			}
		}
	}
}
