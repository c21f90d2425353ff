package dagflow

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// attemptCtx is the context of one attempt: its parent's values and
// cancellation, and a deadline. It makes its Done channel, and the timer that
// closes it at the deadline, only when a handler asks for Done, so a step
// that never waits on its context costs no timer. Err reports the deadline
// whether or not Done was asked for.
type attemptCtx struct {
	parent   context.Context
	deadline time.Time

	mu    sync.Mutex
	done  chan struct{}
	err   error
	timer *time.Timer
	stop  func() bool // stops the context.AfterFunc on parent

	e    *Engine
	logs *attemptLog // made with logl, on the handler's first Logger call
	logl *slog.Logger
}

func (c *attemptCtx) init(parent context.Context, deadline time.Time) {
	*c = attemptCtx{parent: parent, deadline: deadline}
}

func (c *attemptCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *attemptCtx) Value(key any) any { return c.parent.Value(key) }

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
		c.timer = time.AfterFunc(time.Until(c.deadline), func() { c.end(context.DeadlineExceeded) })
		c.stop = context.AfterFunc(c.parent, func() { c.end(c.parent.Err()) })
	}
	return c.done
}

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
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

// end makes the context done with err, once.
func (c *attemptCtx) end(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		c.err = err
		if c.done != nil { // nil until a handler asks for Done
			close(c.done)
		}
	}
}

// release stops the timer and the watch on the parent once the attempt has
// ended. The context stays usable (a handler may have kept it): it is
// simply not cancelled any more at the deadline unless Err is asked.
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
