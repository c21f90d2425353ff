package dagflow

import (
	"cmp"
	"errors"
	"fmt"
	"strings"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/store"
)

// Errors returned by the Engine, grouped by operation. Test for them with
// errors.Is.
var (
	// ErrNotFound is returned by Status, Wait, Cancel, Retry and Attempts
	// when no run has the given id. It is store.ErrNotFound, so either
	// matches.
	ErrNotFound = store.ErrNotFound

	// ErrConflict is returned by Create when a run with the same id but a
	// different workflow exists, by Cancel on a run that has ended, and by
	// Retry on a run that is running, completed, or was compensated. It
	// is store.ErrConflict.
	ErrConflict = store.ErrConflict

	// ErrClosed is returned by every call on an Engine after Close.
	ErrClosed = errors.New("dagflow: engine closed")
)

// ValidationError reports every problem found in a workflow at once. Create
// and ParseWorkflow return it, Schedule for a bad schedule and SendEvent for
// a bad event too; find it with errors.As.
type ValidationError struct {
	// Of says what is invalid: "" for a workflow, "schedule" or "event".
	Of string
	// WorkflowID is the id of the workflow (or schedule), when it has one.
	WorkflowID string
	// Problems lists each problem with its place in the workflow (or the
	// schedule, or the event).
	Problems []Problem
}

// Problem is one thing wrong with a workflow.
type Problem struct {
	// Path is the place of the problem in the workflow JSON, such as
	// "steps[3].dependsOn[0]", or "" for the workflow as a whole.
	Path string
	// Message says what is wrong.
	Message string
}

// String returns the problem as "<path>: <message>", or the message alone
// for the workflow as a whole.
func (p Problem) String() string {
	if p.Path == "" {
		return p.Message
	}
	return p.Path + ": " + p.Message
}

// maxProblemsShown bounds the problems Error writes out (Problems has them
// all).
const maxProblemsShown = 50

// Error returns "invalid workflow" (or schedule, or event) with the id and its problems,
// one to a line after the first when there are several, up to 50 of them
// and how many more there are (Problems holds them all).
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("invalid ")
	b.WriteString(cmp.Or(e.Of, "workflow"))
	if e.WorkflowID != "" {
		fmt.Fprintf(&b, " %q", e.WorkflowID)
	}
	switch len(e.Problems) {
	case 0:
		return b.String()
	case 1:
		b.WriteString(": ")
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, ": %d problems:", len(e.Problems))
	for i, p := range e.Problems {
		if i == maxProblemsShown {
			fmt.Fprintf(&b, "\n\t... and %d more", len(e.Problems)-i)
			break
		}
		b.WriteString("\n\t")
		b.WriteString(p.String())
	}
	return b.String()
}

// Permanent marks err as not worth retrying: a step handler that returns it
// fails its step at once, whatever attempts are left. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err, or an error it wraps, was marked by
// Permanent (or by httpstep.Permanent, its twin for HTTP job handlers).
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p) || httpstep.IsPermanent(err)
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// PanicError is the error of an attempt whose handler panicked. The engine
// recovers the panic, records the attempt as failed with this error's
// message ("handler panicked: <value>"), and retries the step under its
// retry policy like any other failure: a panic never reaches the
// application. The stack goes to the attempt's logs (Engine.Attempts, the
// console) as an ERROR line with attributes panic and stack, which the
// engine's logger gets too.
type PanicError struct {
	// Value is what the handler passed to panic.
	Value any
	// Stack is the goroutine's stack at the panic.
	Stack []byte
}

// Error returns "handler panicked: " and the panic value.
func (e *PanicError) Error() string { return fmt.Sprintf("handler panicked: %v", e.Value) }

// Unwrap returns the panic value when it is an error.
func (e *PanicError) Unwrap() error {
	err, _ := e.Value.(error)
	return err
}

// StateError is returned when a call does not fit the run's state, such as
// Cancel on a completed run. It matches ErrConflict with errors.Is.
type StateError struct {
	// Op is the call: "cancel" or "retry".
	Op string
	// RunID names the run.
	RunID string
	// State is the state the run is in.
	State string
	// Reason says why, when there is more to say than the state.
	Reason string
}

// Error says which call the run's state refused, and why.
func (e *StateError) Error() string {
	msg := fmt.Sprintf("dagflow: cannot %s run %q: it is %s", e.Op, e.RunID, e.State)
	if e.Reason != "" {
		msg += " (" + e.Reason + ")"
	}
	return msg
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *StateError) Is(target error) bool { return target == ErrConflict }
