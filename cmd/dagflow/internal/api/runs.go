package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/dagflow/dagflow"
)

// Bounds of the query parameters.
const (
	// maxWait bounds ?wait= of GET /v1/workflows/{id}.
	maxWait = 10 * time.Minute
	// maxLimit bounds ?limit= of GET /v1/workflows.
	maxLimit = 1000
)

// create is POST /v1/workflows: 201 and the status of the run it created,
// 200 and the run's status when a run of that id and spec exists.
func (a *API) create(r *http.Request, body []byte) (int, any, error) {
	wf, err := dagflow.ParseWorkflow(body)
	if err != nil {
		return 0, nil, err
	}
	st, created, err := a.eng.CreateIfAbsent(r.Context(), wf)
	switch {
	case err != nil:
		return 0, nil, err
	case !created:
		return http.StatusOK, st, nil
	}
	return http.StatusCreated, st, nil
}

// status is GET /v1/workflows/{id}[?wait=30s]: the run's status, once it
// has ended when ?wait= is given and it ends in time.
func (a *API) status(r *http.Request, _ []byte) (int, any, error) {
	id := r.PathValue("id")
	d, err := waitParam(r.URL.Query().Get("wait"))
	if err != nil {
		return 0, nil, err
	}
	if d > 0 {
		st, err := a.wait(r.Context(), id, d)
		if err != nil || st != nil {
			return http.StatusOK, st, err
		}
	}
	st, err := a.eng.Status(r.Context(), id)
	return http.StatusOK, st, err
}

// waitParam reads ?wait=: a Go duration ("30s", "2m") or a number of
// seconds; "" is no wait.
func waitParam(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		n, nerr := strconv.ParseFloat(s, 64)
		if nerr != nil {
			return 0, errorf(http.StatusBadRequest, "wait=%q: give a duration such as 30s, or a number of seconds", s)
		}
		d = time.Duration(n * float64(time.Second))
	}
	if d < 0 || d > maxWait {
		return 0, errorf(http.StatusBadRequest, "wait=%q: give a duration from 0 to %s", s, maxWait)
	}
	return d, nil
}

// wait waits up to d for run id to end, and returns its final status, or
// nil when it has not ended by then (or the server began to shut down).
func (a *API) wait(ctx context.Context, id string, d time.Duration) (*dagflow.Status, error) {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	go func() {
		select {
		case <-a.stopping:
			cancel()
		case <-wctx.Done():
		}
	}()
	st, err := a.eng.Wait(wctx, id)
	if err != nil && wctx.Err() != nil && ctx.Err() == nil {
		return nil, nil // not ended in time
	}
	return st, err
}

// list is GET /v1/workflows?state=&limit=&after=: a page of runs, newest
// first, and the cursor of the next page ("" on the last).
func (a *API) list(r *http.Request, _ []byte) (int, any, error) {
	q := r.URL.Query()
	o := dagflow.ListOptions{State: dagflow.State(q.Get("state")), After: q.Get("after")}
	switch o.State {
	case "", dagflow.StatePending, dagflow.StateRunning, dagflow.StateCompleted, dagflow.StateFailed, dagflow.StateCancelled:
	default:
		return 0, nil, errorf(http.StatusBadRequest, "state=%q: give pending, running, completed, failed or cancelled", o.State)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return 0, nil, errorf(http.StatusBadRequest, "limit=%q: give a number from 1 to %d", s, maxLimit)
		}
		o.Limit = n
	}
	list, err := a.eng.List(r.Context(), o)
	if ve, ok := errors.AsType[*dagflow.ValidationError](err); ok && len(ve.Problems) > 0 && ve.Problems[0].Path == "after" {
		return 0, nil, errorf(http.StatusBadRequest, "after=%q: not the cursor of a page (the \"next\" of the page before)", o.After)
	}
	return http.StatusOK, list, err
}

// cancel is POST /v1/workflows/{id}/cancel: 200 and the run's status once
// the cancellation is recorded, 409 for a run that has ended.
func (a *API) cancel(r *http.Request, _ []byte) (int, any, error) {
	st, err := a.eng.Cancel(r.Context(), r.PathValue("id"))
	return http.StatusOK, st, err
}

// retry is POST /v1/workflows/{id}/retry: 200 and the run's status once the
// retry is recorded, 409 for a run whose state refuses it.
func (a *API) retry(r *http.Request, _ []byte) (int, any, error) {
	st, err := a.eng.Retry(r.Context(), r.PathValue("id"))
	return http.StatusOK, st, err
}
