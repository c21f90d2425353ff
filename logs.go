package dagflow

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/dagflow/dagflow/store"
)

// attemptLog keeps the lines a handler logs during one attempt, up to the
// engine's limit, and passes them on to the engine's logger. An attempt's
// context makes it the first time the handler asks for its logger.
type attemptLog struct {
	e     *Engine
	mu    sync.Mutex
	lines []store.LogLine
	cut   bool
}

// logger returns the logger of the attempt, making it on first use.
func (c *attemptCtx) logger(e *Engine, in *Input) *slog.Logger {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.logl == nil {
		c.logs = &attemptLog{e: e}
		next := e.log.Handler().WithAttrs([]slog.Attr{
			slog.String("workflowId", in.WorkflowID), slog.String("stepId", in.StepID), slog.Int("attempt", in.Attempt),
		})
		c.logl = slog.New(&logHandler{log: c.logs, next: next})
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
	a.mu.Lock()
	defer a.mu.Unlock()
	lines, cut := a.lines, a.cut
	a.lines, a.cut, a.e = nil, false, nil
	return lines, cut
}

func (a *attemptLog) add(l store.LogLine) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.e == nil {
		return // the attempt has ended
	}
	if len(a.lines) >= a.e.cfg.logLimit {
		a.cut = true
		return
	}
	a.lines = append(a.lines, l)
}

type logHandler struct {
	log    *attemptLog
	next   slog.Handler
	attrs  []slog.Attr
	groups string
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	var b strings.Builder
	write := func(a slog.Attr) bool {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(h.groups)
		b.WriteString(a.Key)
		b.WriteByte('=')
		b.WriteString(a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		write(a)
	}
	r.Attrs(write)
	t := r.Time
	if t.IsZero() {
		t = time.Now()
	}
	h.log.add(store.LogLine{Time: t.UTC().Truncate(time.Microsecond), Level: r.Level.String(), Message: r.Message, Attrs: b.String()})
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	n := *h
	n.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	n.next = h.next.WithAttrs(attrs)
	return &n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	n := *h
	n.groups = h.groups + name + "."
	n.next = h.next.WithGroup(name)
	return &n
}

// discard is the handler of the logger of an Input made outside an engine.
type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
