package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/dagflow/dagflow"
)

// csrfCookie holds a random value per browser; the forms of the run page
// carry csrfToken of it, an HMAC under the console's key, which another site
// can neither read nor make.
const csrfCookie = "dagflow_csrf"

// maxFormBytes bounds the body of an action.
const maxFormBytes = 16 << 10

// csrfToken returns the CSRF token of the request's browser for the forms
// of a page, setting the cookie it is tied to first when the browser has
// none.
func (c *console) csrfToken(w http.ResponseWriter, r *request) string {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) < 32 {
		b := make([]byte, 32)
		rand.Read(b)
		ck = &http.Cookie{Name: csrfCookie, Value: base64.RawURLEncoding.EncodeToString(b), Path: mountPath(r),
			HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode}
		http.SetCookie(w, ck)
	}
	return c.sign(ck.Value)
}

func (c *console) sign(cookie string) string {
	m := hmac.New(sha256.New, c.csrfKey)
	m.Write([]byte("dagflow console csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkAction says why an action may not run, with the HTTP status to
// answer, or returns 0. In order: actions must be on; a browser's request
// must come from the console's own origin (Sec-Fetch-Site or Origin, as
// http.CrossOriginProtection checks them); with WithToken, the token must
// be there (header or form field); and the form must carry the CSRF token
// of the browser's cookie, unless the request proved itself with the token
// in the X-Dagflow-Token header, which no other site can make a browser
// send.
func (c *console) checkAction(r *request) (int, string) {
	if !c.cfg.actions {
		return http.StatusForbidden, "Actions are turned off in this console (console.WithActions)."
	}
	if err := c.cop.Check(r.Request); err != nil {
		return http.StatusForbidden, "Cross-origin request refused: " + err.Error()
	}
	header := r.Header.Get("X-Dagflow-Token")
	if c.cfg.token != "" {
		got := header
		if got == "" {
			got = r.PostFormValue("token")
		}
		if !equalToken(got, c.cfg.token) {
			return http.StatusForbidden, "This action needs the console's token."
		}
		if header != "" {
			return 0, ""
		}
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(c.sign(ck.Value))) {
		return http.StatusForbidden, "The form is stale or did not come from this console: reload the run's page and try again."
	}
	return 0, ""
}

// equalToken compares tokens in constant time, whatever their lengths.
func equalToken(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1 && got != ""
}

// action runs Engine.Retry or Engine.Cancel on a run, or Engine.Rerun from
// one of its steps, then sends the browser back to the run's page (303; a
// rerun's form may ask for the step's page with back=step), or answers the
// run's new dagflow.Status to a client that accepts JSON.
func (c *console) action(w http.ResponseWriter, r *request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	fail := func(code int, msg string) {
		if wantJSON {
			writeJSONError(w, code, msg)
		} else {
			c.errorPage(w, r, code, http.StatusText(code), msg)
		}
	}
	if code, msg := c.checkAction(r); code != 0 {
		fail(code, msg)
		return
	}
	id := r.runID()
	var st *dagflow.Status
	var err error
	back := "../" + url.PathEscape(id)
	switch {
	case len(r.segs) == 5: // runs/{id}/steps/{step}/rerun
		step := r.segs[3]
		if code, msg := c.checkRerun(r, step); code != 0 {
			fail(code, msg)
			return
		}
		st, err = c.eng.Rerun(r.Context(), id, step)
		back = "../../../" + url.PathEscape(id)
		if r.PostFormValue("back") == "step" {
			back = "../" + url.PathEscape(step)
		}
	case r.segs[2] == "retry":
		if code, msg := c.checkRetry(r); code != 0 {
			fail(code, msg)
			return
		}
		st, err = c.eng.Retry(r.Context(), id)
	default:
		st, err = c.eng.Cancel(r.Context(), id)
	}
	if err != nil {
		if wantJSON {
			writeJSONError(w, errStatus(err), err.Error())
		} else {
			c.engineError(w, r, err)
		}
		return
	}
	if wantJSON {
		scrubStatus(st)
		writeJSON(w, http.StatusOK, st)
		return
	}
	redirect(w, back)
}

// checkRetry says why the console does not retry a run, or returns 0: the
// engine decides, but for a child run, which its parent retries (Retry of
// the child alone would leave the parent as it was).
func (c *console) checkRetry(r *request) (int, string) {
	st, err := c.eng.Status(r.Context(), r.runID())
	if err != nil {
		return errStatus(err), err.Error()
	}
	if st.Parent != "" {
		return http.StatusConflict, "Run " + st.ID + " is a child of run " + st.Parent + ": retry that run, and this one runs again with it."
	}
	return 0, ""
}

// checkRerun says why the console does not rerun a step of a run, with the
// HTTP status to answer, or returns 0. The engine refuses a run that has
// not ended; the console also refuses what it does not offer: a step of a
// child run (which runs again with its parent), a step of a saga that was
// rolled back (its steps were undone), and a step whose dependencies did
// not all complete (Retry runs those again).
func (c *console) checkRerun(r *request, step string) (int, string) {
	st, err := c.eng.Status(r.Context(), r.runID())
	if err != nil {
		return errStatus(err), err.Error()
	}
	if st.Parent != "" {
		return http.StatusConflict, "Run " + st.ID + " is a child of run " + st.Parent + ": rerun the step of that run, and this one runs again with it."
	}
	if stepIndex(st, step) < 0 {
		return http.StatusNotFound, "Run " + st.ID + " has no step " + strconv.Quote(step) + "."
	}
	if !st.State.Final() {
		return 0, "" // the engine says it has not ended
	}
	if rolledBack(st) {
		return http.StatusConflict, "Run " + st.ID + " is a saga that was rolled back: its completed steps were undone. Create a new run instead."
	}
	wf, err := c.eng.Workflow(r.Context(), st.ID)
	if err != nil {
		return errStatus(err), err.Error()
	}
	for i, s := range wf.Steps {
		if s.ID == step {
			if why := rerunBlocker(st, wf, i); why != "" {
				return http.StatusConflict, "Cannot rerun from step " + strconv.Quote(step) + ": " + why + "."
			}
		}
	}
	return 0, ""
}
