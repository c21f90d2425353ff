package dagflow

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/dagflow/dagflow/store"
)

// attemptCtx is the context of one attempt: its run's (or, for a
// compensation, the engine's) values and cancellation, the attempt's
// deadline, the lines its handler logs, and the results it may read. It makes its Done channel, and
// the timer that closes it at the deadline, only when a handler asks for
// Done, so that an attempt that never waits on its context costs no timer;
// Err reports the deadline whether or not Done was asked for.
type attemptCtx struct {
	parent   context.Context
	deadline time.Time
	e        *Engine

	mu    sync.Mutex
	done  chan struct{}
	err   error
	timer Timer
	stop  func() bool // stops the context.AfterFunc on parent

	logs *attemptLog // made on the handler's first Logger call
	logl *slog.Logger

	results attemptResults // the Input's PreviousSteps
}

func newAttemptCtx(parent context.Context, deadline time.Time, e *Engine) *attemptCtx {
	return &attemptCtx{parent: parent, deadline: deadline, e: e}
}

// Deadline implements context.Context.
func (c *attemptCtx) Deadline() (time.Time, bool) { return c.deadline, true }

// Value implements context.Context.
func (c *attemptCtx) Value(key any) any { return c.parent.Value(key) }

// Done implements context.Context.
func (c *attemptCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done == nil {
		c.done = make(chan struct{})
		if c.err == nil {
			c.err = c.check()
		}
		if c.err != nil {
			close(c.done)
			return c.done
		}
		c.timer = c.e.cfg.clock.AfterFunc(c.deadline.Sub(c.e.now()), func() { c.end(context.DeadlineExceeded) })
		c.stop = context.AfterFunc(c.parent, func() { c.end(c.parent.Err()) })
	}
	return c.done
}

// Err implements context.Context.
func (c *attemptCtx) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		if c.err = c.check(); c.err != nil && c.done != nil {
			close(c.done)
		}
	}
	return c.err
}

func (c *attemptCtx) check() error {
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !c.e.now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// end makes the context done with err (context.Cause then returns err
// unless the parent was cancelled), once.
func (c *attemptCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil {
			close(c.done)
		}
	}
}

// release stops the timer and the watch on the parent once the attempt has
// ended. The context stays usable (a handler may have kept it).
func (c *attemptCtx) release() {
	c.mu.Lock()
	timer, stop := c.timer, c.stop
	c.mu.Unlock()
	if timer != nil {
		timer.Stop()
	}
	if stop != nil {
		stop()
	}
}

func (c *attemptCtx) String() string { return "dagflow attempt context" }

var _ context.Context = (*attemptCtx)(nil)

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
