package console

import (
	"encoding/json"
	"maps"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
)

func TestRelPath(t *testing.T) {
	for _, tc := range []struct {
		pattern, path, rel string
		ok                 bool
		stripped           string // the path the client sent, when a middleware changed it
	}{
		{"", "/", "", true, ""},
		{"", "/runs/a", "runs/a", true, ""},
		{"/", "/runs/a", "runs/a", true, ""},
		{"/flows/", "/flows/", "", true, ""},
		{"/flows/", "/flows/runs/a%2Fb", "runs/a%2Fb", true, ""},
		{"/flows/", "/runs/a", "runs/a", true, "/flows/runs/a"}, // http.StripPrefix took /flows off
		{"/runs/", "/runs/x", "runs/x", true, "/runs/runs/x"},   // ... /runs
		{"/flows", "/flows", "", false, ""},                     // needs its slash
		{"GET /flows/", "/flows/runs/a", "runs/a", true, ""},
		{"GET example.com/flows/", "/flows/runs/a", "runs/a", true, ""},
		{"/t/{tenant}/flows/", "/t/acme/flows/runs/a/status", "runs/a/status", true, ""},
		{"/flows/{rest...}", "/flows/runs/a", "runs/a", true, ""},
		{"/flows/{$}", "/flows/", "", true, ""},
		{"/runs/", "/runs/runs/x", "runs/x", true, ""}, // mounted at a name the console uses
		{"/runs/", "/runs/", "", true, ""},
	} {
		r := httptest.NewRequest("GET", "http://example.com"+tc.path, nil)
		r.Pattern = tc.pattern
		if tc.stripped != "" {
			r.RequestURI = tc.stripped
		}
		rel, ok := relPath(r)
		if rel != tc.rel || ok != tc.ok {
			t.Errorf("pattern %q, path %q: %q, %v; want %q, %v", tc.pattern, tc.path, rel, ok, tc.rel, tc.ok)
		}
	}
}

func TestJSONView(t *testing.T) {
	v := newJSONView(json.RawMessage(`{"a":[1,2],"html":"\u003cb\u003e \u0026 \\u003c"}`), "")
	want := "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"html\": \"<b> & \\\\u003c\"\n}"
	if v.Text != want || v.Cut {
		t.Errorf("text %q, cut %v; want %q", v.Text, v.Cut, want)
	}
	// A long value is cut on a rune boundary.
	long := json.RawMessage(`"` + strings.Repeat("é", previewLimit) + `"`)
	v = newJSONView(long, "raw")
	if !v.Cut || len(v.Text) > previewLimit || !strings.HasPrefix(v.Text, `"éé`) || strings.ToValidUTF8(v.Text, "?") != v.Text {
		t.Errorf("cut %v, %d bytes, valid %v", v.Cut, len(v.Text), strings.ToValidUTF8(v.Text, "?") == v.Text)
	}
	if v.SizeText() != "32.0 KiB" {
		t.Errorf("size %s", v.SizeText())
	}
	if v := newJSONView(nil, ""); v.Size != 0 || v.Text != "" {
		t.Errorf("empty value: %+v", v)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:pw@api.example.com/jobs/charge?key=secret&x=1#frag": "https://user@api.example.com/jobs/charge?key=…&x=…",
		"/api/jobs/a": "/api/jobs/a",
		"::":          "(an unparsable URL)",
	} {
		if got := redactURL(in); got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestScrub(t *testing.T) {
	for in, want := range map[string]string{
		`httpstep: http://127.0.0.1:80/charge?apiKey=hunter2: status 503`: `httpstep: http://127.0.0.1:80/charge?apiKey=…: status 503`,
		`Post "https://u:p@h/x?t=1": dial tcp: refused`:                   `Post "https://u@h/x?t=…": dial tcp: refused`,
		`no url here`: `no url here`,
	} {
		if got := scrub(in); got != want {
			t.Errorf("scrub(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCriticalPathAndTimeline(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	wf := &dagflow.Workflow{Steps: []dagflow.Step{
		{ID: "a"}, {ID: "fast", DependsOn: []string{"a"}}, {ID: "slow", DependsOn: []string{"a"}},
		{ID: "join", DependsOn: []string{"fast", "slow"}}, {ID: "never", DependsOn: []string{"join"}},
	}}
	atts := []dagflow.Attempt{
		{StepID: "a", Number: 1, StartedAt: at(0), EndedAt: at(100)},
		{StepID: "fast", Number: 1, StartedAt: at(100), EndedAt: at(150)},
		{StepID: "slow", Number: 1, StartedAt: at(100), EndedAt: at(300), Error: "boom"},
		{StepID: "slow", Number: 2, StartedAt: at(400), EndedAt: at(700)},
		{StepID: "join", Number: 1, StartedAt: at(700), EndedAt: at(1000)},
		{StepID: "join", Number: 1, Compensation: true, StartedAt: at(1000), EndedAt: at(1100)},
	}
	st := &dagflow.Status{State: dagflow.StateCompleted, StartedAt: t0, CompletedAt: at(1100)}
	for _, s := range wf.Steps {
		st.Steps = append(st.Steps, dagflow.StepStatus{ID: s.ID, State: dagflow.StateCompleted})
	}
	crit := findCriticalPath(wf, atts, st, at(2000))
	if want := (criticalPath{"join": "slow", "slow": "a", "a": ""}); !maps.Equal(crit, want) {
		t.Errorf("critical path %v, want %v", crit, want)
	}
	if !crit.edge("slow", "join") || crit.edge("fast", "join") || crit.has("fast") {
		t.Errorf("critical edges wrong")
	}
	tl := newTimeline(st, atts, crit, at(2000))
	if tl.Span != "1.10s" || len(tl.Rows) != 4 {
		t.Fatalf("timeline span %s, %d rows", tl.Span, len(tl.Rows))
	}
	slow := tl.Rows[2]
	if slow.ID != "slow" || len(slow.Bars) != 2 || slow.Bars[0].Class != "failed" || slow.Bars[1].X != "36.364%" || !slow.Critical {
		t.Errorf("slow row %+v", slow)
	}
	join := tl.Rows[3]
	if join.Bars[1].Class != "ok comp" || !strings.Contains(join.Bars[1].Title, "compensation attempt 1: 100ms") {
		t.Errorf("join row %+v", join)
	}
	if len(tl.Ticks) < 3 || tl.Ticks[0].Label != "0" || tl.Ticks[1].Label != "200ms" {
		t.Errorf("ticks %+v", tl.Ticks)
	}
	// An attempt under way runs to now.
	st.State, st.CompletedAt = dagflow.StateRunning, time.Time{}
	atts = append(atts, dagflow.Attempt{StepID: "never", Number: 1, StartedAt: at(1100)})
	tl = newTimeline(st, atts, nil, at(2200))
	last := tl.Rows[len(tl.Rows)-1]
	if last.ID != "never" || last.Bars[0].Class != "running" || last.Bars[0].W != "50.000%" {
		t.Errorf("running row %+v", last)
	}
}

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0µs", 850 * time.Microsecond: "850µs", 42 * time.Millisecond: "42ms", 4200 * time.Millisecond: "4.20s",
		42 * time.Second: "42.0s", 185 * time.Second: "3m05s", 130 * time.Minute: "2h10m", -1: "",
	} {
		if got := formatDuration(d); got != want {
			t.Errorf("formatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
