// Package flow is the state machine of a workflow run. Its functions run
// inside a store transaction and move the records of runs, steps, attempts and
// webhooks from one consistent state to the next: dependency counting, claims
// under leases, retries with backoff, stopping, saga compensation in reverse
// order of completion, and redrive. Because every rule lives here and runs
// inside serializable transactions, the same code is correct whether one
// engine owns the store or several engine processes share it.
package flow

import (
	"math"
	"time"
)

// Plan is a compiled workflow: what the state machine needs to know of it.
type Plan struct {
	Saga     bool
	Continue bool // onStepFailure "continue"
	Timeout  time.Duration
	Steps    []StepPlan
	// OnComplete and OnError are the webhook URLs, "" for none.
	OnComplete, OnError string
}

// StepPlan is one compiled step.
type StepPlan struct {
	ID              string
	Deps            []int32
	Dependents      []int32
	Parallel        bool
	AllowFailedDeps bool
	HasComp         bool
	Retry           *Retry // shared by the steps with the same policy
	Timeout         time.Duration
	// Handler and CompHandler name the Go handlers of the step and of its
	// compensation, URL and CompURL the job handlers of an HTTP step.
	Handler, CompHandler string
	URL, CompURL         string
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
