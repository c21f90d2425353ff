package console

import (
	"crypto/rand"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
)

// An Option configures the console returned by Handler.
type Option func(*config)

type config struct {
	actions bool
	token   string
}

// WithActions turns the retry, cancel and "rerun from this step" buttons
// on (enabled true) or off. The default is false: a read-only console,
// whose action endpoints answer 403 Forbidden.
func WithActions(enabled bool) Option { return func(c *config) { c.actions = enabled } }

// WithToken makes every action carry token, in the form field "token" or
// the X-Dagflow-Token header; an action without it, or with another, gets
// 403 Forbidden. Tokens are compared in constant time. The default, "",
// asks for no token. It has no effect unless WithActions(true) is given.
func WithToken(token string) Option { return func(c *config) { c.token = token } }

// Handler returns the console of eng: an http.Handler an application mounts
// under any prefix, such as
//
//	http.Handle("/flows/", console.Handler(eng))
//
// with or without http.StripPrefix. Every link the console writes is
// relative, and it finds its own paths below the mount point from the
// pattern that matched the request (Request.Pattern); under a router that
// sets no pattern, strip the prefix with http.StripPrefix. Handler is safe
// for concurrent use; it holds no goroutine of its own.
func Handler(eng *dagflow.Engine, opts ...Option) http.Handler {
	c := &console{eng: eng, tmpl: templates, now: time.Now, cop: http.NewCrossOriginProtection()}
	for _, o := range opts {
		if o != nil {
			o(&c.cfg)
		}
	}
	c.csrfKey = make([]byte, 32)
	rand.Read(c.csrfKey)
	return c
}

// console is the handler Handler returns.
type console struct {
	eng     *dagflow.Engine
	cfg     config
	tmpl    *template.Template
	now     func() time.Time
	cop     *http.CrossOriginProtection
	csrfKey []byte // signs the CSRF token of each browser's cookie
}

// ServeHTTP routes a request by its path below the mount point:
//
//	GET  ./                                       the run list (HTML)
//	GET  ./runs.json                              the run list (dagflow.RunList JSON)
//	GET  ./schedules                              the schedules and the retention (HTML)
//	GET  ./schedules.json                         []dagflow.ScheduleInfo JSON
//	GET  ./runs/{id}                              a run's page (HTML)
//	GET  ./runs/{id}/status                       dagflow.Status JSON
//	GET  ./runs/{id}/attempts                     []dagflow.Attempt JSON
//	GET  ./runs/{id}/events                       server-sent events while the run changes
//	GET  ./runs/{id}/error                        the run's whole error, text
//	POST ./runs/{id}/retry                        Engine.Retry
//	POST ./runs/{id}/cancel                       Engine.Cancel
//	GET  ./runs/{id}/steps/{step}                 a step's page; a map step's items (HTML)
//	GET  ./runs/{id}/steps/{step}/result          the step's result, raw JSON
//	GET  ./runs/{id}/steps/{step}/input           the step's input, JSON
//	GET  ./runs/{id}/steps/{step}/error           the step's whole error, text
//	GET  ./runs/{id}/steps/{step}/items           []dagflow.Item JSON of a map step
//	GET  ./runs/{id}/steps/{step}/items/{n}/value the item, raw JSON (also result; error, text)
//	POST ./runs/{id}/steps/{step}/rerun           Engine.Rerun: the step and what is downstream of it
//	GET  ./static/{file}                          embedded CSS, JS and icon
func (c *console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "+
		"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")

	rel, ok := relPath(r)
	if !ok {
		// The list must be reached with a trailing slash, or its relative
		// links would resolve one level too high.
		redirect(w, lastSegment(r.URL.EscapedPath())+"/")
		return
	}
	segs := strings.Split(rel, "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil {
			c.notFound(w, r, len(segs)-1)
			return
		}
		segs[i] = u
	}
	rq := &request{Request: r, segs: segs, base: strings.Repeat("../", len(segs)-1), rel: rel}
	switch {
	case rel == "":
		c.get(w, rq, c.list)
	case rel == "runs.json":
		c.get(w, rq, c.listJSON)
	case rel == "schedules":
		c.get(w, rq, c.schedules)
	case rel == "schedules.json":
		c.get(w, rq, c.schedulesJSON)
	case len(segs) >= 2 && segs[0] == "runs" && (segs[1] == "" || len(segs) >= 4 && segs[3] == ""):
		c.notFound(w, r, len(segs)-1)
	case len(segs) == 2 && segs[0] == "static":
		c.get(w, rq, c.static)
	case len(segs) == 2 && segs[0] == "runs":
		c.get(w, rq, c.runPage)
	case len(segs) == 3 && segs[0] == "runs":
		switch segs[2] {
		case "status":
			c.get(w, rq, c.statusJSON)
		case "attempts":
			c.get(w, rq, c.attemptsJSON)
		case "events":
			c.get(w, rq, c.events)
		case "error":
			c.get(w, rq, c.errorText)
		case "retry", "cancel":
			c.post(w, rq, c.action)
		default:
			c.notFound(w, rq.Request, len(segs)-1)
		}
	case len(segs) == 4 && segs[0] == "runs" && segs[2] == "steps":
		c.get(w, rq, c.stepPage)
	case len(segs) == 5 && segs[0] == "runs" && segs[2] == "steps":
		switch segs[4] {
		case "result", "input":
			c.get(w, rq, c.stepJSON)
		case "error":
			c.get(w, rq, c.errorText)
		case "items":
			c.get(w, rq, c.itemsJSON)
		case "rerun":
			c.post(w, rq, c.action)
		default:
			c.notFound(w, r, len(segs)-1)
		}
	case len(segs) == 7 && segs[0] == "runs" && segs[2] == "steps" && segs[4] == "items" &&
		(segs[6] == "value" || segs[6] == "result" || segs[6] == "error"):
		c.get(w, rq, c.itemJSON)
	default:
		c.notFound(w, r, len(segs)-1)
	}
}

// request is a request with its path below the console's mount point.
type request struct {
	*http.Request
	rel  string   // the escaped path below the mount point, "" for the list
	segs []string // rel's segments, unescaped
	base string   // the relative path from this page to the console's root: "", "../", ...
}

// runID returns the run id of a path under runs/.
func (r *request) runID() string { return r.segs[1] }

func (c *console) get(w http.ResponseWriter, r *request, h func(http.ResponseWriter, *request)) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		c.errorPage(w, r, http.StatusMethodNotAllowed, "Method not allowed", r.Method+" is not allowed here.")
		return
	}
	h(w, r)
}

func (c *console) post(w http.ResponseWriter, r *request, h func(http.ResponseWriter, *request)) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		c.errorPage(w, r, http.StatusMethodNotAllowed, "Method not allowed", "Actions are POST only.")
		return
	}
	h(w, r)
}

// relPath returns the escaped path of r below the console's mount point,
// without a leading slash. When a middleware such as http.StripPrefix
// changed the path the client asked for, what is left is that path; else
// it takes the mount point off, as given by the ServeMux pattern that
// matched (such as "/flows/" or "GET example.com/t/{t}/flows/").
// ok is false when the path names the mount point without its trailing
// slash.
func relPath(r *http.Request) (rel string, ok bool) {
	p := r.URL.EscapedPath()
	if p == "" {
		return "", true
	}
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.EscapedPath() != p {
		// A middleware such as http.StripPrefix took the mount point off.
		return strings.TrimPrefix(p, "/"), true
	}
	segs := strings.Split(strings.TrimPrefix(p, "/"), "/")
	mount := patternSegments(r.Pattern)
	if len(mount) > 0 && len(segs) >= len(mount) && matchSegments(mount, segs) {
		segs = segs[len(mount):]
		if len(segs) == 0 {
			return "", false
		}
	}
	return strings.Join(segs, "/"), true
}

// patternSegments returns the path segments of a ServeMux pattern that lead
// to the handler's subtree: "GET host/a/{b}/" gives ["a", "{b}"].
func patternSegments(pattern string) []string {
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		pattern = strings.TrimLeft(pattern[i:], " \t")
	}
	i := strings.IndexByte(pattern, '/')
	if i < 0 {
		return nil
	}
	pattern = strings.TrimPrefix(pattern[i:], "/")
	if pattern == "" {
		return nil
	}
	segs := strings.Split(pattern, "/")
	last := segs[len(segs)-1]
	if last == "" || last == "{$}" || (strings.HasPrefix(last, "{") && strings.HasSuffix(last, "...}")) {
		segs = segs[:len(segs)-1]
	}
	return segs
}

func matchSegments(pattern, path []string) bool {
	for i, ps := range pattern {
		if strings.HasPrefix(ps, "{") && strings.HasSuffix(ps, "}") {
			continue
		}
		if u, err := url.PathUnescape(path[i]); err != nil || u != ps {
			return false
		}
	}
	return true
}

func lastSegment(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return "./" + p[i+1:]
	}
	return "./" + p
}

// mountPath returns the absolute, escaped path of the console's root as the
// client sent it, or "/" when it cannot tell.
func mountPath(r *request) string {
	u, err := url.ParseRequestURI(r.RequestURI)
	if err != nil {
		return "/"
	}
	p := u.EscapedPath()
	if !strings.HasSuffix(p, r.rel) {
		return "/"
	}
	p = strings.TrimSuffix(p, r.rel)
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
		return "/"
	}
	return p
}

// redirect answers 303 See Other with a relative Location, which the
// browser resolves against the URL it asked for (http.Redirect would
// resolve it against the path left by http.StripPrefix).
func redirect(w http.ResponseWriter, loc string) {
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusSeeOther)
}

// runURL returns the relative URL of a run's page from the console's root.
func runURL(id string) string { return "runs/" + url.PathEscape(id) }

// errStatus maps an engine error to an HTTP status.
func errStatus(err error) int {
	switch {
	case errors.Is(err, dagflow.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, dagflow.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, dagflow.ErrClosed):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
