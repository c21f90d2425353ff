package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestOrders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out bytes.Buffer
	st, err := run(ctx, filepath.Join(t.TempDir(), "flows.db"), []byte("test-secret"), &out)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"validate-order", "charge-payment", "ship-order", "send-confirmation"}
	if st.State != dagflow.StateCompleted || !slices.Equal(st.CompletedSteps, want) {
		t.Fatalf("run %s, completed %v (error %q)", st.State, st.CompletedSteps, st.Error)
	}
	var printed dagflow.Status
	if err := json.Unmarshal(out.Bytes(), &printed); err != nil {
		t.Fatalf("output is not a status: %v\n%s", err, out.String())
	}
	results := map[string]string{
		"validate-order":    `{"amount":49.9,"valid":true}`,
		"charge-payment":    `{"amount":49.9,"chargeId":"ch_order_123"}`,
		"ship-order":        `{"trackingNumber":"TRK-order_123"}`,
		"send-confirmation": `{"sent":true,"to":"ada@example.com","trackingNumber":"TRK-order_123"}`,
	}
	for id, want := range results {
		var b bytes.Buffer
		if err := json.Compact(&b, printed.Results[id]); err != nil || b.String() != want {
			t.Errorf("%s result %s, want %s", id, printed.Results[id], want)
		}
	}
}

// The job handlers check signatures.
func TestJobsVerifySignatures(t *testing.T) {
	h := jobs([]byte("right"))
	body := []byte(`{"workflowId":"o","stepId":"ship-order","attempt":1,"context":{},"previousSteps":{}}`)
	for _, tc := range []struct {
		name string
		sign []byte
		want int
	}{
		{"unsigned", nil, http.StatusUnauthorized},
		{"wrong secret", []byte("wrong"), http.StatusUnauthorized},
		{"signed", []byte("right"), http.StatusOK},
	} {
		req := httptest.NewRequest("POST", "/jobs/ship-order", bytes.NewReader(body))
		if tc.sign != nil {
			req.Header.Set(httpstep.HeaderSignature, httpstep.Sign(tc.sign, time.Now(), body))
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("%s: status %d, want %d: %s", tc.name, rec.Code, tc.want, rec.Body)
		}
	}
}
