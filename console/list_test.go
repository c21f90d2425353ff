package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/memory"
)

// manyRuns makes an engine with n finished runs (one in ten failed) on
// store, or on a memory store when store is nil.
func manyRuns(t testing.TB, n int, st store.Store) *dagflow.Engine {
	t.Helper()
	opts := []dagflow.Option{dagflow.WithConcurrency(8)}
	if st != nil {
		opts = append(opts, dagflow.WithStore(st))
	}
	eng := newEngine(t, opts...)
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
	// Every run has ended, not only those that started: the engine's own
	// reads would be counted with the page's.
	for _, state := range []dagflow.State{dagflow.StatePending, dagflow.StateRunning} {
		for {
			page, err := eng.List(ctx, dagflow.ListOptions{State: state, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Runs) == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return eng
}

// countingStore counts the records that the transactions on a store return.
type countingStore struct {
	store.Store
	runs, reads atomic.Int64 // runs listed; other records read
}

func (s *countingStore) Exclusive() bool { return true }

func (s *countingStore) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.View(ctx, func(tx store.Tx) error { return fn(countingTx{tx, s}) })
}

func (s *countingStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(countingTx{tx, s}) })
}

type countingTx struct {
	store.Tx
	s *countingStore
}

func (tx countingTx) Runs(q store.RunQuery) ([]store.Run, error) {
	runs, err := tx.Tx.Runs(q)
	tx.s.runs.Add(int64(len(runs)))
	return runs, err
}

func (tx countingTx) Run(id string) (store.Run, error) {
	tx.s.reads.Add(1)
	return tx.Tx.Run(id)
}

func (tx countingTx) Steps(runID string) ([]store.Step, error) {
	steps, err := tx.Tx.Steps(runID)
	tx.s.reads.Add(int64(len(steps)))
	return steps, err
}

func (tx countingTx) Spec(runID string) (json.RawMessage, error) {
	tx.s.reads.Add(1)
	return tx.Tx.Spec(runID)
}

// TestListTenThousandRuns pages through 10,000 runs and searches them: each
// page is read from the store's order, never by loading every run.
func TestListTenThousandRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("makes 10,000 runs")
	}
	t.Parallel()
	start := time.Now()
	st := &countingStore{Store: memory.New()}
	eng := manyRuns(t, 10_000, st)
	t.Logf("made 10,000 runs in %v", time.Since(start))
	h := console.Handler(eng)
	serveList := func(target string) (*httptest.ResponseRecorder, time.Duration) {
		req := httptest.NewRequest(http.MethodGet, target, nil)
		rec := httptest.NewRecorder()
		st.runs.Store(0)
		st.reads.Store(0)
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
		// The page asks the store for its rows and one more (to know
		// whether there is a next page), and reads nothing else of a run:
		// how long that takes is BenchmarkListPage's to measure.
		limit := 50
		if strings.Contains(tc.query, "limit=500") {
			limit = 500
		}
		if runs, reads := st.runs.Load(), st.reads.Load(); runs > int64(limit+1) || reads > 0 {
			t.Errorf("%q: the store listed %d runs and read %d other records; want at most %d runs and nothing else", tc.query, runs, reads, limit+1)
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
	eng := manyRuns(b, 10_000, nil)
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
