package api

import (
	"net/http"
	"slices"
)

// route is one call of the API.
type route struct {
	method string
	// path is a ServeMux pattern's path; OpenAPI writes paths the same way.
	path string
	// body says the call takes a JSON body (and may answer 400, 413, 415).
	body bool
	// statuses are the statuses of the call's own answers; responses adds
	// those every call may give.
	statuses []int
	serve    func(a *API, r *http.Request, body []byte) (status int, v any, err error)
}

// routes are every call of the API. The mux is built from them, and a test
// holds openapi.json to them: a call added here and not there, or there and
// not here, fails it.
var routes = []route{
	{http.MethodPost, "/v1/workflows", true, []int{http.StatusOK, http.StatusCreated, http.StatusConflict}, (*API).create},
	{http.MethodGet, "/v1/workflows", false, []int{http.StatusOK, http.StatusBadRequest}, (*API).list},
	{http.MethodGet, "/v1/workflows/{id}", false, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound}, (*API).status},
	{http.MethodPost, "/v1/workflows/{id}/cancel", false, []int{http.StatusOK, http.StatusNotFound, http.StatusConflict}, (*API).cancel},
	{http.MethodPost, "/v1/workflows/{id}/retry", false, []int{http.StatusOK, http.StatusNotFound, http.StatusConflict}, (*API).retry},
	{http.MethodPost, "/v1/events", true, []int{http.StatusAccepted}, (*API).sendEvent},
	{http.MethodPost, "/v1/schedules", true, []int{http.StatusOK, http.StatusCreated}, (*API).schedule},
	{http.MethodGet, "/v1/schedules", false, []int{http.StatusOK}, (*API).schedules},
	{http.MethodDelete, "/v1/schedules/{id}", false, []int{http.StatusNoContent, http.StatusNotFound}, (*API).unschedule},
	{http.MethodGet, "/v1/openapi.json", false, []int{http.StatusOK}, (*API).openAPI},
}

// responses returns every status the route may answer, sorted: its own,
// 400, 413 and 415 for a body, and 401 (token), 500 (engine or store error)
// and 503 (the engine is shutting down) for every call.
func (rt route) responses() []int {
	s := append(slices.Clone(rt.statuses), http.StatusUnauthorized, http.StatusInternalServerError, http.StatusServiceUnavailable)
	if rt.body {
		s = append(s, http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType)
	}
	slices.Sort(s)
	return slices.Compact(s)
}
