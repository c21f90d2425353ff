package dagflow

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/dagflow/dagflow/internal/flow"
)

// The calls of the Hooks given with WithHooks (the otel module's traces and
// metrics).

func (e *Engine) hookRunCreated(ctx context.Context, runID string) string {
	trace := ""
	for _, h := range e.cfg.hooks {
		if h.RunCreated != nil {
			if t := h.RunCreated(ctx, runID); t != "" {
				trace = t
			}
		}
	}
	return trace
}

func (e *Engine) attemptInfo(t *task) AttemptInfo {
	kind := "http"
	if t.c.Plan.Steps[t.c.Index].Handler != "" {
		kind = "handler"
	}
	return AttemptInfo{WorkflowID: t.c.RunID, StepID: t.c.StepID, Kind: kind, Attempt: t.c.Attempt, Item: t.c.Item - 1,
		Compensation: t.c.Comp, StartedAt: t.c.StartedAt, Trace: t.c.Trace}
}

// hookStarted calls AttemptStarted; the context it returns is the handler's.
func (e *Engine) hookStarted(ctx context.Context, t *task) context.Context {
	if len(e.cfg.hooks) == 0 {
		return ctx
	}
	a := e.attemptInfo(t)
	for _, h := range e.cfg.hooks {
		if h.AttemptStarted != nil {
			ctx = h.AttemptStarted(ctx, a)
		}
	}
	t.hctx = ctx
	return ctx
}

func (e *Engine) hookEnded(t *task, o *flow.Outcome) {
	if len(e.cfg.hooks) == 0 {
		return
	}
	var err error
	switch {
	case o.Err == "":
	case strings.HasPrefix(o.Err, "attempt timed out"), strings.HasPrefix(o.Err, "workflow timed out"):
		err = fmt.Errorf("%s: %w", o.Err, context.DeadlineExceeded)
	case strings.HasPrefix(o.Err, "cancelled: "):
		err = fmt.Errorf("%s: %w", o.Err, context.Canceled)
	default:
		err = errors.New(o.Err)
	}
	if err != nil && o.Permanent {
		err = Permanent(err)
	}
	a := e.attemptInfo(t)
	for _, h := range e.cfg.hooks {
		if h.AttemptEnded != nil {
			h.AttemptEnded(t.hctx, a, err)
		}
	}
}

func (e *Engine) hookRunEnded(runID string, s State) {
	for _, h := range e.cfg.hooks {
		if h.RunEnded != nil {
			h.RunEnded(runID, s)
		}
	}
}

// backlogHooked reports whether a hook wants the backlog.
func (e *Engine) backlogHooked() bool {
	for _, h := range e.cfg.hooks {
		if h.Backlog != nil {
			return true
		}
	}
	return false
}

func (e *Engine) hookBacklog(n int) {
	for _, h := range e.cfg.hooks {
		if h.Backlog != nil {
			h.Backlog(n)
		}
	}
}
