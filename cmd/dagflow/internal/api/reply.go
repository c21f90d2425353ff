package api

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/dagflow/dagflow"
)

// apiError is an answer other than success: a status, and the JSON body
// {"error": msg, "problems": [...]}.
type apiError struct {
	status int
	msg    string
	// problems are those of an invalid workflow or schedule, each with
	// its place.
	problems []string
}

func (e *apiError) Error() string { return e.msg }

// errorf returns an *apiError with status and a formatted message.
func errorf(status int, format string, args ...any) *apiError {
	return &apiError{status: status, msg: fmt.Sprintf(format, args...)}
}

// invalid is the answer (400) that lists the problems of an invalid
// workflow, schedule or event (what), whose id is id.
func invalid(what, id string, ps []dagflow.Problem) *apiError {
	e := &apiError{status: http.StatusBadRequest, msg: "invalid " + what, problems: make([]string, len(ps))}
	for i, p := range ps {
		e.problems[i] = p.String()
	}
	if id != "" {
		e.msg += fmt.Sprintf(" %q", id)
	}
	switch len(ps) {
	case 0:
	case 1:
		e.msg += ": " + e.problems[0]
	default:
		e.msg += fmt.Sprintf(": %d problems, the first: %s", len(ps), e.problems[0])
	}
	return e
}

// errorOf turns an error, the engine's included, into the answer it means.
func errorOf(err error) *apiError {
	var e *apiError
	var ve *dagflow.ValidationError
	var se *dagflow.StateError
	switch {
	case errors.As(err, &e):
		return e
	case errors.As(err, &ve):
		return invalid(cmp.Or(ve.Of, "workflow"), ve.WorkflowID, ve.Problems)
	case errors.As(err, &se):
		return &apiError{status: http.StatusConflict, msg: se.Error()}
	case errors.Is(err, dagflow.ErrNotFound):
		return &apiError{status: http.StatusNotFound, msg: err.Error()}
	case errors.Is(err, dagflow.ErrConflict):
		return &apiError{status: http.StatusConflict, msg: err.Error()}
	case errors.Is(err, dagflow.ErrClosed), errors.Is(err, context.Canceled):
		return &apiError{status: http.StatusServiceUnavailable, msg: "the server is shutting down: " + err.Error()}
	}
	return &apiError{status: http.StatusInternalServerError, msg: err.Error()}
}

// writeError writes err as its JSON answer; one that is the server's fault
// goes to the log too.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	e := errorOf(err)
	if e.status == http.StatusInternalServerError {
		a.log.Error("dagflow: API call failed", "method", r.Method, "path", r.URL.EscapedPath(), "err", err)
	}
	body := struct {
		Error    string   `json:"error"`
		Problems []string `json:"problems,omitempty"`
	}{e.msg, e.problems}
	a.writeJSON(w, e.status, body)
}

// writeJSON writes v as the JSON body of an answer with status. A
// json.RawMessage is written as it is; nil writes no body.
func (a *API) writeJSON(w http.ResponseWriter, status int, v any) {
	if v == nil {
		w.WriteHeader(status)
		return
	}
	body, ok := v.(json.RawMessage)
	if !ok {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			a.log.Error("dagflow: encoding an API answer", "err", err)
			status, body = http.StatusInternalServerError, []byte(`{"error":"encoding the answer failed"}`+"\n")
		} else {
			body = b.Bytes()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(body)
}
