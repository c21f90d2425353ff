package console_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console"
)

func TestListPage(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, pipeline("order-1"))
	runWF(t, eng, failing("order-2"))
	runWF(t, eng, pipeline("invoice-3"))
	srv := serve(t, console.Handler(eng))

	r := get(t, srv.URL+"/flows/")
	wantCode(t, r, http.StatusOK)
	for _, want := range []string{`href="runs/order-1"`, `href="runs/order-2"`, `href="runs/invoice-3"`,
		`class="badge state-failed"`, `step &#34;charge&#34; failed`, "5/5", `✕1`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("list page lacks %q", want)
		}
	}
	if !strings.Contains(r.Header.Get("Content-Security-Policy"), "default-src 'none'") {
		t.Errorf("no CSP: %q", r.Header.Get("Content-Security-Policy"))
	}

	t.Run("filter by state", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/?state=failed")
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.body, "order-2") || strings.Contains(r.body, "order-1") {
			t.Errorf("state=failed shows the wrong runs:\n%s", r.body)
		}
	})
	t.Run("search by id", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/?q=invoice")
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.body, "invoice-3") || strings.Contains(r.body, "order-1") {
			t.Errorf("q=invoice shows the wrong runs")
		}
		r = get(t, srv.URL+"/flows/?q=nothing-like-it")
		if !strings.Contains(r.body, "No runs match these filters") {
			t.Errorf("an empty search says nothing")
		}
	})
	t.Run("pages", func(t *testing.T) {
		var ids []string
		u := srv.URL + "/flows/?limit=2"
		for u != "" {
			r := get(t, u)
			wantCode(t, r, http.StatusOK)
			for _, m := range regexp.MustCompile(`href="runs/([^"]+)"`).FindAllStringSubmatch(r.body, -1) {
				ids = append(ids, m[1])
			}
			u = ""
			if m := regexp.MustCompile(`class="next" href="([^"]+)"`).FindStringSubmatch(r.body); m != nil {
				u = resolve(t, r, unescapeAttr(m[1]))
			}
		}
		if got := strings.Join(ids, " "); got != "invoice-3 order-2 order-1" {
			t.Errorf("paged through %q", got)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, q := range []string{"state=weird", "limit=0", "limit=x", "limit=100000", "after=!!"} {
			r := get(t, srv.URL+"/flows/?"+q)
			wantCode(t, r, http.StatusBadRequest)
			if !strings.Contains(r.Header.Get("Content-Type"), "text/html") {
				t.Errorf("%s: content type %q", q, r.Header.Get("Content-Type"))
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs.json?state=failed")
		wantCode(t, r, http.StatusOK)
		var list dagflow.RunList
		if err := json.Unmarshal([]byte(r.body), &list); err != nil {
			t.Fatal(err)
		}
		if len(list.Runs) != 1 || list.Runs[0].ID != "order-2" || list.Runs[0].Failed != 1 {
			t.Errorf("runs.json = %+v", list)
		}
		wantCode(t, get(t, srv.URL+"/flows/runs.json?after=!!"), http.StatusBadRequest)
	})
}

func TestRunPage(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, failing("order-2"))
	srv := serve(t, console.Handler(eng))

	r := get(t, srv.URL+"/flows/runs/order-2")
	wantCode(t, r, http.StatusOK)
	for _, want := range []string{
		`<svg class="dag"`,
		`class="node state-failed critical" id="node-1" data-step="charge"`, // the failed step, marked
		`class="node state-completed critical" id="node-0" data-step="validate"`,
		`class="node state-skipped" id="node-2"`,
		`<path class="edge done critical" d="M`, // validate -> charge
		`class="bar failed"`,                    // the timeline
		`card declined`,                         // the error
		`about to fail`,                         // a log line
		`attempt=1`,                             // its attributes
		`&#34;step&#34;: &#34;validate&#34;`,    // validate's result, as charge's input
		`href="../runs/order-2/steps/charge/input"`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if strings.Contains(r.body, `data-live="../`) {
		t.Errorf("a final run's page listens for changes")
	}
	if strings.Contains(r.body, `id="retry"`) {
		t.Errorf("a read-only console shows a retry button")
	}

	t.Run("status json", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs/order-2/status")
		wantCode(t, r, http.StatusOK)
		want, _ := eng.Status(ctxT(t), "order-2")
		wantJSON, _ := json.Marshal(want)
		if strings.TrimSpace(r.body) != string(wantJSON) {
			t.Errorf("status:\n%s\nwant the engine's\n%s", r.body, wantJSON)
		}
	})
	t.Run("attempts json", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs/order-2/attempts")
		wantCode(t, r, http.StatusOK)
		var atts []dagflow.Attempt
		if err := json.Unmarshal([]byte(r.body), &atts); err != nil {
			t.Fatal(err)
		}
		if len(atts) != 2 || atts[1].StepID != "charge" || atts[1].Error != "card declined" || len(atts[1].Logs) != 1 {
			t.Errorf("attempts = %+v", atts)
		}
	})
	t.Run("step result and input", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs/order-2/steps/validate/result")
		wantCode(t, r, http.StatusOK)
		if strings.TrimSpace(r.body) != `{"ok":true,"step":"validate"}` {
			t.Errorf("result = %s", r.body)
		}
		r = get(t, srv.URL+"/flows/runs/order-2/steps/charge/input")
		wantCode(t, r, http.StatusOK)
		want := `{"workflowId":"order-2","stepId":"charge","attempt":1,"context":{},"previousSteps":{"validate":{"result":{"ok":true,"step":"validate"}}}}`
		if strings.TrimSpace(r.body) != want {
			t.Errorf("input = %s\nwant %s", r.body, want)
		}
		wantCode(t, get(t, srv.URL+"/flows/runs/order-2/steps/charge/result"), http.StatusNotFound)
		wantCode(t, get(t, srv.URL+"/flows/runs/order-2/steps/nope/result"), http.StatusNotFound)
	})
}

func TestNotFound(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	srv := serve(t, console.Handler(eng))
	for _, tc := range []struct {
		path, ctype, want string
	}{
		{"/flows/runs/nope", "text/html", "Run not found"},
		{"/flows/runs/%3Cscript%3E", "text/html", "There is no run &#34;&lt;script&gt;&#34;"},
		{"/flows/runs/nope/status", "application/json", `"error"`},
		{"/flows/runs/nope/attempts", "application/json", `"error"`},
		{"/flows/runs/nope/events", "application/json", `"error"`},
		{"/flows/runs/nope/steps/a/result", "application/json", `"error"`},
		{"/flows/runs/nope/steps/a/input", "application/json", `"error"`},
		{"/flows/runs/nope/whatever", "text/html", "Not found"},
		{"/flows/runs/", "text/html", "Not found"},
		{"/flows/elsewhere", "text/html", "Not found"},
		{"/flows/static/nope.js", "text/html", "Not found"},
		{"/flows/runs/a/b/c/d/e/f", "text/html", "Not found"},
		{"/flows/runs/nope/error", "application/json", `"error"`},
		{"/flows/runs/nope/steps/a", "text/html", "Run not found"},
		{"/flows/runs/nope/steps/a/error", "application/json", `"error"`},
		{"/flows/runs/nope/steps/a/items", "application/json", `"error"`},
		{"/flows/runs/nope/steps/a/items/0/value", "application/json", `"error"`},
		{"/flows/runs/nope/steps/a/items/0/other", "text/html", "Not found"},
		{"/flows/runs/nope/steps/", "text/html", "Not found"},
		{"/flows/runs/nope/steps/a/other", "text/html", "Not found"},
		{"/flows/schedules/x", "text/html", "Not found"},
	} {
		r := get(t, srv.URL+tc.path)
		if r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", tc.path, r.StatusCode)
		}
		if !strings.HasPrefix(r.Header.Get("Content-Type"), tc.ctype) || !strings.Contains(r.body, tc.want) {
			t.Errorf("GET %s: %s, body lacks %q:\n%.500s", tc.path, r.Header.Get("Content-Type"), tc.want, r.body)
		}
	}
	// The 404 page's links still lead home.
	r := get(t, srv.URL+"/flows/runs/nope")
	if !strings.Contains(r.body, `href="../static/app.css?v=`) || !strings.Contains(r.body, `href=".././"`) {
		t.Errorf("the 404 page of a run links elsewhere:\n%s", r.body)
	}
}

func TestMethods(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, failing("r"))
	srv := serve(t, console.Handler(eng, console.WithActions(true)))
	for _, tc := range []struct {
		method, path, allow string
	}{
		{"POST", "/flows/", "GET, HEAD"},
		{"DELETE", "/flows/runs/r", "GET, HEAD"},
		{"PUT", "/flows/runs/r/status", "GET, HEAD"},
		{"POST", "/flows/runs/r/events", "GET, HEAD"},
		{"GET", "/flows/runs/r/retry", "POST"},
		{"GET", "/flows/runs/r/cancel", "POST"},
		{"PUT", "/flows/runs/r/retry", "POST"},
		{"GET", "/flows/runs/r/steps/validate/rerun", "POST"},
		{"POST", "/flows/runs/r/steps/validate", "GET, HEAD"},
		{"POST", "/flows/schedules", "GET, HEAD"},
	} {
		req, _ := http.NewRequest(tc.method, srv.URL+tc.path, nil)
		r := do(t, req)
		if r.StatusCode != http.StatusMethodNotAllowed || r.Header.Get("Allow") != tc.allow {
			t.Errorf("%s %s: %d, Allow %q; want 405, %q", tc.method, tc.path, r.StatusCode, r.Header.Get("Allow"), tc.allow)
		}
	}
	// GET on an action changed nothing.
	if st, _ := eng.Status(ctxT(t), "r"); st.State != dagflow.StateFailed {
		t.Errorf("run is %s", st.State)
	}
	req, _ := http.NewRequest(http.MethodHead, srv.URL+"/flows/runs/r", nil)
	if r := do(t, req); r.StatusCode != http.StatusOK || r.body != "" {
		t.Errorf("HEAD: %d with %d bytes", r.StatusCode, len(r.body))
	}
}

func TestEscaping(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	const evil = `<script>alert("x")</script>`
	const evilID = `<script>alert("x")` // step ids may not contain "/"
	if err := eng.Handle("evil", func(ctx context.Context, in dagflow.Input) (any, error) {
		in.Logger().Info(evil, "attr", evil)
		return nil, dagflow.Permanent(fmt.Errorf("failed with %s", evil))
	}); err != nil {
		t.Fatal(err)
	}
	wf := dagflow.Workflow{ID: "run" + evilID, Context: json.RawMessage(`{"result":"` + strings.ReplaceAll(evil, `"`, `\"`) + `","k":"</pre><script>alert(2)</script>"}`),
		Steps: []dagflow.Step{step("a"+evilID, "echo"), step("b"+evilID, "evil", "a"+evilID)}}
	runWF(t, eng, wf)
	srv := serve(t, console.Handler(eng, console.WithActions(true)))

	pages := []reply{get(t, srv.URL+"/flows/"), get(t, srv.URL+"/flows/runs/"+url.PathEscape(wf.ID))}
	wantCode(t, pages[1], http.StatusOK)
	for _, r := range pages {
		if strings.Contains(r.body, "<script>alert") || strings.Contains(r.body, "</pre><script>") {
			t.Errorf("%s: a step id, result, error or log line is not escaped:\n%s", r.Request.URL, r.body)
		}
		if n := strings.Count(r.body, "<script"); n != 1 {
			t.Errorf("%s: %d <script elements, want the console's one", r.Request.URL, n)
		}
	}
	body := pages[1].body
	for _, want := range []string{
		`data-step="a&lt;script&gt;alert(&#34;x&#34;)"`,     // the graph node
		`&lt;script&gt;alert(\&#34;x\&#34;)&lt;/script&gt;`, // the result, as JSON
		`failed with &lt;script&gt;`,                        // the error
	} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	// The links to the step's JSON escape its id.
	if !strings.Contains(body, `/steps/a%3Cscript%3Ealert%28%22x%22%29/input`) {
		t.Errorf("no escaped link to the input of step a")
	}
	r := get(t, srv.URL+"/flows/runs/"+url.PathEscape(wf.ID)+"/steps/"+url.PathEscape("a"+evilID)+"/result")
	wantCode(t, r, http.StatusOK)
	if r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("raw result served as %q, nosniff %q", r.Header.Get("Content-Type"), r.Header.Get("X-Content-Type-Options"))
	}
}

func TestHugeResult(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, dagflow.WithMaxPayload(4<<20)) // a result over the default limit of 1 MiB
	big := strings.Repeat("x", 2<<20)
	runWF(t, eng, dagflow.Workflow{ID: "big", Context: json.RawMessage(`{"result":{"blob":"` + big + `"}}`),
		Steps: []dagflow.Step{step("make", "echo"), step("use", "ok", "make")}})
	srv := serve(t, console.Handler(eng))

	r := get(t, srv.URL+"/flows/runs/big")
	wantCode(t, r, http.StatusOK)
	// The result, the input of "use" and the context are each cut.
	if len(r.body) > 200<<10 {
		t.Errorf("page is %d KiB for a 2 MiB result", len(r.body)>>10)
	}
	if n := strings.Count(r.body, "Open the whole value as JSON"); n != 2 {
		t.Errorf("%d links to the whole value, want 2 (result, input of the next step)", n)
	}
	if !strings.Contains(r.body, `href="../runs/big/steps/make/result"`) || !strings.Contains(r.body, "of 2.0 MiB") {
		t.Errorf("no link to the raw result or no size")
	}
	raw := get(t, srv.URL+"/flows/runs/big/steps/make/result")
	wantCode(t, raw, http.StatusOK)
	if strings.TrimSpace(raw.body) != `{"blob":"`+big+`"}` {
		t.Errorf("raw result is %d bytes, want the whole value", len(raw.body))
	}
}

func TestActionsDisabledByDefault(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, failing("r"))
	srv := serve(t, console.Handler(eng))
	page := get(t, srv.URL+"/flows/runs/r")
	if strings.Contains(page.body, `action="../runs/r/retry"`) || page.Header.Get("Set-Cookie") != "" {
		t.Errorf("a read-only console offers actions or sets a cookie")
	}
	for _, action := range []string{"retry", "cancel"} {
		r := postForm(t, srv.URL+"/flows/runs/r/"+action, nil, nil)
		wantCode(t, r, http.StatusForbidden)
	}
	if st, _ := eng.Status(ctxT(t), "r"); st.State != dagflow.StateFailed || st.Generation != 0 {
		t.Errorf("run is %s, generation %d", st.State, st.Generation)
	}
}

// formOf reads the CSRF cookie and hidden field of a run page.
func formOf(t testing.TB, page reply) (*http.Cookie, string) {
	t.Helper()
	var ck *http.Cookie
	for _, c := range page.Cookies() {
		if c.Name == "dagflow_csrf" {
			ck = c
		}
	}
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page.body)
	if ck == nil || m == nil {
		t.Fatalf("run page has no CSRF cookie or field")
	}
	return ck, m[1]
}

func TestActions(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, failing("r"))
	srv := serve(t, console.Handler(eng, console.WithActions(true)))
	page := get(t, srv.URL+"/flows/runs/r")
	if !strings.Contains(page.body, `action="../runs/r/retry"`) || strings.Contains(page.body, `action="../runs/r/cancel"`) {
		t.Fatalf("a failed run's page should offer retry and not cancel")
	}
	ck, csrf := formOf(t, page)
	if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/flows/" {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Strict, Path=/flows/", ck)
	}
	retry := srv.URL + "/flows/runs/r/retry"

	for name, tc := range map[string]struct {
		form   url.Values
		header http.Header
		cookie *http.Cookie
	}{
		"no csrf":           {url.Values{}, nil, ck},
		"no cookie":         {url.Values{"csrf": {csrf}}, nil, nil},
		"other cookie":      {url.Values{"csrf": {csrf}}, nil, &http.Cookie{Name: "dagflow_csrf", Value: strings.Repeat("A", 43)}},
		"forged csrf":       {url.Values{"csrf": {strings.Repeat("A", 43)}}, nil, ck},
		"cross-site":        {url.Values{"csrf": {csrf}}, http.Header{"Sec-Fetch-Site": {"cross-site"}}, ck},
		"other origin":      {url.Values{"csrf": {csrf}}, http.Header{"Origin": {"https://evil.example"}}, ck},
		"other console key": {url.Values{"csrf": {csrf}}, nil, ck},
	} {
		u := retry
		if name == "other console key" {
			// A second console has another key: its forms are not ours.
			other := serve(t, console.Handler(eng, console.WithActions(true)))
			u = other.URL + "/flows/runs/r/retry"
		}
		var cookies []*http.Cookie
		if tc.cookie != nil {
			cookies = append(cookies, tc.cookie)
		}
		r := postForm(t, u, tc.form, tc.header, cookies...)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, r.StatusCode)
		}
	}
	if st, _ := eng.Status(ctxT(t), "r"); st.Generation != 0 {
		t.Fatalf("a refused action retried the run")
	}

	r := postForm(t, retry, url.Values{"csrf": {csrf}}, http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {srv.URL}}, ck)
	wantCode(t, r, http.StatusSeeOther)
	if loc := r.Header.Get("Location"); loc != "../r" {
		t.Errorf("Location %q, want ../r", loc)
	}
	st, err := eng.Wait(ctxT(t), "r")
	if err != nil || st.Generation != 1 {
		t.Fatalf("after retry: %+v, %v", st, err)
	}

	// Retrying a run that is not failed is a conflict, shown as a page.
	runWF(t, eng, pipeline("done"))
	r = postForm(t, srv.URL+"/flows/runs/done/retry", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, r, http.StatusConflict)
	if !strings.Contains(r.body, "cannot retry run") {
		t.Errorf("conflict page: %s", r.body)
	}
	r = postForm(t, srv.URL+"/flows/runs/nope/cancel", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, r, http.StatusNotFound)

	// Cancel a running run.
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "long", Steps: []dagflow.Step{step("wait", "block")}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, eng, "long", dagflow.StateRunning)
	page = get(t, srv.URL+"/flows/runs/long")
	if !strings.Contains(page.body, `action="../runs/long/cancel"`) || !strings.Contains(page.body, `data-live="../runs/long/events"`) {
		t.Errorf("a running run's page has no cancel button or is not live")
	}
	r = postForm(t, srv.URL+"/flows/runs/long/cancel", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, r, http.StatusSeeOther)
	waitState(t, eng, "long", dagflow.StateCancelled)
}

func TestActionToken(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, failing("r"))
	srv := serve(t, console.Handler(eng, console.WithActions(true), console.WithToken("s3cret")))
	page := get(t, srv.URL+"/flows/runs/r")
	if !strings.Contains(page.body, `name="token"`) {
		t.Errorf("the form does not ask for the token")
	}
	ck, csrf := formOf(t, page)
	retry := srv.URL + "/flows/runs/r/retry"

	for name, tc := range map[string]struct {
		form   url.Values
		header http.Header
	}{
		"no token":              {url.Values{"csrf": {csrf}}, nil},
		"wrong token":           {url.Values{"csrf": {csrf}, "token": {"s3cre"}}, nil},
		"longer token":          {url.Values{"csrf": {csrf}, "token": {"s3cret!"}}, nil},
		"wrong header":          {url.Values{"csrf": {csrf}}, http.Header{"X-Dagflow-Token": {"nope"}}},
		"token without csrf":    {url.Values{"token": {"s3cret"}}, nil},
		"header but cross-site": {nil, http.Header{"X-Dagflow-Token": {"s3cret"}, "Sec-Fetch-Site": {"cross-site"}}},
	} {
		r := postForm(t, retry, tc.form, tc.header, ck)
		if r.StatusCode != http.StatusForbidden {
			t.Errorf("%s: %d, want 403", name, r.StatusCode)
		}
	}
	if st, _ := eng.Status(ctxT(t), "r"); st.Generation != 0 {
		t.Fatalf("a refused action retried the run")
	}

	// A form with the token and the CSRF token.
	r := postForm(t, retry, url.Values{"csrf": {csrf}, "token": {"s3cret"}}, nil, ck)
	wantCode(t, r, http.StatusSeeOther)
	waitState(t, eng, "r", dagflow.StateFailed)

	// A client with the header needs no cookie, and may ask for JSON.
	r = postForm(t, retry, nil, http.Header{"X-Dagflow-Token": {"s3cret"}, "Accept": {"application/json"}})
	wantCode(t, r, http.StatusOK)
	var st dagflow.Status
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || st.ID != "r" || st.Generation != 2 {
		t.Errorf("JSON reply %s: %v", r.body, err)
	}
}

func TestEvents(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	release := make(chan struct{})
	if err := eng.Handle("gate", func(ctx context.Context, in dagflow.Input) (any, error) {
		select {
		case <-release:
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "live", Steps: []dagflow.Step{step("first", "ok"), step("wait", "gate", "first")}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, eng, "live", dagflow.StateRunning)
	srv := serve(t, console.Handler(eng))

	req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, srv.URL+"/flows/runs/live/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("content type %q", res.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(res.Body)
	next := func() (event, data string) {
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && event != "":
				return event, data
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return "", ""
	}
	ev, data := next()
	var ls struct {
		State dagflow.State `json:"state"`
		Steps []struct {
			ID    string        `json:"id"`
			State dagflow.State `json:"state"`
		} `json:"steps"`
	}
	if err := json.Unmarshal([]byte(data), &ls); ev != "status" || err != nil || ls.State != dagflow.StateRunning {
		t.Fatalf("first event %s %s (%v)", ev, data, err)
	}
	close(release)
	for {
		ev, data = next()
		if ev == "end" {
			break
		}
		json.Unmarshal([]byte(data), &ls)
	}
	if ls.State != dagflow.StateCompleted || ls.Steps[1].State != dagflow.StateCompleted {
		t.Errorf("last status before end: %+v", ls)
	}
	if sc.Scan() {
		t.Errorf("the stream goes on after end: %q", sc.Text())
	}
}

// resolve resolves a link of a page against the page's URL, as a browser
// does.
func resolve(t testing.TB, page reply, href string) string {
	t.Helper()
	u, err := page.Request.URL.Parse(href)
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

func unescapeAttr(s string) string {
	return strings.NewReplacer("&amp;", "&", "&#43;", "+", "&#34;", `"`, "&#39;", "'").Replace(s)
}

func TestMountPoints(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	const id = "order 7:a?b#c%d&e" // an id that needs escaping in a path
	runWF(t, eng, failing(id))
	h := console.Handler(eng, console.WithActions(true))
	for _, tc := range []struct {
		name  string
		mount func(*http.ServeMux)
		root  string
	}{
		{"root", func(m *http.ServeMux) { m.Handle("/", h) }, "/"},
		{"prefix", func(m *http.ServeMux) { m.Handle("/flows/", h) }, "/flows/"},
		{"method and host-less pattern", func(m *http.ServeMux) { m.Handle("GET /ops/flows/", h); m.Handle("POST /ops/flows/", h) }, "/ops/flows/"},
		{"wildcard", func(m *http.ServeMux) { m.Handle("/t/{tenant}/flows/", h) }, "/t/acme/flows/"},
		{"strip prefix", func(m *http.ServeMux) { m.Handle("/admin/", http.StripPrefix("/admin", h)) }, "/admin/"},
		{"strip prefix with slash", func(m *http.ServeMux) { m.Handle("/admin/", http.StripPrefix("/admin/", h)) }, "/admin/"},
		{"strip a prefix named runs", func(m *http.ServeMux) { m.Handle("/runs/", http.StripPrefix("/runs", h)) }, "/runs/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			tc.mount(mux)
			srv := httptest.NewServer(mux)
			defer srv.Close()
			list := get(t, srv.URL+tc.root)
			wantCode(t, list, http.StatusOK)
			m := regexp.MustCompile(`<td class="id"><a href="([^"]+)"`).FindStringSubmatch(list.body)
			if m == nil {
				t.Fatalf("no run link on the list:\n%s", list.body)
			}
			page := get(t, resolve(t, list, unescapeAttr(m[1])))
			wantCode(t, page, http.StatusOK)
			if !strings.Contains(page.body, `<h1 class="id">order 7:a?b#c%d&amp;e</h1>`) {
				t.Errorf("%s is not the page of run %q", page.Request.URL, id)
			}
			for _, re := range []string{`href="([^"]+app\.css[^"]*)"`, `src="([^"]+app\.js[^"]*)"`,
				`<a class="brand" href="([^"]+)"`, `href="([^"]+/input)"`} {
				m := regexp.MustCompile(re).FindStringSubmatch(page.body)
				if m == nil {
					t.Fatalf("no link %s on the run page", re)
				}
				wantCode(t, get(t, resolve(t, page, unescapeAttr(m[1]))), http.StatusOK)
			}
			wantCode(t, get(t, resolve(t, page, "../"+runPath(id)+"/status")), http.StatusOK)
			ck, csrf := formOf(t, page)
			form := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(page.body)
			if form == nil {
				t.Fatal("no retry form")
			}
			r := postForm(t, resolve(t, page, unescapeAttr(form[1])), url.Values{"csrf": {csrf}}, nil, ck)
			wantCode(t, r, http.StatusSeeOther)
			if back := resolve(t, r, r.Header.Get("Location")); back != page.Request.URL.String() {
				t.Errorf("redirected to %s, want %s", back, page.Request.URL)
			}
			if _, err := eng.Wait(ctxT(t), id); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("mount point without its slash", func(t *testing.T) {
		mux := http.NewServeMux()
		mux.Handle("/flows", h)
		srv := httptest.NewServer(mux)
		defer srv.Close()
		r := get(t, srv.URL+"/flows")
		wantCode(t, r, http.StatusSeeOther)
		if loc := r.Header.Get("Location"); loc != "./flows/" {
			t.Errorf("Location %q", loc)
		}
	})
}

// runPath is the path of a run's page below the console's root.
func runPath(id string) string { return "runs/" + url.PathEscape(id) }

func TestStaticAssets(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	srv := serve(t, console.Handler(eng))
	list := get(t, srv.URL+"/flows/")
	for _, name := range []string{"app.css", "app.js", "favicon.svg"} {
		m := regexp.MustCompile(`"(static/` + regexp.QuoteMeta(name) + `\?v=[0-9a-f]+)"`).FindStringSubmatch(list.body)
		if m == nil {
			t.Fatalf("the list does not link %s", name)
		}
		r := get(t, srv.URL+"/flows/"+m[1])
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.Header.Get("Cache-Control"), "immutable") || r.body == "" {
			t.Errorf("%s: Cache-Control %q, %d bytes", name, r.Header.Get("Cache-Control"), len(r.body))
		}
	}
	// Nothing is loaded from elsewhere.
	page := list.body
	for _, bad := range []string{"http://", "https://", "//cdn", "@import", "url(http"} {
		if strings.Contains(page, bad) {
			t.Errorf("the list page refers to %q", bad)
		}
	}
	css := get(t, srv.URL+"/flows/static/app.css")
	js := get(t, srv.URL+"/flows/static/app.js")
	for _, body := range []string{css.body, js.body} {
		if strings.Contains(body, "http://") || strings.Contains(body, "https://") || strings.Contains(body, "@import") {
			t.Errorf("an asset refers to another site")
		}
	}
	if css.Header.Get("Cache-Control") != "no-cache" {
		t.Errorf("an asset without its version is cached for good")
	}
}

func TestSagaAndHTTPSteps(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	jobs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/refund":
			fmt.Fprint(w, `{"success": true, "result": {"refunded": true}}`)
		case calls.Add(1) == 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"success": false, "error": "try later"}`)
		default:
			fmt.Fprint(w, `{"success": true, "result": {"charged": 42}}`)
		}
	}))
	t.Cleanup(jobs.Close)
	eng := newEngine(t)
	wf := dagflow.Workflow{ID: "saga", Saga: true, Steps: []dagflow.Step{
		{ID: "charge", URL: jobs.URL + "/charge?apiKey=hunter2", Compensation: jobs.URL + "/refund",
			Retries: &dagflow.RetryConfig{MaxAttempts: 2, InitialInterval: 10 * time.Millisecond}},
		step("ship", "fail", "charge"),
	}}
	if st := runWF(t, eng, wf); st.State != dagflow.StateFailed {
		t.Fatalf("saga is %s", st.State)
	}
	srv := serve(t, console.Handler(eng, console.WithActions(true)))
	r := get(t, srv.URL+"/flows/runs/saga")
	wantCode(t, r, http.StatusOK)
	for _, want := range []string{
		`class="node state-compensated`,             // the graph
		`class="bar failed"`, `class="bar ok comp"`, // the timeline: the 503, the refund
		`HTTP 503`, `HTTP 200`, `try later`, // the HTTP attempts
		`/charge?apiKey=…`, // the URL, without its key
		`Compensation 1`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("saga page lacks %q", want)
		}
	}
	for _, path := range []string{"", "/status", "/attempts"} {
		r := get(t, srv.URL+"/flows/runs/saga"+path)
		if i := strings.Index(r.body, "hunter2"); i >= 0 {
			t.Errorf("runs/saga%s shows the URL's API key: %s", path, r.body[max(0, i-200):i+50])
		}
	}
	if strings.Contains(r.body, `id="retry"`) || strings.Contains(r.body, `class="rerun"`) {
		t.Errorf("a compensated saga offers a retry the engine refuses, or a rerun of undone steps")
	}
	runWF(t, eng, failing("other")) // its page has forms
	ck, csrf := formOf(t, get(t, srv.URL+"/flows/runs/other"))
	rr := postForm(t, srv.URL+"/flows/runs/saga/steps/ship/rerun", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, rr, http.StatusConflict)
	if !strings.Contains(rr.body, "rolled back") {
		t.Errorf("the refusal does not say why: %s", rr.body)
	}
}

func TestLogsCut(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, dagflow.WithLogLines(2))
	if err := eng.Handle("chatty", func(ctx context.Context, in dagflow.Input) (any, error) {
		for i := range 5 {
			in.Logger().Info("line", "i", i)
		}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	runWF(t, eng, dagflow.Workflow{ID: "chatty", Steps: []dagflow.Step{step("talk", "chatty"), step("quiet", "echo")}})
	srv := serve(t, console.Handler(eng))
	r := get(t, srv.URL+"/flows/runs/chatty")
	wantCode(t, r, http.StatusOK)
	if n := strings.Count(r.body, `<td class="msg">line`); n != 2 {
		t.Errorf("%d log lines shown, want the 2 kept", n)
	}
	if strings.Count(r.body, "Later log lines were dropped") != 1 || !strings.Contains(r.body, "No log lines.") {
		t.Errorf("no marker of the cut logs, or of the step that logged nothing")
	}
}
