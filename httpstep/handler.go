package httpstep

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Request is the JSON body POSTed to a job handler: the step input of
// dagflow's protocol, and the Idempotency-Key it came with.
type Request struct {
	// WorkflowID is the run's id; StepID the step's.
	WorkflowID string `json:"workflowId"`
	StepID     string `json:"stepId"`
	// Attempt is 1 on the first attempt of the step in this round.
	Attempt int `json:"attempt"`
	// Generation is the round of the run: 0, then 1 after the run was
	// retried (or rerun), and so on.
	Generation int `json:"generation,omitempty"`
	// Context is the workflow's context object.
	Context json.RawMessage `json:"context"`
	// PreviousSteps holds the results of the step's ancestors (or of every
	// step completed so far, for a workflow with "previousSteps": "all"),
	// by id.
	PreviousSteps map[string]PreviousStep `json:"previousSteps"`
	// Item is the map item this request runs, and Index its place in the
	// list; Item is nil for a step that is not a map.
	Item  json.RawMessage `json:"item,omitempty"`
	Index int             `json:"index,omitempty"`
	// Compensation is true when the request runs a step's compensation.
	Compensation bool `json:"compensation,omitempty"`
	// Result is, for a compensation, the result of the compensated step.
	Result json.RawMessage `json:"result,omitempty"`
	// FailedDependencies names the dependencies that failed or were
	// skipped, for a step that runs despite them (allowFailedDeps).
	FailedDependencies []string `json:"failedDependencies,omitempty"`
	// IdempotencyKey is the request's Idempotency-Key header: the same on
	// every attempt of a step in one round, new in each round.
	IdempotencyKey string `json:"-"`
}

// PreviousStep is the outcome of a completed step, as seen by later steps.
type PreviousStep struct {
	// Result is what the step returned.
	Result json.RawMessage `json:"result"`
}

const defaultMaxRequestBytes = 32 << 20

// HandlerOption configures [Handler].
type HandlerOption func(*handlerConfig)

type handlerConfig struct {
	secret   []byte
	verify   bool // WithSecret was given
	unsigned bool // WithoutVerification was given
	maxBytes int64
}

// WithSecret makes the handler require a valid Dagflow-Signature made with
// secret (see [Verify]), replying 401 otherwise. The secret is copied. An
// empty secret (an environment variable that is not set, say) makes
// Handler return an error rather than serve unsigned requests.
func WithSecret(secret []byte) HandlerOption {
	secret = bytes.Clone(secret)
	return func(c *handlerConfig) { c.secret, c.verify = secret, true }
}

// WithoutVerification makes the handler serve requests without checking
// their signature: for an engine that signs nothing, in tests or behind a
// trusted network. Handler needs either it or WithSecret.
func WithoutVerification() HandlerOption {
	return func(c *handlerConfig) { c.unsigned = true }
}

// WithMaxRequestBytes bounds the request body; a bigger one gets a 413 reply.
// Default 32 MiB; n <= 0 removes the bound.
func WithMaxRequestBytes(n int64) HandlerOption {
	return func(c *handlerConfig) { c.maxBytes = n }
}

// ErrNoVerification is returned by Handler when it is given neither a
// secret nor WithoutVerification, or an empty secret: it fails closed rather
// than serve requests anyone could forge.
var ErrNoVerification = errors.New("httpstep: a job handler needs WithSecret with a non-empty secret, or WithoutVerification to serve unsigned requests")

// Handler returns an http.Handler that runs fn as a job handler speaking
// dagflow's protocol:
//
//   - a method other than POST gets 405;
//   - with [WithSecret], a request without a valid signature gets 401
//     (which the engine does not retry);
//   - a body that is not a JSON object gets 400, one over the size bound 413;
//   - fn's result v gets 200 {"success": true, "result": v}, or 500 if v
//     cannot be encoded as JSON;
//   - an error err from fn gets 200 {"success": false, "error": err.Error()},
//     which the engine may retry, and a [Permanent] error gets 422 with the
//     same body, which fails the step for good.
//
// It returns an error matching [ErrNoVerification] unless it is given
// WithSecret with a non-empty secret or WithoutVerification. fn runs with
// the request's context, which is cancelled when the engine gives up on the
// attempt; req.IdempotencyKey is the request's Idempotency-Key. Handler
// does not recover panics in fn: net/http's server logs them and drops the
// connection, which the engine sees as a retryable transport error. The
// handler is safe for concurrent use if fn is.
func Handler(fn func(ctx context.Context, req Request) (any, error), opts ...HandlerOption) (http.Handler, error) {
	if fn == nil {
		return nil, errors.New("httpstep: Handler called with a nil function")
	}
	h := &handler{fn: fn, cfg: handlerConfig{maxBytes: defaultMaxRequestBytes}}
	for _, o := range opts {
		o(&h.cfg)
	}
	switch {
	case h.cfg.verify && len(h.cfg.secret) == 0:
		return nil, fmt.Errorf("%w (WithSecret was given an empty secret)", ErrNoVerification)
	case !h.cfg.verify && !h.cfg.unsigned:
		return nil, ErrNoVerification
	}
	return h, nil
}

type handler struct {
	fn  func(context.Context, Request) (any, error)
	cfg handlerConfig
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeFailure(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use POST", r.Method))
		return
	}
	if h.cfg.maxBytes > 0 {
		r.Body = http.MaxBytesReader(w, r.Body, h.cfg.maxBytes)
	}
	if len(h.cfg.secret) > 0 {
		if err := Verify(r, h.cfg.secret); err != nil {
			status := http.StatusUnauthorized
			if !isSignatureError(err) {
				status = bodyErrorStatus(err)
			}
			writeFailure(w, status, err.Error())
			return
		}
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		writeFailure(w, bodyErrorStatus(err), "read request body: "+err.Error())
		return
	}
	var req Request
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		writeFailure(w, http.StatusBadRequest, "request body is not a JSON object")
		return
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeFailure(w, http.StatusBadRequest, "decode request: "+err.Error())
		return
	}

	req.IdempotencyKey = r.Header.Get("Idempotency-Key")
	v, err := h.fn(r.Context(), req)
	if err != nil {
		status := http.StatusOK
		if IsPermanent(err) {
			status = http.StatusUnprocessableEntity
		}
		writeFailure(w, status, err.Error())
		return
	}
	result, err := json.Marshal(v)
	if err != nil {
		writeFailure(w, http.StatusInternalServerError, "encode result: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, struct {
		Success bool            `json:"success"`
		Result  json.RawMessage `json:"result"`
	}{true, result})
}

func isSignatureError(err error) bool {
	return errors.Is(err, ErrNoSignature) || errors.Is(err, ErrBadSignature) || errors.Is(err, ErrExpiredSignature)
}

// bodyErrorStatus maps an error reading the request body to a status:
// 413 over the size bound, else 400.
func bodyErrorStatus(err error) int {
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadRequest
}

func writeFailure(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, struct {
		Success bool   `json:"success"`
		Error   string `json:"error"`
	}{false, msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // cannot happen for the types above
		b = []byte(`{"success":false,"error":"encode reply"}`)
	}
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
