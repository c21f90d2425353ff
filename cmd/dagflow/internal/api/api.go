// Package api is the JSON API of 'dagflow serve', under /v1: the calls of
// the hosted platform's client (create a workflow, read its status, list the
// runs, cancel, retry), events, and schedules, over one Engine.
//
// Every call answers JSON. Errors are {"error": "..."} with the status that
// fits (400 bad input, 401 no or wrong token, 404 unknown id, 409 the run's
// state refuses the call, 413 a body over MaxBody, 415 a body that is not
// JSON), and an invalid workflow adds "problems", one string per problem.
// Run and schedule ids go percent-encoded in one path segment, so that the
// id of a child run ("order-1/ship") is /v1/workflows/order-1%2Fship.
//
// The routes are listed once, in routes: the mux is built from that list,
// and so is the test that holds openapi.json to it.
package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/dagflow/dagflow"
)

// MaxBody is the largest request body the API reads, in bytes: 10 MiB.
// A larger one gets 413.
const MaxBody = 10 << 20

// Options configure New. The zero value asks for no token.
type Options struct {
	// Token, when not empty, must come with every call in the header
	// "Authorization: Bearer <Token>"; a call without it, or with another,
	// gets 401.
	Token string
	// Logger receives the errors that are the server's fault (500). Nil
	// means slog.Default().
	Logger *slog.Logger
}

// API serves the calls under /v1 on an Engine. Mount it at "/v1/". It is
// safe for concurrent use and holds no goroutine of its own.
type API struct {
	eng   *dagflow.Engine
	token [sha256.Size]byte // of Options.Token
	auth  bool              // a token is needed
	mux   *http.ServeMux
	log   *slog.Logger

	stopOnce sync.Once
	stopping chan struct{} // closed by EndWaits
}

// New returns the API of eng.
func New(eng *dagflow.Engine, o Options) *API {
	a := &API{eng: eng, mux: http.NewServeMux(), log: o.Logger, stopping: make(chan struct{})}
	if a.log == nil {
		a.log = slog.Default()
	}
	if o.Token != "" {
		a.auth, a.token = true, sha256.Sum256([]byte(o.Token))
	}
	byPath := map[string][]route{}
	var paths []string
	for _, rt := range routes {
		if byPath[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		byPath[rt.path] = append(byPath[rt.path], rt)
	}
	for _, p := range paths {
		a.mux.Handle(p, a.methods(byPath[p]))
	}
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		a.writeError(w, r, notFoundPath(r))
	})
	return a
}

// EndWaits makes the calls waiting for a run to end (GET
// /v1/workflows/{id}?wait=) answer at once with the status the run has,
// and those that come later not wait. A server calls it as it shuts down,
// so that long waits do not hold the shutdown up. It may be called more
// than once.
func (a *API) EndWaits() { a.stopOnce.Do(func() { close(a.stopping) }) }

// ServeHTTP checks the token, bounds the body, and hands the request to
// its route.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if !a.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="dagflow"`)
		a.writeError(w, r, errorf(http.StatusUnauthorized, "missing or wrong token: send the header Authorization: Bearer <DAGFLOW_API_TOKEN>"))
		return
	}
	if r.Body != nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
	}
	a.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the token, comparing in constant
// time.
func (a *API) authorized(r *http.Request) bool {
	if !a.auth {
		return true
	}
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], a.token[:]) == 1
}

// methods serves the routes of one path, choosing by method; another
// method gets 405 with the Allow header.
func (a *API) methods(rs []route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, rt := range rs {
			if rt.method == r.Method {
				a.serve(w, r, rt)
				return
			}
			allow = append(allow, rt.method)
		}
		slices.Sort(allow)
		w.Header().Set("Allow", strings.Join(allow, ", "))
		a.writeError(w, r, errorf(http.StatusMethodNotAllowed, "%s %s: method not allowed; allowed: %s", r.Method, r.URL.EscapedPath(), strings.Join(allow, ", ")))
	})
}

// serve runs one route and writes its answer.
func (a *API) serve(w http.ResponseWriter, r *http.Request, rt route) {
	var body []byte
	if rt.body {
		var err error
		if body, err = readBody(r); err != nil {
			a.writeError(w, r, err)
			return
		}
	}
	status, v, err := rt.serve(a, r, body)
	if err != nil {
		a.writeError(w, r, err)
		return
	}
	a.writeJSON(w, status, v)
}

// notFoundPath is the error of a path under /v1 that no route serves.
func notFoundPath(r *http.Request) error {
	p := r.URL.EscapedPath()
	for _, prefix := range []string{"/v1/workflows/", "/v1/schedules/"} {
		if rest, ok := strings.CutPrefix(p, prefix); ok && strings.Contains(strings.TrimSuffix(rest, "/"), "/") {
			return errorf(http.StatusNotFound, "no such path %s: an id that contains \"/\" goes percent-encoded in one path segment (%%2F), as in /v1/workflows/order-1%%2Fship", p)
		}
	}
	return errorf(http.StatusNotFound, "no such path %s (GET /v1/openapi.json describes the API)", p)
}
