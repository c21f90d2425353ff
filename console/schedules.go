package console

import (
	"net/http"
	"time"

	"github.com/dagflow/dagflow"
)

// schedulesView is what the schedules page shows: the engine's schedules
// with their next tick, and how long the engine keeps runs and events.
type schedulesView struct {
	pageView
	Schedules []scheduleRow
	// RunRetention and EventRetention say how long runs that ended and
	// sent events are kept ("" for runs: until they are deleted).
	RunRetention, EventRetention string
}

type scheduleRow struct {
	dagflow.ScheduleInfo
	NextIn  string // how long until the next tick
	LastRun string // the page of the run of the latest tick
	Runs    string // the run list of its runs
}

func (c *console) schedules(w http.ResponseWriter, r *request) {
	list, err := c.eng.Schedules(r.Context())
	if err != nil {
		c.engineError(w, r, err)
		return
	}
	now := c.now()
	v := schedulesView{pageView: c.page(r, "Schedules")}
	for _, s := range list {
		row := scheduleRow{ScheduleInfo: s, Runs: listURL(dagflow.ListOptions{IDContains: s.ID + "/", Limit: defaultPageSize}, "")}
		if d := s.Next.Sub(now); d > 0 {
			row.NextIn = formatDuration(d.Round(time.Second))
		}
		if !s.Last.IsZero() {
			// A tick's run is "<schedule>/<UTC time of the tick>".
			row.LastRun = runURL(s.ID + "/" + s.Last.UTC().Format(time.RFC3339))
		}
		v.Schedules = append(v.Schedules, row)
	}
	runs, events := c.eng.Retention()
	if runs > 0 {
		v.RunRetention = formatRetention(runs)
	}
	if events > 0 {
		v.EventRetention = formatRetention(events)
	}
	c.render(w, r, http.StatusOK, "schedules", v)
}

// schedulesJSON answers the engine's schedules, []dagflow.ScheduleInfo.
func (c *console) schedulesJSON(w http.ResponseWriter, r *request) {
	list, err := c.eng.Schedules(r.Context())
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	if list == nil {
		list = []dagflow.ScheduleInfo{}
	}
	writeJSON(w, http.StatusOK, list)
}
