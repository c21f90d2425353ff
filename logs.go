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
// engine's limit, and passes them on to the engine's logger.
type attemptLog struct {
	e     *Engine
	in    *Input
	mu    sync.Mutex
	lines []store.LogLine
	cut   bool
	l     *slog.Logger
}

func (a *attemptLog) init(e *Engine, in *Input) {
	a.e, a.in = e, in
}

func (a *attemptLog) logger() *slog.Logger {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.l == nil {
		next := a.e.log.Handler().WithAttrs([]slog.Attr{
			slog.String("workflowId", a.in.WorkflowID), slog.String("stepId", a.in.StepID), slog.Int("attempt", a.in.Attempt),
		})
		a.l = slog.New(&logHandler{log: a, next: next})
	}
	return a.l
}

// take returns the lines kept so far and forgets them.
func (a *attemptLog) take() ([]store.LogLine, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	lines, cut := a.lines, a.cut
	a.lines, a.cut, a.l = nil, false, nil
	return lines, cut
}

func (a *attemptLog) add(l store.LogLine) {
	a.mu.Lock()
	defer a.mu.Unlock()
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
