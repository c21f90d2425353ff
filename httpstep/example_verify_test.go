package httpstep_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/dagflow/dagflow/httpstep"
)

// A hand-written job handler that checks the engine's signature with Verify.
func ExampleVerify() {
	secret := []byte("whsec_example")

	job := func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := httpstep.Verify(r, secret); err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"success":false,"error":%q}`, err.Error())
			return
		}
		body, _ := io.ReadAll(r.Body) // Verify left the body readable
		var req httpstep.Request
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"success":true,"result":{"step":%q}}`, req.StepID)
	}

	body := `{"workflowId":"wf-1","stepId":"ship","attempt":1,"context":{},"previousSteps":{}}`
	for _, sig := range []string{
		httpstep.Sign(secret, time.Now(), []byte(body)),                 // genuine
		httpstep.Sign([]byte("wrong"), time.Now(), []byte(body)),        // forged
		httpstep.Sign(secret, time.Now().Add(-time.Hour), []byte(body)), // replayed
	} {
		req := httptest.NewRequest(http.MethodPost, "/jobs/ship", strings.NewReader(body))
		req.Header.Set(httpstep.HeaderSignature, sig)
		rec := httptest.NewRecorder()
		job(rec, req)
		fmt.Println(rec.Code, strings.TrimSpace(rec.Body.String()))
	}

	// The sentinel errors tell the failures apart.
	req := httptest.NewRequest(http.MethodPost, "/jobs/ship", strings.NewReader(body))
	fmt.Println(errors.Is(httpstep.Verify(req, secret), httpstep.ErrNoSignature))
	// Output:
	// 200 {"success":true,"result":{"step":"ship"}}
	// 401 {"success":false,"error":"httpstep: bad signature"}
	// 401 {"success":false,"error":"httpstep: signature timestamp outside tolerance: timestamp more than 5m0s in the past"}
	// true
}
