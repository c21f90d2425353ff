package dagflow

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dagflow/dagflow/store"
)

// attemptCtx is the context of one attempt: its run's (or, for a
// compensation, the engine's) cancellation, the attempt's deadline, and the
// lines its handler logs.
type attemptCtx struct {
	context.Context
	end    context.CancelCauseFunc // ends it with a cause (a lost lease)
	cancel context.CancelFunc

	e    *Engine
	mu   sync.Mutex
	logs *attemptLog // made on the handler's first Logger call
	logl *slog.Logger
}

func newAttemptCtx(parent context.Context, d time.Duration, e *Engine) *attemptCtx {
	c1, end := context.WithCancelCause(parent)
	c2, cancel := context.WithTimeout(c1, d)
	return &attemptCtx{Context: c2, end: end, cancel: cancel, e: e}
}

// release frees the context's timer once the attempt has ended. The
// context stays usable (a handler may have kept it), done.
func (c *attemptCtx) release() {
	c.cancel()
	c.end(nil)
}

// logger returns the logger of the attempt, making it on first use.
func (c *attemptCtx) logger(in *Input) *slog.Logger {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logl == nil {
		c.logs = &attemptLog{limit: c.e.cfg.logLimit}
		attrs := []slog.Attr{slog.String("workflowId", in.WorkflowID), slog.String("stepId", in.StepID), slog.Int("attempt", in.Attempt)}
		if in.Item != nil {
			attrs = append(attrs, slog.Int("index", in.Index))
		}
		c.logl = slog.New(&logHandler{log: c.logs, next: c.e.log.Handler().WithAttrs(attrs)})
	}
	return c.logl
}

// takeLogs returns the lines kept for the attempt. Lines logged later (by a
// handler that kept its logger) are dropped.
func (c *attemptCtx) takeLogs() ([]store.LogLine, bool) {
	c.mu.Lock()
	a := c.logs
	c.mu.Unlock()
	if a == nil {
		return nil, false
	}
	return a.take()
}
