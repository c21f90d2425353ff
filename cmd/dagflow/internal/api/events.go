package api

import (
	"encoding/json"
	"net/http"

	"github.com/dagflow/dagflow"
)

// sendEvent is POST /v1/events {"name", "key", "payload"}: 202 once the
// event and the steps it completed are in the store. The runs go on from
// there on their own.
func (a *API) sendEvent(r *http.Request, body []byte) (int, any, error) {
	var ev struct {
		Name    *string         `json:"name"`
		Key     string          `json:"key"`
		Payload json.RawMessage `json:"payload"`
	}
	if err := decodeStrict(body, &ev); err != nil {
		return 0, nil, err
	}
	if ev.Name == nil {
		return 0, nil, errorf(http.StatusBadRequest, `invalid event: name: is required`)
	}
	e := dagflow.Event{Name: *ev.Name, Key: ev.Key, Payload: ev.Payload}
	if err := a.eng.SendEvent(r.Context(), e); err != nil {
		return 0, nil, err // a bad event is a *ValidationError: 400
	}
	return http.StatusAccepted, struct {
		Name string `json:"name"`
		Key  string `json:"key"`
	}{e.Name, e.Key}, nil
}
