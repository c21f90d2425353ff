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
	Limit  int
	States []dagflow.State
	Runs   []runRow
	// Next is the URL of the next page, First that of the first when this
	// is not it; "" when there is none.
	Next, First string
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
	Error    string
}

// listOptions reads the list's filters from the query string.
func listOptions(r *request) (dagflow.ListOptions, string) {
	q := r.URL.Query()
	o := dagflow.ListOptions{State: dagflow.State(q.Get("state")), IDContains: q.Get("q"), After: q.Get("after"), Limit: defaultPageSize}
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
	now := c.now()
	v := listView{pageView: c.page(r, "Runs"), State: o.State, Query: o.IDContains, Limit: o.Limit, States: listStates,
		Runs: make([]runRow, 0, len(page.Runs))}
	for _, s := range page.Runs {
		started := s.StartedAt
		if started.IsZero() {
			started = s.CreatedAt
		}
		v.Runs = append(v.Runs, runRow{URL: runURL(s.ID), ID: s.ID, State: s.State, Started: started,
			Duration: runDuration(s.StartedAt, s.CompletedAt, s.State, now), Steps: s.Steps, Done: s.Done,
			Failed: s.Failed, Error: s.Error})
	}
	if page.Next != "" {
		v.Next = listURL(o, page.Next)
	}
	if o.After != "" {
		v.First = listURL(o, "")
	}
	c.render(w, r, http.StatusOK, "list", v)
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
