package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/dagflow/dagflow"
)

// A step's page shows what the run's page shows of it, on a page of its
// own; for a map step, it is the drill-down into its items: each item with
// its value, state, attempts and their log lines, result, error, and the
// child run of a map of sub-workflows, a page at a time, filtered by state.

// Page sizes of a map step's items.
const (
	defaultItemsPage = 50
	maxItemsPage     = 500
)

// shortRunes is the most of an item's value its summary line shows.
const shortRunes = 80

// itemStates are the states the items of a map step are filtered by, in
// the order shown.
var itemStates = []dagflow.State{dagflow.StatePending, dagflow.StateRunning, dagflow.StateCompleted, dagflow.StateFailed,
	dagflow.StateSkipped, dagflow.StateCancelled, dagflow.StateCompensated, dagflow.StateCompensationFailed}

// stepPageView is what a step's page shows.
type stepPageView struct {
	pageView
	Status  *dagflow.Status
	RunURL  string
	Live    bool
	Step    stepView
	Actions *actionsView
	// Items is the page of a map step's items shown; the rest describes
	// the filter and the pages.
	Items      []itemView
	ItemStates []stateCount
	State      dagflow.State // the filter, or ""
	Total      int           // items in the filter
	From, To   int           // the items shown, from 1; To is 0 when none
	Prev, Next string        // the URLs of the pages around this one
}

// stateCount is a state the items may be filtered by, with how many are
// in it and the URL of the filter.
type stateCount struct {
	State dagflow.State // "" for every item
	N     int
	URL   string
}

// itemView is an item of a map step as its step's page shows it.
type itemView struct {
	dagflow.Item
	Short    string // the item's value in a line, cut
	Val      jsonView
	Res      jsonView
	Err      textView
	Duration string
	RunURL   string // the page of its child run
	History  []attemptView
	Open     bool
}

func (c *console) stepPage(w http.ResponseWriter, r *request) {
	q := r.URL.Query()
	state := dagflow.State(q.Get("state"))
	if state != "" && !contains(itemStates, state) {
		c.errorPage(w, r, http.StatusBadRequest, "Bad request", "unknown state "+strconv.Quote(string(state)))
		return
	}
	from, limit, bad := 0, defaultItemsPage, ""
	if s := q.Get("from"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			bad = "from must be a number from 0"
		}
		from = n
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxItemsPage {
			bad = "limit must be a number from 1 to " + strconv.Itoa(maxItemsPage)
		}
		limit = n
	}
	if bad != "" {
		c.errorPage(w, r, http.StatusBadRequest, "Bad request", bad)
		return
	}
	d, err := c.read(r)
	if err != nil {
		c.engineError(w, r, err)
		return
	}
	stepID := r.segs[3]
	steps := stepViews(d, findCriticalPath(d.wf, d.atts, d.st, d.now))
	i := stepIndex(d.st, stepID)
	if i < 0 {
		c.errorPage(w, r, http.StatusNotFound, "Step not found", fmt.Sprintf("Run %q has no step %q.", d.st.ID, stepID))
		return
	}
	v := stepPageView{pageView: c.page(r, stepID+" · "+d.st.ID), Status: d.st, RunURL: d.self, Live: !d.st.State.Final(),
		Step: steps[i], State: state}
	v.Step.Open, v.Step.Anchor, v.Step.ItemsURL = true, d.self, "#items"
	if v.Live {
		v.Refresh = 5
	}
	if c.cfg.actions && d.st.Parent == "" {
		v.Actions = &actionsView{CSRF: c.csrfToken(w, r), Token: c.cfg.token != "", Rerun: rerunnable(d.st)}
		v.Step.Rerun, v.Step.Form, v.Step.Back = v.Actions.Rerun && v.Step.RerunNote == "", v.Actions, "step"
		if !v.Actions.Rerun {
			v.Step.RerunNote = ""
		}
	} else {
		v.Step.RerunNote = ""
	}
	if v.Step.Map != nil {
		items, err := c.eng.Items(r.Context(), d.st.ID, stepID)
		if err != nil {
			c.engineError(w, r, err)
			return
		}
		c.itemPage(&v, d, items, from, limit)
	}
	c.render(w, r, http.StatusOK, "step-page", v)
}

// itemPage fills v with the items of a map step that its filter keeps, the
// page of them from from on, each with its attempts.
func (c *console) itemPage(v *stepPageView, d *runData, items []dagflow.Item, from, limit int) {
	stepID := v.Step.ID
	counts := map[dagflow.State]int{}
	var kept []dagflow.Item
	for _, it := range items {
		counts[it.State]++
		if v.State == "" || it.State == v.State {
			kept = append(kept, it)
		}
	}
	page := func(state dagflow.State, from int) string {
		q := url.Values{}
		if state != "" {
			q.Set("state", string(state))
		}
		if from > 0 {
			q.Set("from", strconv.Itoa(from))
		}
		if limit != defaultItemsPage {
			q.Set("limit", strconv.Itoa(limit))
		}
		u := "./" + url.PathEscape(stepID)
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		return u
	}
	v.ItemStates = append(v.ItemStates, stateCount{N: len(items), URL: page("", 0)})
	for _, s := range itemStates {
		if counts[s] > 0 || s == v.State {
			v.ItemStates = append(v.ItemStates, stateCount{State: s, N: counts[s], URL: page(s, 0)})
		}
	}
	v.Total = len(kept)
	if from > len(kept) {
		from = len(kept)
	}
	end := min(from+limit, len(kept))
	if from > 0 {
		v.Prev = page(v.State, max(0, from-limit))
	}
	if end < len(kept) {
		v.Next = page(v.State, end)
	}
	if end > from {
		v.From, v.To = from+1, end
	}
	shown := map[int]int{} // item index -> place in v.Items
	for _, it := range kept[from:end] {
		itemURL := d.self + "/steps/" + url.PathEscape(stepID) + "/items/" + strconv.Itoa(it.Index)
		it.Error = scrub(it.Error)
		iv := itemView{Item: it, Short: truncate(cutBytes(string(unescapeHTMLChars(it.Value)), 4*shortRunes), shortRunes), Val: newJSONView(it.Value, itemURL+"/value"), Res: newJSONView(it.Result, itemURL+"/result"),
			Err: newTextView(it.Error, itemURL+"/error"), Open: it.State == dagflow.StateFailed || it.State == dagflow.StateCompensationFailed}
		if !it.StartedAt.IsZero() {
			iv.Duration = runDuration(it.StartedAt, it.CompletedAt, it.State, d.now)
			if it.State != dagflow.StateRunning && it.CompletedAt.IsZero() {
				iv.Duration = ""
			}
		}
		if it.Run != "" {
			iv.RunURL = d.base + runURL(it.Run)
		}
		shown[it.Index] = len(v.Items)
		v.Items = append(v.Items, iv)
	}
	for _, a := range d.atts {
		if a.StepID != stepID || a.Item < 0 {
			continue
		}
		if k, ok := shown[a.Item]; ok {
			v.Items[k].History = append(v.Items[k].History, newAttemptView(a, d.st, d.now, d.self+"/attempts"))
		}
	}
}

// stepIndex is the place of a step in a run's status, or -1.
func stepIndex(st *dagflow.Status, id string) int {
	for i, s := range st.Steps {
		if s.ID == id {
			return i
		}
	}
	return -1
}

// itemsJSON answers the items of a map step, []dagflow.Item, their errors
// scrubbed of URL secrets.
func (c *console) itemsJSON(w http.ResponseWriter, r *request) {
	items, err := c.eng.Items(r.Context(), r.runID(), r.segs[3])
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	if items == nil {
		items = []dagflow.Item{}
	}
	for i := range items {
		items[i].Error = scrub(items[i].Error)
	}
	writeJSON(w, http.StatusOK, items)
}

// itemJSON answers the value or the result of an item of a map step, as
// JSON, or its error, as text.
func (c *console) itemJSON(w http.ResponseWriter, r *request) {
	n, err := strconv.Atoi(r.segs[5])
	if err != nil || n < 0 || strconv.Itoa(n) != r.segs[5] {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("no item %q", r.segs[5]))
		return
	}
	items, err := c.eng.Items(r.Context(), r.runID(), r.segs[3])
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	if n >= len(items) {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("step %q has no item %d", r.segs[3], n))
		return
	}
	it := items[n]
	switch r.segs[6] {
	case "value":
		writeRawJSON(w, http.StatusOK, it.Value)
	case "result":
		switch {
		case it.Result != nil:
			writeRawJSON(w, http.StatusOK, it.Result)
		case it.State == dagflow.StateCompleted:
			writeRawJSON(w, http.StatusOK, []byte("null"))
		default:
			writeJSONError(w, http.StatusNotFound, fmt.Sprintf("item %d has no result: it is %s", n, it.State))
		}
	default:
		writeText(w, scrub(it.Error))
	}
}

// errorText answers the whole error of a run, or of one of its steps, as
// text: the pages cut long errors and link here.
func (c *console) errorText(w http.ResponseWriter, r *request) {
	st, err := c.eng.Status(r.Context(), r.runID())
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	if len(r.segs) == 3 {
		writeText(w, scrub(st.Error))
		return
	}
	i := stepIndex(st, r.segs[3])
	if i < 0 {
		writeJSONError(w, http.StatusNotFound, fmt.Sprintf("run %q has no step %q", st.ID, r.segs[3]))
		return
	}
	writeText(w, scrub(st.Steps[i].Error))
}

// writeText writes a text as a reply of its own.
func writeText(w http.ResponseWriter, s string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	w.Write([]byte(s))
}
