package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
)

const apiToken = "s3cret-t0ken"

// TestServeAPI drives the API of a built 'dagflow serve' on a bbolt file:
// every call, with the answers that bad input gets.
func TestServeAPI(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	p := startServe(t, env("DAGFLOW_API_TOKEN="+apiToken), "--db", filepath.Join(t.TempDir(), "flows.db"))
	p.token = apiToken

	t.Run("create and wait", func(t *testing.T) {
		body := orderChain("api-1", j.url, nil)
		st := p.call(t, "POST", "/v1/workflows", body).want(t, 201).runStatus(t)
		if st.ID != "api-1" || st.State.Final() || len(st.Steps) != 4 {
			t.Errorf("created: %s %s with %d steps", st.ID, st.State, len(st.Steps))
		}
		// The same id and spec is the same run.
		p.call(t, "POST", "/v1/workflows", body).want(t, 200)
		st = p.call(t, "GET", "/v1/workflows/api-1?wait=30s", "").want(t, 200).runStatus(t)
		checkCompleted(t, st, "api-1")
		again := p.call(t, "POST", "/v1/workflows", body).want(t, 200).runStatus(t)
		if diff := cmp.Diff(st, again); diff != "" {
			t.Errorf("creating the completed run again answered another status (-wait +create):\n%s", diff)
		}
		other := orderChain("api-1", j.url, map[string]string{"ship-order": "fail"})
		e := p.call(t, "POST", "/v1/workflows", other).want(t, 409).apiErr(t)
		if !strings.Contains(e.Error, `"api-1" exists with a different workflow`) {
			t.Errorf("409 says %q", e.Error)
		}
		if n := j.count("validate-order"); n != 1 {
			t.Errorf("validate-order called %d times, want 1", n)
		}
	})

	t.Run("invalid workflows", func(t *testing.T) {
		for _, tc := range []struct {
			name, body string
			places     []string // of the problems, in order
		}{
			{"unknown dependency", `{"id": "bad-1", "steps": [{"id": "a", "url": "http://127.0.0.1:1/a", "dependsOn": ["b"]}]}`,
				[]string{"steps[0].dependsOn[0]"}},
			{"several problems", `{"id": "bad-2", "steps": [{"id": "a"}, {"id": "a", "url": "http://127.0.0.1:1/a", "timeout": -1}]}`,
				[]string{"steps[0]", "steps[1].id", "steps[1].timeout"}},
			{"relative URL and no --base-url", `{"id": "bad-3", "steps": [{"id": "a", "url": "/jobs/a"}]}`,
				[]string{"steps[0].url"}},
			{"malformed JSON", `{"id": "bad-4", "steps": [`, []string{"invalid JSON at line 1, column 27"}},
			{"unknown field", `{"id": "bad-5", "stepz": []}`, []string{"stepz", "steps"}},
			{"not an object", `[1, 2]`, []string{"a workflow must be a JSON object, not an array"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := p.call(t, "POST", "/v1/workflows", tc.body).want(t, 400).apiErr(t)
				var places []string
				for _, pr := range e.Problems {
					place, _, _ := strings.Cut(pr, ": ")
					places = append(places, place)
				}
				if diff := cmp.Diff(tc.places, places); diff != "" {
					t.Errorf("problems (-want +got):\n%s\n%q", diff, e.Problems)
				}
				if !strings.HasPrefix(e.Error, "invalid workflow") {
					t.Errorf("error %q", e.Error)
				}
			})
		}
	})

	t.Run("cancel and retry", func(t *testing.T) {
		body := orderChain("cr-1", j.url, map[string]string{"charge-payment": "block"})
		p.call(t, "POST", "/v1/workflows", body).want(t, 201)
		j.waitBlocked(t)
		p.call(t, "POST", "/v1/workflows/cr-1/cancel", "").want(t, 200)
		st := p.call(t, "GET", "/v1/workflows/cr-1?wait=30s", "").want(t, 200).runStatus(t)
		if st.State != dagflow.StateCancelled || st.Cause != dagflow.CauseCancelled {
			t.Fatalf("after cancel: %s (%s) %q", st.State, st.Cause, st.Error)
		}
		e := p.call(t, "POST", "/v1/workflows/cr-1/cancel", "").want(t, 409).apiErr(t)
		if !strings.Contains(e.Error, "cannot cancel") {
			t.Errorf("409 says %q", e.Error)
		}
		st = p.call(t, "POST", "/v1/workflows/cr-1/retry", "").want(t, 200).runStatus(t)
		if st.Generation != 1 {
			t.Errorf("retried run: generation %d", st.Generation)
		}
		st = p.call(t, "GET", "/v1/workflows/cr-1?wait=30s", "").want(t, 200).runStatus(t)
		if st.State != dagflow.StateCompleted {
			t.Fatalf("after retry: %s %q", st.State, st.Error)
		}
		p.call(t, "POST", "/v1/workflows/cr-1/retry", "").want(t, 409)
	})

	t.Run("events", func(t *testing.T) {
		p.call(t, "POST", "/v1/workflows", approvalFlow("evt-1", "order_9", j.url, "")).want(t, 201)
		p.waitState(t, "evt-1", func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateWaiting })
		var sent struct{ Name, Key string }
		p.call(t, "POST", "/v1/events", `{"name": "order-approved", "key": "order_9", "payload": {"approvedBy": "ada"}}`).
			want(t, 202).decode(t, &sent)
		if sent.Name != "order-approved" || sent.Key != "order_9" {
			t.Errorf("202 body %+v", sent)
		}
		st := p.call(t, "GET", "/v1/workflows/evt-1?wait=30s", "").want(t, 200).runStatus(t)
		if st.State != dagflow.StateCompleted || compact(st.Results["approval"]) != `{"approvedBy":"ada"}` {
			t.Errorf("after the event: %s, approval result %s", st.State, st.Results["approval"])
		}
		// An event nobody waits for is kept, and accepted.
		p.call(t, "POST", "/v1/events", `{"name": "order-approved", "key": "nobody"}`).want(t, 202)

		// The command sends an event to serve by its URL, with the token.
		p.call(t, "POST", "/v1/workflows", approvalFlow("evt-2", "order_10", j.url, "")).want(t, 201)
		p.waitState(t, "evt-2", func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateWaiting })
		payload := filepath.Join(t.TempDir(), "approval.json")
		if err := os.WriteFile(payload, []byte(`{"approvedBy": "grace"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := dagflowEnv(t, env("DAGFLOW_API_TOKEN="+apiToken), "send-event", "--url", p.url, "order-approved", "order_10", payload)
		r.want(t, 0)
		if !strings.Contains(r.stdout, `"order_10"`) {
			t.Errorf("send-event --url printed %q", r.stdout)
		}
		st = p.call(t, "GET", "/v1/workflows/evt-2?wait=30s", "").want(t, 200).runStatus(t)
		if st.State != dagflow.StateCompleted || compact(st.Results["approval"]) != `{"approvedBy":"grace"}` {
			t.Errorf("after send-event --url: %s, approval result %s", st.State, st.Results["approval"])
		}
		dagflowEnv(t, env("DAGFLOW_API_TOKEN=wrong"), "send-event", "--url", p.url, "order-approved", "x").want(t, 3, "401")
		dagflowEnv(t, env("DAGFLOW_API_TOKEN="+apiToken), "send-event", "--url", p.url, " ", "x").want(t, 2, "NAME is empty")
	})

	t.Run("ids with slash and percent", func(t *testing.T) {
		pct := fmt.Sprintf(`{"id": "50%%-off", "steps": [{"id": "a", "url": %q}]}`, j.url+"/jobs/ship-order")
		p.call(t, "POST", "/v1/workflows", pct).want(t, 201)
		st := p.call(t, "GET", "/v1/workflows/50%25-off?wait=30s", "").want(t, 200).runStatus(t)
		if st.ID != "50%-off" || st.State != dagflow.StateCompleted {
			t.Errorf("GET /v1/workflows/50%%25-off: %s %s", st.ID, st.State)
		}
		p.call(t, "POST", "/v1/workflows/50%25-off/retry", "").want(t, 409)

		parent := fmt.Sprintf(`{"id": "parent", "steps": [{"id": "ship", "workflow": {"steps": [{"id": "pack", "url": %q}]}}]}`, j.url+"/jobs/ship-order")
		p.call(t, "POST", "/v1/workflows", parent).want(t, 201)
		child := p.call(t, "GET", "/v1/workflows/parent%2Fship?wait=30s", "").want(t, 200).runStatus(t)
		if child.ID != "parent/ship" || child.Parent != "parent" || child.State != dagflow.StateCompleted {
			t.Errorf("the child run: %s of %q, %s", child.ID, child.Parent, child.State)
		}
		e := p.call(t, "POST", "/v1/workflows/parent%2Fship/cancel", "").want(t, 409).apiErr(t)
		if !strings.Contains(e.Error, `"parent/ship"`) {
			t.Errorf("409 of the child says %q", e.Error)
		}
		e = p.call(t, "GET", "/v1/workflows/parent/ship", "").want(t, 404).apiErr(t)
		if !strings.Contains(e.Error, "percent-encoded") {
			t.Errorf("404 of an unencoded child id says %q", e.Error)
		}
		p.call(t, "GET", "/v1/workflows/parent%2Fnope", "").want(t, 404)
	})

	t.Run("list", func(t *testing.T) {
		for i := range 5 {
			body := fmt.Sprintf(`{"id": "page-%d", "steps": [{"id": "a", "url": %q}]}`, i, j.url+"/jobs/ship-order")
			p.call(t, "POST", "/v1/workflows", body).want(t, 201)
			p.call(t, "GET", fmt.Sprintf("/v1/workflows/page-%d?wait=30s", i), "").want(t, 200)
		}
		var all dagflow.RunList
		p.call(t, "GET", "/v1/workflows?limit=1000", "").want(t, 200).decode(t, &all)
		var paged []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > len(all.Runs) {
				t.Fatal("paging does not end")
			}
			var page dagflow.RunList
			p.call(t, "GET", "/v1/workflows?limit=2&after="+after, "").want(t, 200).decode(t, &page)
			if len(page.Runs) > 2 {
				t.Fatalf("a page of %d runs, limit 2", len(page.Runs))
			}
			for _, r := range page.Runs {
				paged = append(paged, r.ID)
			}
			if after = page.Next; after == "" {
				break
			}
		}
		var ids []string
		for _, r := range all.Runs {
			ids = append(ids, r.ID)
		}
		if diff := cmp.Diff(ids, paged); diff != "" {
			t.Errorf("pages of 2 differ from one page (-one +pages):\n%s", diff)
		}
		var pages []string
		for _, id := range ids {
			if strings.HasPrefix(id, "page-") {
				pages = append(pages, id)
			}
		}
		if diff := cmp.Diff([]string{"page-4", "page-3", "page-2", "page-1", "page-0"}, pages); diff != "" {
			t.Errorf("not newest first (-want +got):\n%s", diff)
		}
		var done dagflow.RunList
		p.call(t, "GET", "/v1/workflows?state=completed&limit=1000", "").want(t, 200).decode(t, &done)
		for _, r := range done.Runs {
			if r.State != dagflow.StateCompleted {
				t.Errorf("state=completed lists %s, %s", r.ID, r.State)
			}
		}
		if len(done.Runs) < 5 {
			t.Errorf("state=completed: %d runs of %d", len(done.Runs), len(all.Runs))
		}
		var failed dagflow.RunList
		p.call(t, "GET", "/v1/workflows?state=failed", "").want(t, 200).decode(t, &failed)
		if len(failed.Runs) != 0 {
			t.Errorf("state=failed lists %+v", failed.Runs)
		}
	})

	t.Run("schedules", func(t *testing.T) {
		body := fmt.Sprintf(`{"id": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Paris",
			"workflow": {"steps": [{"id": "a", "url": %q}]}}`, j.url+"/jobs/ship-order")
		var s dagflow.ScheduleInfo
		p.call(t, "POST", "/v1/schedules", body).want(t, 201).decode(t, &s)
		if s.ID != "nightly" || s.Cron != "0 2 * * *" || s.Timezone != "Europe/Paris" || !s.Next.After(time.Now()) {
			t.Errorf("added %+v", s)
		}
		p.call(t, "POST", "/v1/schedules", body).want(t, 200)
		var list struct{ Schedules []dagflow.ScheduleInfo }
		p.call(t, "GET", "/v1/schedules", "").want(t, 200).decode(t, &list)
		if diff := cmp.Diff([]dagflow.ScheduleInfo{s}, list.Schedules); diff != "" {
			t.Errorf("the list (-added +listed):\n%s", diff)
		}
		e := p.call(t, "POST", "/v1/schedules", `{"id": "bad", "cron": "nope", "workflow": {"id": "x", "steps": [{"id": "a", "url": "http://127.0.0.1:1/a"}]}}`).want(t, 400).apiErr(t)
		var places []string
		for _, pr := range e.Problems {
			place, _, _ := strings.Cut(pr, ": ")
			places = append(places, place)
		}
		if !slices.Contains(places, "cron") || !slices.Contains(places, "workflow.id") {
			t.Errorf("problems of a bad schedule: %q", e.Problems)
		}
		r := p.call(t, "DELETE", "/v1/schedules/nightly", "").want(t, 204)
		if len(r.body) != 0 {
			t.Errorf("204 with a body: %s", r.body)
		}
		p.call(t, "DELETE", "/v1/schedules/nightly", "").want(t, 404).apiErr(t)
		p.call(t, "GET", "/v1/schedules", "").want(t, 200).decode(t, &list)
		if len(list.Schedules) != 0 {
			t.Errorf("after DELETE: %+v", list.Schedules)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		valid := orderChain("bad-input", j.url, nil)
		for _, tc := range []struct {
			name, method, path, body string
			headers                  []string
			status                   int
			says                     string
		}{
			{"no Content-Type", "POST", "/v1/workflows", valid, []string{"Content-Type", ""}, 415, "application/json"},
			{"text/plain", "POST", "/v1/workflows", valid, []string{"Content-Type", "text/plain"}, 415, "text/plain"},
			{"form", "POST", "/v1/events", `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "application/json"},
			{"JSON with a charset", "POST", "/v1/workflows", `{`, []string{"Content-Type", "application/json; charset=utf-8"}, 400, "invalid JSON"},
			{"empty body", "POST", "/v1/workflows", "", []string{"Content-Type", "application/json"}, 400, "empty"},
			{"unknown run", "GET", "/v1/workflows/nope", "", nil, 404, `"nope"`},
			{"cancel unknown run", "POST", "/v1/workflows/nope/cancel", "", nil, 404, `"nope"`},
			{"retry unknown run", "POST", "/v1/workflows/nope/retry", "", nil, 404, `"nope"`},
			{"bad wait", "GET", "/v1/workflows/api-1?wait=soon", "", nil, 400, "wait="},
			{"long wait", "GET", "/v1/workflows/api-1?wait=11m", "", nil, 400, "10m"},
			{"bad state", "GET", "/v1/workflows?state=done", "", nil, 400, "state="},
			{"zero limit", "GET", "/v1/workflows?limit=0", "", nil, 400, "limit="},
			{"huge limit", "GET", "/v1/workflows?limit=1001", "", nil, 400, "limit="},
			{"bad cursor", "GET", "/v1/workflows?after=%21%21", "", nil, 400, "after="},
			{"wrong method", "DELETE", "/v1/workflows", "", nil, 405, "GET, POST"},
			{"GET cancel", "GET", "/v1/workflows/api-1/cancel", "", nil, 405, "POST"},
			{"unknown path", "GET", "/v1/nope", "", nil, 404, "openapi.json"},
			{"event without a name", "POST", "/v1/events", `{"key": "k"}`, nil, 400, "name"},
			{"event with a blank name", "POST", "/v1/events", `{"name": " "}`, nil, 400, "name"},
			{"event with an unknown field", "POST", "/v1/events", `{"name": "x", "paylaod": 1}`, nil, 400, "paylaod"},
			{"malformed event", "POST", "/v1/events", `{"name": "x",`, nil, 400, "malformed JSON"},
			{"two events", "POST", "/v1/events", `{"name": "x"} {"name": "y"}`, nil, 400, "malformed JSON"},
			{"event of the wrong type", "POST", "/v1/events", `{"name": 7}`, nil, 400, "name"},
			{"schedule without a workflow", "POST", "/v1/schedules", `{"id": "s", "cron": "@daily"}`, nil, 400, "workflow"},
			{"unknown schedule", "DELETE", "/v1/schedules/nope", "", nil, 404, `"nope"`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := p.call(t, tc.method, tc.path, tc.body, tc.headers...).want(t, tc.status).apiErr(t)
				if !strings.Contains(e.Error, tc.says) {
					t.Errorf("error %q lacks %q", e.Error, tc.says)
				}
			})
		}
		r := p.call(t, "DELETE", "/v1/workflows", "").want(t, 405)
		if got := r.header.Get("Allow"); got != "POST, GET" && got != "GET, POST" {
			t.Errorf("Allow: %q", got)
		}
	})

	t.Run("bodies over 10 MiB", func(t *testing.T) {
		big := append([]byte(`{"id": "big", "context": {"pad": "`), bytes.Repeat([]byte("x"), 10<<20)...)
		big = append(big, `"}, "steps": []}`...)
		for _, tc := range []struct {
			name string
			body io.Reader
		}{
			{"with Content-Length", bytes.NewReader(big)},
			{"chunked", io.MultiReader(bytes.NewReader(big))}, // length unknown to the client
		} {
			t.Run(tc.name, func(t *testing.T) {
				req, err := http.NewRequest("POST", p.url+"/v1/workflows", tc.body)
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+apiToken)
				e := p.do(t, req).want(t, 413).apiErr(t)
				if !strings.Contains(e.Error, "10 MiB") {
					t.Errorf("413 says %q", e.Error)
				}
			})
		}
		p.call(t, "GET", "/v1/workflows/big", "").want(t, 404)
	})

	t.Run("auth", func(t *testing.T) {
		for _, tc := range []struct {
			name, auth string
			status     int
		}{
			{"no token", "", 401},
			{"wrong token", "Bearer nope", 401},
			{"token as a prefix", "Bearer " + apiToken + "x", 401},
			{"basic auth", "Basic " + apiToken, 401},
			{"the token", "Bearer " + apiToken, 200},
			{"lower-case scheme", "bearer " + apiToken, 200},
		} {
			for _, path := range []string{"/v1/workflows", "/v1/workflows/api-1", "/v1/schedules", "/v1/openapi.json"} {
				r := p.call(t, "GET", path, "", "Authorization", tc.auth).want(t, tc.status)
				if tc.status == 401 {
					if r.header.Get("WWW-Authenticate") == "" {
						t.Errorf("%s, %s: 401 without WWW-Authenticate", tc.name, path)
					}
					r.apiErr(t)
				}
			}
		}
		p.call(t, "POST", "/v1/workflows", orderChain("unauthorized", j.url, nil), "Authorization", "").want(t, 401)
		p.call(t, "POST", "/v1/events", `{"name": "order-approved", "key": "k"}`, "Authorization", "Bearer nope").want(t, 401)
		p.call(t, "GET", "/v1/workflows/unauthorized", "").want(t, 404)
		// The console's pages need no token.
		resp, err := http.Get(p.url + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("GET / without a token: %s %s", resp.Status, resp.Header.Get("Content-Type"))
		}
	})

	t.Run("openapi.json", func(t *testing.T) {
		var doc struct {
			OpenAPI string                    `json:"openapi"`
			Paths   map[string]map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(p.call(t, "GET", "/v1/openapi.json", "").want(t, 200).body, &doc); err != nil {
			t.Fatal(err)
		}
		if doc.OpenAPI != "3.1.0" || doc.Paths["/v1/workflows/{id}"]["get"] == nil {
			t.Errorf("openapi %q, paths %v", doc.OpenAPI, doc.Paths)
		}
	})

	code, _ := p.stop(t)
	if code != 0 {
		t.Errorf("exit code %d after SIGTERM", code)
	}
	if errs := p.errors(); strings.Contains(errs, "panic") || strings.Contains(errs, "DATA RACE") {
		t.Errorf("stderr:\n%s", errs)
	}
}

// TestServeShutdown: SIGTERM ends the calls waiting for a run at once, lets
// the step under way finish and records it, and exits 0; the run goes on
// in the next process.
func TestServeShutdown(t *testing.T) {
	t.Parallel()
	j := newJobs(t)
	db := filepath.Join(t.TempDir(), "flows.db")
	p := startServe(t, env(), "--db", db)
	p.call(t, "POST", "/v1/workflows", orderChain("stop-1", j.url, map[string]string{"charge-payment": "slow"})).want(t, 201)
	p.waitState(t, "stop-1", func(st *dagflow.Status) bool { return st.Steps[1].State == dagflow.StateRunning })

	waited := make(chan reply, 1)
	go func() {
		req, _ := http.NewRequest("GET", p.url+"/v1/workflows/stop-1?wait=5m", nil)
		resp, err := apiClient.Do(req)
		if err != nil {
			waited <- reply{}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		waited <- reply{status: resp.StatusCode, header: resp.Header, body: b}
	}()
	time.Sleep(200 * time.Millisecond) // the call is waiting
	code, took := p.stop(t)
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, p.errors())
	}
	if !strings.Contains(p.errors(), "serve stopped") {
		t.Errorf("stderr:\n%s", p.errors())
	}
	t.Logf("serve stopped %v after SIGTERM", took)
	if took > 10*time.Second {
		t.Errorf("serve took %v to stop", took)
	}
	select {
	case r := <-waited:
		st := r.want(t, 200).runStatus(t)
		if st.State.Final() {
			t.Errorf("the waiting call answered %s", st.State)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the call waiting for the run did not end with the server")
	}
	// The attempt under way finished and was recorded; nothing after it
	// started.
	st := dagflowCmd(t, "status", "--db", db, "stop-1").status(t)
	if s := st.Steps[1]; s.State != dagflow.StateCompleted || s.Attempts != 1 || s.Interruptions != 0 {
		t.Errorf("charge-payment after the shutdown: %s, %d attempts, %d interruptions", s.State, s.Attempts, s.Interruptions)
	}
	if n := j.count("slow"); n != 1 {
		t.Errorf("charge-payment called %d times", n)
	}
	r := dagflowCmd(t, "resume", "--db", db)
	r.want(t, 0)
	if n := j.count("slow"); n != 1 {
		t.Errorf("charge-payment called %d times after resume, want 1", n)
	}
}

// TestServeFlags: bad flags, and an address other machines can reach with
// no token, are refused before anything listens.
func TestServeFlags(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "flows.db")
	t.Run("refused", func(t *testing.T) {
		refused(t, db)
	})
	if _, err := os.Stat(db); err == nil {
		t.Errorf("a refused serve made the database")
	}
	r := dagflowCmd(t, "serve", "--help")
	r.want(t, 0)
	for _, s := range []string{"Usage: dagflow serve ", "\n  --postgres DSN\n", "POST   /v1/workflows/{id}/cancel", "DAGFLOW_API_TOKEN"} {
		if !strings.Contains(r.stdout, s) {
			t.Errorf("serve --help lacks %q:\n%s", s, r.stdout)
		}
	}

	// With a token, it listens on every address, and asks for the token.
	p := startServe(t, env("DAGFLOW_API_TOKEN="+apiToken), "--db", db, "--addr", "0.0.0.0:0")
	_, port, _ := strings.Cut(strings.TrimPrefix(p.url, "http://"), "]:")
	if port == "" {
		_, port, _ = strings.Cut(strings.TrimPrefix(p.url, "http://"), ":")
	}
	p.url = "http://127.0.0.1:" + port
	p.call(t, "GET", "/v1/workflows", "").want(t, 401)
	p.token = apiToken
	p.call(t, "GET", "/v1/workflows", "").want(t, 200)
	if code, _ := p.stop(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// refused runs serve with bad flags, or on a public address with no token:
// each is refused with exit code 2 and a message.
func refused(t *testing.T, db string) {
	for _, tc := range []struct {
		name string
		args []string
		says string
	}{
		{"db and postgres", []string{"--db", db, "--postgres", "postgres://127.0.0.1/x"}, "not both"},
		{"schema without postgres", []string{"--schema", "x"}, "--schema goes with --postgres"},
		{"bad address", []string{"--addr", "nope"}, "--addr"},
		{"negative shutdown timeout", []string{"--shutdown-timeout", "-1s"}, "negative"},
		{"bad base URL", []string{"--base-url", "ftp://x"}, "--base-url"},
		{"public address without a token", []string{"--addr", "0.0.0.0:0"}, "DAGFLOW_API_TOKEN"},
		{"argument", []string{"extra"}, "unexpected argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"serve"}, tc.args...)
			if !slices.Contains(args, "--db") {
				args = append(args, "--db", db)
			}
			dagflowCmd(t, args...).want(t, 2, tc.says)
		})
	}
}
