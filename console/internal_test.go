package console

import (
	"encoding/json"
	"maps"
	"net/http/httptest"
	"net/url"
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

func TestTextView(t *testing.T) {
	long := "first line\n" + strings.Repeat("x", 3*textLimit)
	for _, tc := range []struct {
		in, head  string
		long, cut bool
	}{
		{"", "", false, false},
		{"card declined", "card declined", false, false},
		{"two\nlines", "two …", true, false},
		{"trailing newline\n", "trailing newline", true, false},
		{strings.Repeat("é", headRunes+5), strings.Repeat("é", headRunes-1) + "…", true, false},
		{long, "first line …", true, true},
	} {
		v := newTextView(tc.in, "u")
		if v.Head != tc.head || v.Long != tc.long || v.Cut != tc.cut || v.Size != len(tc.in) {
			t.Errorf("newTextView(%.20q): head %q, long %v, cut %v, size %d; want %q, %v, %v", tc.in, v.Head, v.Long, v.Cut, v.Size, tc.head, tc.long, tc.cut)
		}
		if len(v.Text) > textLimit || !strings.HasPrefix(tc.in, v.Text) {
			t.Errorf("newTextView(%.20q): text of %d bytes is not the start of the text, cut at %d", tc.in, len(v.Text), textLimit)
		}
	}
	// A cut falls on a rune boundary.
	v := newTextView(strings.Repeat("é", textLimit), "")
	if !v.Cut || strings.ToValidUTF8(v.Text, "?") != v.Text {
		t.Errorf("cut %v, valid %v", v.Cut, strings.ToValidUTF8(v.Text, "?") == v.Text)
	}
}

func TestSpans(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	st := &dagflow.Status{State: dagflow.StateRunning, StartedAt: t0}
	atts := []dagflow.Attempt{
		{StepID: "m", Item: 2, Number: 1, StartedAt: at(50), EndedAt: at(150)},
		{StepID: "m", Item: 0, Number: 1, StartedAt: at(0), EndedAt: at(100)},
		{StepID: "m", Item: 1, Number: 1, StartedAt: at(10), EndedAt: at(60), Error: "boom"},
		{StepID: "m", Item: 3, Number: 1, StartedAt: at(300), EndedAt: at(400)},
		{StepID: "m", Item: 4, Number: 1, StartedAt: at(390)}, // under way
		{StepID: "m", Item: 0, Number: 1, Compensation: true, StartedAt: at(500), EndedAt: at(510)},
	}
	got := spans(atts, st, at(1000))
	if len(got) != 3 {
		t.Fatalf("%d spans, want 3: %+v", len(got), got)
	}
	if got[0].class != "failed" || got[0].n != 3 || !got[0].end.Equal(at(150)) || got[0].first != 0 || got[0].last != 2 {
		t.Errorf("first span %+v", got[0])
	}
	if got[1].class != "running" || !got[1].end.Equal(at(1000)) {
		t.Errorf("second span %+v", got[1])
	}
	if got[2].class != "ok comp" || got[2].title("m") != "m: 1 compensation attempt of items 0–0, 10ms" {
		t.Errorf("third span %+v: %s", got[2], got[2].title("m"))
	}
	if title := got[0].title("m"); title != "m: 3 attempts of items 0–2, 150ms, 1 failed" {
		t.Errorf("title %q", title)
	}
}

func TestParentView(t *testing.T) {
	for _, tc := range []struct{ id, parent, step, item string }{
		{"order-9/ship", "order-9", "ship", ""},
		{"a/b/notify/12", "a/b", "notify", "12"},
		{"elsewhere", "order-9", "", ""},
	} {
		p := newParentView("../", tc.id, tc.parent)
		if p.Step != tc.step || p.Item != tc.item || p.URL != "../runs/"+url.PathEscape(tc.parent) {
			t.Errorf("newParentView(%q, %q) = %+v", tc.id, tc.parent, p)
		}
	}
}
