package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// TestCreateAnswersCreatedOnce: of POST /v1/workflows calls with one
// workflow at the same moment, exactly one is answered 201 and the others
// 200, with the run's status.
func TestCreateAnswersCreatedOnce(t *testing.T) {
	h := newTestAPI(t)
	body := []byte(`{"id": "w", "steps": [{"id": "a", "sleep": {"seconds": 60}}]}`)
	codes := map[int]int{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest(http.MethodPost, "/v1/workflows", bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer t0ken")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			var st dagflow.Status
			if err := json.Unmarshal(w.Body.Bytes(), &st); err != nil || st.ID != "w" {
				t.Errorf("status %d, body %s", w.Code, w.Body)
			}
			mu.Lock()
			codes[w.Code]++
			mu.Unlock()
		}()
	}
	wg.Wait()
	if codes[http.StatusCreated] != 1 || codes[http.StatusOK] != 15 {
		t.Errorf("answers by status: %v, want one 201 and fifteen 200", codes)
	}
}

// newTestAPI returns the API, with the token "t0ken", of an engine on a
// memory store, both ended when the test ends.
func newTestAPI(t *testing.T) *API {
	t.Helper()
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	h := New(eng, Options{Token: "t0ken", Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(func() {
		h.EndWaits()
		eng.Close()
	})
	return h
}
