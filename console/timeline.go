package console

import (
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
	if len(atts) == 0 {
		return nil
	}
	t0, t1 := st.StartedAt, st.CompletedAt
	for _, a := range atts {
		if t0.IsZero() || a.StartedAt.Before(t0) {
			t0 = a.StartedAt
		}
		end := attemptEnd(a, st, now)
		if end.After(t1) {
			t1 = end
		}
	}
	if !st.State.Final() && now.After(t1) {
		t1 = now
	}
	span := t1.Sub(t0)
	if span <= 0 {
		span = time.Millisecond
	}
	frac := func(t time.Time) float64 { return float64(t.Sub(t0)) / float64(span) }

	byStep := map[string][]dagflow.Attempt{}
	for _, a := range atts {
		byStep[a.StepID] = append(byStep[a.StepID], a)
	}
	tv := &timelineView{Start: t0, Span: formatDuration(span), Ticks: ticks(span)}
	for i, s := range st.Steps {
		list := byStep[s.ID]
		if len(list) == 0 {
			continue
		}
		row := timelineRow{Index: i, ID: s.ID, State: s.State, Critical: critical.has(s.ID)}
		for _, a := range list {
			end := attemptEnd(a, st, now)
			x, w := frac(a.StartedAt), frac(end)-frac(a.StartedAt)
			w = max(w, 0.003) // an instant still shows
			if x+w > 1 {
				x = max(0, 1-w)
			}
			row.Bars = append(row.Bars, bar{X: pct(x), W: pct(w), Class: attemptClass(a), Title: attemptTitle(a, end)})
		}
		tv.Rows = append(tv.Rows, row)
	}
	slices.SortStableFunc(tv.Rows, func(a, b timelineRow) int {
		return byStep[a.ID][0].StartedAt.Compare(byStep[b.ID][0].StartedAt)
	})
	return tv
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
	s := fmt.Sprintf("%s %s %d: %s", a.StepID, what, a.Number, formatDuration(end.Sub(a.StartedAt)))
	switch {
	case a.EndedAt.IsZero():
		s += ", under way"
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
