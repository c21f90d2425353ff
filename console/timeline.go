package console

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/dagflow/dagflow"
)

// timelineView is the Gantt chart of a run: a row per step that started,
// a bar per attempt (compensations too), on a shared time axis.
type timelineView struct {
	Start time.Time
	Span  string // the time the axis covers
	Ticks []tick
	Rows  []timelineRow
}

type tick struct {
	X     string // a percentage of the axis
	Label string
}

type timelineRow struct {
	Index    int // of the step
	ID       string
	State    dagflow.State
	Critical bool
	Bars     []bar
}

type bar struct {
	X, W  string // percentages of the axis
	Class string // ok, failed, running; with comp for compensations
	Title string
}

// newTimeline lays the attempts of a run out in time. critical marks the
// steps on the critical path. now ends the bars of attempts under way.
func newTimeline(st *dagflow.Status, atts []dagflow.Attempt, critical criticalPath, now time.Time) *timelineView {
	byStep := map[string][]dagflow.Attempt{}
	for _, a := range atts {
		byStep[a.StepID] = append(byStep[a.StepID], a)
	}
	// Steps that work without attempts (sleeps, waits, child runs) show
	// the time they took as one bar.
	waits := map[string][2]time.Time{}
	for _, s := range st.Steps {
		if len(byStep[s.ID]) == 0 && !s.StartedAt.IsZero() {
			waits[s.ID] = [2]time.Time{s.StartedAt, stepEnd(s, st, now)}
		}
	}
	if len(atts) == 0 && len(waits) == 0 {
		return nil
	}
	t0, t1 := st.StartedAt, st.CompletedAt
	widen := func(start, end time.Time) {
		if t0.IsZero() || start.Before(t0) {
			t0 = start
		}
		if end.After(t1) {
			t1 = end
		}
	}
	for _, a := range atts {
		widen(a.StartedAt, attemptEnd(a, st, now))
	}
	for _, w := range waits {
		widen(w[0], w[1])
	}
	if !st.State.Final() && now.After(t1) {
		t1 = now
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Millisecond
	}
	frac := func(t time.Time) float64 { return float64(t.Sub(t0)) / float64(span) }

	tv := &timelineView{Start: t0, Span: formatDuration(span), Ticks: ticks(span)}
	first := map[string]time.Time{}
	for i, s := range st.Steps {
		list := byStep[s.ID]
		w, waited := waits[s.ID]
		if len(list) == 0 && !waited {
			continue
		}
		row := timelineRow{Index: i, ID: s.ID, State: s.State, Critical: critical.has(s.ID)}
		place := func(start, end time.Time, class, title string) {
			x, w := frac(start), frac(end)-frac(start)
			w = max(w, 0.003) // an instant still shows
			if x+w > 1 {
				x = max(0, 1-w)
			}
			row.Bars = append(row.Bars, bar{X: pct(x), W: pct(w), Class: class, Title: title})
		}
		switch {
		case waited:
			first[s.ID] = w[0]
			place(w[0], w[1], "wait", waitTitle(s, w[1].Sub(w[0])))
		case len(list) > maxBars:
			first[s.ID] = list[0].StartedAt
			for _, sp := range spans(list, st, now) {
				place(sp.start, sp.end, sp.class, sp.title(s.ID))
			}
		default:
			first[s.ID] = list[0].StartedAt
			for _, a := range list {
				end := attemptEnd(a, st, now)
				place(a.StartedAt, end, attemptClass(a), attemptTitle(a, end))
			}
		}
		tv.Rows = append(tv.Rows, row)
	}
	slices.SortStableFunc(tv.Rows, func(a, b timelineRow) int {
		return first[a.ID].Compare(first[b.ID])
	})
	return tv
}

// stepEnd is when a step without attempts ended; for one under way, now
// (or the run's end).
func stepEnd(s dagflow.StepStatus, st *dagflow.Status, now time.Time) time.Time {
	switch {
	case !s.CompletedAt.IsZero():
		return s.CompletedAt
	case st.State.Final() && !st.CompletedAt.IsZero():
		return st.CompletedAt
	}
	return now
}

// waitTitle describes the bar of a step that works without attempts.
func waitTitle(s dagflow.StepStatus, d time.Duration) string {
	what := "waited"
	switch {
	case s.Kind == "workflow":
		what = "its child runs took"
		if s.Run != "" {
			what = "its child run took"
		}
	case s.State == dagflow.StateWaiting:
		what = "waiting for"
	}
	return fmt.Sprintf("%s: %s %s", s.ID, what, formatDuration(d))
}

// maxBars is the most attempts a row of the timeline draws one by one; a
// row with more (the items of a map step) draws the spans of time in which
// some of them were under way.
const maxBars = 40

// span is a stretch of time in which attempts of one step (its items', its
// compensations') were under way one after another or at once.
type span struct {
	start, end    time.Time
	class         string
	n, failed     int
	first, last   int // the lowest and highest item
	compensations bool
}

func (sp span) title(stepID string) string {
	what := "attempt"
	if sp.compensations {
		what = "compensation attempt"
	}
	s := fmt.Sprintf("%s: %s", stepID, plural(sp.n, what))
	if sp.first >= 0 {
		s += fmt.Sprintf(" of items %d–%d", sp.first, sp.last)
	}
	s += ", " + formatDuration(sp.end.Sub(sp.start))
	if sp.failed > 0 {
		s += fmt.Sprintf(", %d failed", sp.failed)
	}
	return s
}

// spans merges the attempts of a step into the spans of time they
// cover, the step's own attempts apart from its compensations'. A span is
// "running" when an attempt in it is under way, else "failed" when one
// failed.
func spans(list []dagflow.Attempt, st *dagflow.Status, now time.Time) []span {
	sorted := slices.Clone(list)
	slices.SortStableFunc(sorted, func(a, b dagflow.Attempt) int {
		return cmp.Or(cmpBool(a.Compensation, b.Compensation), a.StartedAt.Compare(b.StartedAt))
	})
	var out []span
	for _, a := range sorted {
		end := attemptEnd(a, st, now)
		cur := len(out) - 1
		if cur < 0 || out[cur].compensations != a.Compensation || a.StartedAt.After(out[cur].end) {
			out = append(out, span{start: a.StartedAt, end: end, compensations: a.Compensation, first: a.Item, last: a.Item})
			cur++
		}
		sp := &out[cur]
		if end.After(sp.end) {
			sp.end = end
		}
		sp.n++
		sp.first, sp.last = min(sp.first, a.Item), max(sp.last, a.Item)
		switch {
		case a.EndedAt.IsZero():
			sp.class = "running"
		case a.Error != "":
			sp.failed++
		}
	}
	for i := range out {
		sp := &out[i]
		if sp.class == "" {
			sp.class = "ok"
			if sp.failed > 0 {
				sp.class = "failed"
			}
		}
		if sp.compensations {
			sp.class += " comp"
		}
	}
	return out
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// attemptEnd is when an attempt ended; for one under way, now (or the
// run's end, when it was never recorded as ended).
func attemptEnd(a dagflow.Attempt, st *dagflow.Status, now time.Time) time.Time {
	switch {
	case !a.EndedAt.IsZero():
		return a.EndedAt
	case st.State.Final() && !st.CompletedAt.IsZero():
		return st.CompletedAt
	}
	return now
}

// attemptClass is the outcome of an attempt as a CSS class.
func attemptClass(a dagflow.Attempt) string {
	c := "ok"
	switch {
	case a.EndedAt.IsZero():
		c = "running"
	case a.Interrupted:
		c = "interrupted"
	case a.Error != "":
		c = "failed"
	}
	if a.Compensation {
		c += " comp"
	}
	return c
}

func attemptTitle(a dagflow.Attempt, end time.Time) string {
	what := "attempt"
	if a.Compensation {
		what = "compensation attempt"
	}
	step := a.StepID
	if a.Item >= 0 {
		step += fmt.Sprintf(" item %d", a.Item)
	}
	s := fmt.Sprintf("%s %s %d: %s", step, what, a.Number, formatDuration(end.Sub(a.StartedAt)))
	switch {
	case a.EndedAt.IsZero():
		s += ", under way"
	case a.Interrupted:
		s += ", interrupted (its engine stopped)"
	case a.Error != "":
		s += ", failed: " + truncate(a.Error, 200)
	default:
		s += ", succeeded"
	}
	if a.StatusCode != 0 {
		s += fmt.Sprintf(" (HTTP %d)", a.StatusCode)
	}
	return s
}

// ticks returns about five round times along an axis of span.
func ticks(span time.Duration) []tick {
	steps := []time.Duration{}
	for _, unit := range []time.Duration{time.Microsecond, time.Millisecond, time.Second} {
		for _, m := range []time.Duration{1, 2, 5, 10, 20, 50, 100, 200, 500} {
			steps = append(steps, m*unit)
		}
	}
	steps = append(steps, 2*time.Second, 5*time.Second, 10*time.Second, 15*time.Second, 30*time.Second, time.Minute,
		2*time.Minute, 5*time.Minute, 10*time.Minute, 15*time.Minute, 30*time.Minute, time.Hour, 2*time.Hour,
		6*time.Hour, 12*time.Hour, 24*time.Hour)
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 6 {
			step = s
			break
		}
	}
	var out []tick
	for t := time.Duration(0); t <= span; t += step {
		out = append(out, tick{X: pct(float64(t) / float64(span)), Label: formatDuration(t)})
	}
	if len(out) > 0 {
		out[0].Label = "0"
	}
	return out
}

// criticalPath is the chain of dependencies that ended last: each step on
// it, mapped to the dependency the chain goes back through ("" for the
// first step).
type criticalPath map[string]string

func (c criticalPath) has(id string) bool {
	_, ok := c[id]
	return ok
}

// edge reports whether the path goes along the edge from -> to.
func (c criticalPath) edge(from, to string) bool {
	dep, ok := c[to]
	return ok && dep == from
}

// findCriticalPath returns the critical path of a run: from the step that
// ended last, back through the dependency of each that ended last, to a
// step with none.
func findCriticalPath(wf *dagflow.Workflow, atts []dagflow.Attempt, st *dagflow.Status, now time.Time) criticalPath {
	end := map[string]time.Time{}
	for _, a := range atts {
		if a.Compensation {
			continue
		}
		if e := attemptEnd(a, st, now); e.After(end[a.StepID]) {
			end[a.StepID] = e
		}
	}
	// Steps that work without attempts (sleeps, waits, child runs) end
	// when their status says.
	for _, s := range st.Steps {
		if _, ok := end[s.ID]; !ok && !s.StartedAt.IsZero() {
			end[s.ID] = stepEnd(s, st, now)
		}
	}
	if len(end) == 0 || wf == nil {
		return nil
	}
	deps := map[string][]string{}
	for _, s := range wf.Steps {
		deps[s.ID] = s.DependsOn
	}
	last := ""
	for _, s := range wf.Steps {
		if e, ok := end[s.ID]; ok && (last == "" || e.After(end[last])) {
			last = s.ID
		}
	}
	path := criticalPath{}
	for cur := last; cur != "" && !path.has(cur); {
		next := ""
		for _, d := range deps[cur] {
			if e, ok := end[d]; ok && (next == "" || e.After(end[next])) {
				next = d
			}
		}
		path[cur] = next
		cur = next
	}
	return path
}
