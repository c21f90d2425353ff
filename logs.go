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
// engine's limit.
type attemptLog struct {
	mu    sync.Mutex
	limit int
	lines []store.LogLine
	cut   bool
	done  bool
}

func (a *attemptLog) add(l store.LogLine) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.done: // the attempt has ended
	case len(a.lines) >= a.limit:
		a.cut = true
	default:
		a.lines = append(a.lines, l)
	}
}

func (a *attemptLog) take() ([]store.LogLine, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.done = true
	return a.lines, a.cut
}

// logHandler is the slog.Handler of an attempt's logger: it keeps each line
// with the attempt and passes it on to the engine's logger.
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
