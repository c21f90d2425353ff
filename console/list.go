package console

import (
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/dagflow/dagflow"
)

// Page sizes of the run list.
const (
	defaultPageSize = 50
	maxPageSize     = 500
)

// listStates are the states the run list filters by, in the order shown.
var listStates = []dagflow.State{dagflow.StatePending, dagflow.StateRunning, dagflow.StateCompleted, dagflow.StateFailed, dagflow.StateCancelled}

// listView is what the run list page shows.
type listView struct {
	pageView
	State  dagflow.State
	Query  string
	Parent string // the list shows the child runs of this run
	// ParentURL is the page of Parent.
	ParentURL string
	Limit     int
	States    []dagflow.State
	Runs      []runRow
	// Next is the URL of the next page, First that of the first when this
	// is not it; "" when there is none.
	Next, First string
	// Retention says how long runs are kept after they end, when the
	// engine removes them.
	Retention string
}

type runRow struct {
	URL      string
	ID       string
	State    dagflow.State
	Started  time.Time
	Duration string
	Steps    int
	Done     int
	Failed   int
	// Error is the run's error, cut: the head of its first line, and a
	// longer part of it for the title attribute. The run's page has the
	// whole error.
	Error, ErrorTitle string
	// Parent is the run this one is a child of, ParentURL its page.
	Parent, ParentURL string
}

// titleRunes is the most of a run's error a row repeats in its title.
const titleRunes = 1000

// listOptions reads the list's filters from the query string.
func listOptions(r *request) (dagflow.ListOptions, string) {
	q := r.URL.Query()
	o := dagflow.ListOptions{State: dagflow.State(q.Get("state")), IDContains: q.Get("q"), Parent: q.Get("parent"),
		After: q.Get("after"), Limit: defaultPageSize}
	if o.State == "all" {
		o.State = ""
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageSize {
			return o, "limit must be a number from 1 to " + strconv.Itoa(maxPageSize)
		}
		o.Limit = n
	}
	if o.State != "" && o.State != dagflow.StatePending && !contains(listStates, o.State) {
		return o, "unknown state " + strconv.Quote(string(o.State))
	}
	return o, ""
}

func (c *console) list(w http.ResponseWriter, r *request) {
	o, bad := listOptions(r)
	if bad != "" {
		c.errorPage(w, r, http.StatusBadRequest, "Bad request", bad)
		return
	}
	page, err := c.eng.List(r.Context(), o)
	if err != nil {
		code := listErrStatus(o, err)
		c.errorPage(w, r, code, http.StatusText(code), err.Error())
		return
	}
	title := "Runs"
	if o.Parent != "" {
		title = "Child runs of " + o.Parent
	}
	v := listView{pageView: c.page(r, title), State: o.State, Query: o.IDContains, Parent: o.Parent, Limit: o.Limit,
		States: listStates, Runs: c.rows(r.base, page.Runs, c.now())}
	if o.Parent != "" {
		v.ParentURL = runURL(o.Parent)
	}
	if page.Next != "" {
		v.Next = listURL(o, page.Next)
	}
	if o.After != "" {
		v.First = listURL(o, "")
	}
	if runs, _ := c.eng.Retention(); runs > 0 {
		v.Retention = formatRetention(runs)
	}
	c.render(w, r, http.StatusOK, "list", v)
}

// rows makes the rows of a list of runs, for a page at base.
func (c *console) rows(base string, runs []dagflow.RunSummary, now time.Time) []runRow {
	out := make([]runRow, 0, len(runs))
	for _, s := range runs {
		started := s.StartedAt
		if started.IsZero() {
			started = s.CreatedAt
		}
		msg := scrub(s.Error)
		row := runRow{URL: base + runURL(s.ID), ID: s.ID, State: s.State, Started: started,
			Duration: runDuration(s.StartedAt, s.CompletedAt, s.State, now), Steps: s.Steps, Done: s.Done,
			Failed: s.Failed, Error: headLine(msg), ErrorTitle: truncate(msg, titleRunes), Parent: s.Parent}
		if s.Parent != "" {
			row.ParentURL = base + runURL(s.Parent)
		}
		out = append(out, row)
	}
	return out
}

// formatRetention writes a retention period the way a person reads it.
func formatRetention(d time.Duration) string {
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return plural(int(d/(24*time.Hour)), "day")
	}
	return formatDuration(d)
}

// listURL returns the relative URL of a page of the run list.
func listURL(o dagflow.ListOptions, after string) string {
	q := url.Values{}
	if o.State != "" {
		q.Set("state", string(o.State))
	}
	if o.IDContains != "" {
		q.Set("q", o.IDContains)
	}
	if o.Parent != "" {
		q.Set("parent", o.Parent)
	}
	if o.Limit != defaultPageSize {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if after != "" {
		q.Set("after", after)
	}
	if len(q) == 0 {
		return "./"
	}
	return "./?" + q.Encode()
}

// listJSON answers the run list as the engine's dagflow.RunList.
func (c *console) listJSON(w http.ResponseWriter, r *request) {
	o, bad := listOptions(r)
	if bad != "" {
		writeJSONError(w, http.StatusBadRequest, bad)
		return
	}
	page, err := c.eng.List(r.Context(), o)
	if err != nil {
		writeJSONError(w, listErrStatus(o, err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// listErrStatus maps an error of Engine.List to an HTTP status. The engine
// has no sentinel for a bad cursor: an error with a cursor is taken for one.
func listErrStatus(o dagflow.ListOptions, err error) int {
	if code := errStatus(err); code != http.StatusInternalServerError || o.After == "" {
		return code
	}
	return http.StatusBadRequest
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
