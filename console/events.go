package console

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/dagflow/dagflow"
)

// Timing of the event stream of a run page.
const (
	pollInterval = 500 * time.Millisecond
	// heartbeat is how often a quiet stream sends a comment, so that
	// proxies keep it open.
	heartbeat = 15 * time.Second
	// streamLife ends a stream after a while even if the run goes on; the
	// browser's EventSource connects again by itself. No request is held
	// for ever, so a server can shut down.
	streamLife = 5 * time.Minute
)

// liveStatus is what an event tells a run page: a part of the engine's
// dagflow.Status, in its shape, small enough to send on each change.
type liveStatus struct {
	ID    string        `json:"id"`
	State dagflow.State `json:"state"`
	Phase string        `json:"phase,omitempty"`
	Error string        `json:"error,omitempty"`
	// WaitingFor is the status's: what keeps the run from going on.
	WaitingFor string     `json:"waitingFor,omitempty"`
	Steps      []liveStep `json:"steps"`
	// Logs counts the attempts and the log lines kept, so that a new line
	// is a change too.
	Logs int `json:"logs"`
}

type liveStep struct {
	ID       string              `json:"id"`
	State    dagflow.State       `json:"state"`
	Attempts int                 `json:"attempts"`
	Items    *dagflow.ItemCounts `json:"items,omitempty"`
	Run      string              `json:"run,omitempty"`
}

// events streams server-sent events while a run changes: it polls
// Engine.Status (and Engine.Attempts, for new log lines) every
// pollInterval and sends a "status" event with a liveStatus when something
// changed, then an "end" event when the run is final, and returns.
func (c *console) events(w http.ResponseWriter, r *request) {
	ctx := r.Context()
	id := r.runID()
	st, err := c.live(r, id)
	if err != nil {
		writeJSONError(w, errStatus(err), err.Error())
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	rc := http.NewResponseController(w)
	fmt.Fprint(w, "retry: 1000\n\n") // reconnect soon after streamLife
	var last []byte
	poll := time.NewTicker(pollInterval)
	defer poll.Stop()
	end := time.NewTimer(streamLife)
	defer end.Stop()
	quiet := time.Now()
	for {
		b, _ := json.Marshal(st)
		if !bytes.Equal(b, last) {
			fmt.Fprintf(w, "event: status\ndata: %s\n\n", b)
			last, quiet = b, time.Now()
		} else if time.Since(quiet) > heartbeat {
			fmt.Fprint(w, ": still here\n\n")
			quiet = time.Now()
		}
		if st.State.Final() {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
		}
		if err := rc.Flush(); err != nil || st.State.Final() {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-end.C:
			return
		case <-poll.C:
		}
		if st, err = c.live(r, id); err != nil {
			fmt.Fprint(w, "event: end\ndata: {}\n\n")
			rc.Flush()
			return
		}
	}
}

// live reads the liveStatus of a run.
func (c *console) live(r *request, id string) (*liveStatus, error) {
	st, err := c.eng.Status(r.Context(), id)
	if err != nil {
		return nil, err
	}
	// The error is cut as the page cuts it: an event goes out on each
	// change, and an error may be long.
	ls := &liveStatus{ID: st.ID, State: st.State, Phase: st.Phase, Error: headLine(scrub(st.Error)), WaitingFor: st.WaitingFor,
		Steps: make([]liveStep, len(st.Steps))}
	for i, s := range st.Steps {
		ls.Steps[i] = liveStep{ID: s.ID, State: s.State, Attempts: s.Attempts, Items: s.Items, Run: s.Run}
	}
	if !st.State.Final() {
		atts, err := c.eng.Attempts(r.Context(), id)
		if err != nil {
			return nil, err
		}
		for _, a := range atts {
			ls.Logs += 1 + len(a.Logs)
		}
	}
	return ls, nil
}
