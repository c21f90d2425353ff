package console_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console"
)

// manyRuns makes an engine with n finished runs: one in ten failed.
func manyRuns(t testing.TB, n int) *dagflow.Engine {
	t.Helper()
	eng := newEngine(t, dagflow.WithConcurrency(8))
	ctx := ctxT(t)
	for i := range n {
		h := "ok"
		if i%10 == 3 {
			h = "fail"
		}
		wf := dagflow.Workflow{ID: fmt.Sprintf("run-%05d", i), Steps: []dagflow.Step{step("a", h), step("b", "ok", "a")}}
		if _, err := eng.Create(ctx, wf); err != nil {
			t.Fatal(err)
		}
	}
	for {
		page, err := eng.List(ctx, dagflow.ListOptions{State: dagflow.StateRunning, Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Runs) == 0 {
			return eng
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestListTenThousandRuns pages through 10,000 runs and searches them: each
// page is read from the store's order, never by loading every run.
func TestListTenThousandRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 10,000 runs")
	}
	t.Parallel()
	start := time.Now()
	eng := manyRuns(t, 10_000)
	t.Logf("made 10,000 runs in %v", time.Since(start))
	h := console.Handler(eng)
	serveList := func(target string) (*httptest.ResponseRecorder, time.Duration) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, req)
		return rec, time.Since(start)
	}
	for _, tc := range []struct {
		query string
		rows  int
		first string
	}{
		{"", 50, "run-09999"},
		{"?state=failed", 50, "run-09993"},
		{"?q=run-0420", 10, "run-04209"},
		{"?q=no-such-run", 0, ""},                // scans every run
		{"?state=failed&q=1233", 1, "run-01233"}, // ditto
		{"?limit=500", 500, "run-09999"},
	} {
		rec, took := serveList("/" + tc.query)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", tc.query, rec.Code)
		}
		ids := regexp.MustCompile(`href="runs/([^"]+)"`).FindAllStringSubmatch(rec.Body.String(), -1)
		if len(ids) != tc.rows || (tc.rows > 0 && ids[0][1] != tc.first) {
			t.Errorf("%q: %d rows, first %v; want %d, %s", tc.query, len(ids), ids[:min(1, len(ids))], tc.rows, tc.first)
		}
		t.Logf("%-24q %3d rows in %v", tc.query, len(ids), took)
		// Generous bounds for -race on a small machine (without it: about
		// 3ms for 50 rows, 30ms for 500; see BenchmarkListPage).
		if budget := time.Duration(max(tc.rows, 50)) * 10 * time.Millisecond; took > budget {
			t.Errorf("%q took %v, more than %v", tc.query, took, budget)
		}
	}
	// Follow the cursors of failed runs to the end: 1,000 runs, 20 pages.
	seen, pages := 0, 0
	next := "/?state=failed"
	for next != "" {
		rec, _ := serveList(next)
		body := rec.Body.String()
		seen += strings.Count(body, `<tr class="state-failed">`)
		pages++
		next = ""
		if m := regexp.MustCompile(`class="next" href="\./([^"]+)"`).FindStringSubmatch(body); m != nil {
			next = "/" + unescapeAttr(m[1])
		}
	}
	if seen != 1000 || pages != 20 {
		t.Errorf("paged through %d failed runs in %d pages, want 1000 in 20", seen, pages)
	}
}

// BenchmarkListPage renders the first page and a search of a store of
// 10,000 runs.
func BenchmarkListPage(b *testing.B) {
	eng := manyRuns(b, 10_000)
	h := console.Handler(eng)
	for _, q := range []string{"/", "/?state=failed", "/?q=run-0999", "/?limit=500"} {
		b.Run(q, func(b *testing.B) {
			for b.Loop() {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, q, nil))
				if rec.Code != http.StatusOK {
					b.Fatal(rec.Code)
				}
			}
		})
	}
}
