package dagflow_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
)

// problemsOf returns the problems of err, which must be a *ValidationError
// (or nil, for no problems).
func problemsOf(t *testing.T, err error) []dagflow.Problem {
	t.Helper()
	if err == nil {
		return nil
	}
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	return ve.Problems
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func retries(maxAttempts int, backoff dagflow.Backoff, initial, maxInterval float64) *dagflow.RetryConfig {
	return &dagflow.RetryConfig{MaxAttempts: maxAttempts, Backoff: backoff,
		InitialInterval: time.Duration(initial * float64(time.Second)), MaxInterval: time.Duration(maxInterval * float64(time.Second))}
}

// TestParseWorkflowFiles reads the DESIGN.md example and the hosted docs'
// patterns unchanged and checks every field of what comes out.
func TestParseWorkflowFiles(t *testing.T) {
	t.Parallel()
	shop := func(job string) string { return "https://shop.example.com/api/jobs/" + job }
	media := func(job string) string { return "https://media.example.com/api/jobs/" + job }
	travel := func(job string) string { return "https://travel.example.com/api/jobs/" + job }
	tests := []struct {
		file string
		want dagflow.Workflow
		// The DESIGN.md example shows url and handler side by side ("or:")
		// and depends on a step it does not list, so it reads but does not
		// validate.
		problems []dagflow.Problem
	}{
		{
			file: "order-saga.json",
			want: dagflow.Workflow{
				ID:            "order-saga",
				Saga:          true,
				Context:       json.RawMessage(`{"orderId":"order_123"}`),
				OnComplete:    "https://app/hooks/done",
				OnError:       "https://app/hooks/failed",
				Timeout:       86400 * time.Second,
				OnStepFailure: dagflow.FailWorkflow,
				Steps: []dagflow.Step{{
					ID:              "charge-payment",
					URL:             "https://app/api/jobs/charge-payment",
					Handler:         "charge",
					DependsOn:       []string{"reserve-inventory"},
					Parallel:        true,
					Retries:         retries(3, dagflow.Exponential, 1, 60),
					Timeout:         300 * time.Second,
					Compensation:    "https://app/api/jobs/refund-payment",
					AllowFailedDeps: false,
				}},
			},
			problems: []dagflow.Problem{
				{Path: "steps[0]", Message: "has both url and handler; a step is either an HTTP job (url) or a Go handler (handler)"},
				{Path: "steps[0].dependsOn[0]", Message: `unknown step "reserve-inventory"`},
			},
		},
		{
			file: "chain.json",
			want: dagflow.Workflow{
				ID:         "order-chain-1001",
				Context:    json.RawMessage(`{"orderId":"ord_1001","customer":{"id":"cus_42","email":"ada@example.com"},"items":[{"sku":"BOOK-1","qty":2},{"sku":"PEN-7","qty":1}],"total":42.5}`),
				OnComplete: "https://shop.example.com/hooks/workflow-complete",
				OnError:    "https://shop.example.com/hooks/workflow-failed",
				Steps: []dagflow.Step{
					{ID: "validate-order", URL: shop("validate-order")},
					{ID: "charge-payment", URL: shop("charge-payment"), DependsOn: []string{"validate-order"},
						Retries: retries(3, dagflow.Exponential, 2, 30), Timeout: 60 * time.Second},
					{ID: "ship-order", URL: shop("ship-order"), DependsOn: []string{"charge-payment"}},
					{ID: "send-confirmation", URL: shop("send-confirmation"), DependsOn: []string{"ship-order"},
						Retries: retries(5, dagflow.Fixed, 10, 0)},
				},
			},
		},
		{
			file: "fan-out-fan-in.json",
			want: dagflow.Workflow{
				ID:      "process-images-77",
				Context: json.RawMessage(`{"bucket":"uploads","key":"photos/77.jpg"}`),
				Timeout: 3600 * time.Second,
				Steps: []dagflow.Step{
					{ID: "fetch-image", URL: media("fetch-image")},
					{ID: "resize-thumbnail", URL: media("resize"), DependsOn: []string{"fetch-image"}, Parallel: true, Timeout: 120 * time.Second},
					{ID: "resize-medium", URL: media("resize"), DependsOn: []string{"fetch-image"}, Parallel: true, Timeout: 120 * time.Second},
					{ID: "resize-large", URL: media("resize"), DependsOn: []string{"fetch-image"}, Parallel: true, Timeout: 120 * time.Second},
					{ID: "extract-metadata", URL: media("extract-metadata"), DependsOn: []string{"fetch-image"}, Parallel: true},
					{ID: "publish", URL: media("publish"),
						DependsOn: []string{"resize-thumbnail", "resize-medium", "resize-large", "extract-metadata"}},
				},
			},
		},
		{
			file: "pipeline.json",
			want: dagflow.Workflow{
				ID:            "nightly-etl-2025-03-01",
				Context:       json.RawMessage(`{"date":"2025-03-01","source":"s3://raw-events/2025/03/01/","dryRun":false}`),
				OnComplete:    "/hooks/etl-done",
				OnError:       "/hooks/etl-failed",
				Timeout:       21600 * time.Second,
				OnStepFailure: dagflow.ContinueOnFailure,
				Steps: []dagflow.Step{
					{ID: "extract-events", URL: "/api/jobs/extract", Timeout: 1800 * time.Second, Retries: retries(4, dagflow.Linear, 30, 300)},
					{ID: "extract-users", URL: "/api/jobs/extract-users", Parallel: true},
					{ID: "clean-events", URL: "/api/jobs/clean", DependsOn: []string{"extract-events"}, Parallel: true},
					{ID: "dedupe-events", URL: "/api/jobs/dedupe", DependsOn: []string{"clean-events"}, Parallel: true},
					{ID: "enrich-events", URL: "/api/jobs/enrich", DependsOn: []string{"dedupe-events", "extract-users"}, Parallel: true},
					{ID: "aggregate-daily", URL: "/api/jobs/aggregate?window=day", DependsOn: []string{"enrich-events"}, Parallel: true},
					{ID: "aggregate-weekly", URL: "/api/jobs/aggregate?window=week", DependsOn: []string{"enrich-events"}, Parallel: true},
					{ID: "train-model", Handler: "train", DependsOn: []string{"aggregate-daily"}, Timeout: 7200 * time.Second, Parallel: true},
					{ID: "load-warehouse", URL: "https://warehouse.example.com/api/jobs/load", DependsOn: []string{"aggregate-daily", "aggregate-weekly"}},
					{ID: "report", URL: "/api/jobs/report", DependsOn: []string{"load-warehouse", "train-model"}},
					{ID: "notify-team", Handler: "notify", DependsOn: []string{"report"}, AllowFailedDeps: true},
				},
			},
		},
		{
			file: "saga.json",
			want: dagflow.Workflow{
				ID:            "book-trip-9",
				Saga:          true,
				Context:       json.RawMessage(`{"tripId":"trip_9","traveler":"Grace Hopper","from":"BOS","to":"SFO","nights":3}`),
				OnComplete:    "https://travel.example.com/hooks/booked",
				OnError:       "https://travel.example.com/hooks/booking-failed",
				Timeout:       900 * time.Second,
				OnStepFailure: dagflow.FailWorkflow,
				Steps: []dagflow.Step{
					{ID: "reserve-flight", URL: travel("reserve-flight"), Compensation: travel("cancel-flight"),
						Retries: &dagflow.RetryConfig{MaxAttempts: 3}},
					{ID: "reserve-hotel", URL: travel("reserve-hotel"), Compensation: travel("cancel-hotel"), Parallel: true},
					{ID: "reserve-car", Handler: "reserve-car", Compensation: "cancel-car", Parallel: true},
					{ID: "charge-card", URL: travel("charge-card"),
						DependsOn:    []string{"reserve-flight", "reserve-hotel", "reserve-car"},
						Compensation: travel("refund-card"),
						Retries:      retries(5, dagflow.Exponential, 1, 20), Timeout: 30 * time.Second},
					{ID: "send-itinerary", URL: travel("send-itinerary"), DependsOn: []string{"charge-card"}},
				},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			got, err := dagflow.ParseWorkflow(readTestdata(t, tc.file))
			if d := cmp.Diff(tc.problems, problemsOf(t, err)); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("workflow (-want +got):\n%s", d)
			}
			// What json.Marshal writes reads back the same.
			out, err := json.Marshal(&got)
			if err != nil {
				t.Fatal(err)
			}
			again, err := dagflow.ParseWorkflow(out)
			if d := cmp.Diff(tc.problems, problemsOf(t, err)); d != "" {
				t.Errorf("problems after a round trip (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.want, again); d != "" {
				t.Errorf("workflow after a round trip through %s (-want +got):\n%s", out, d)
			}
		})
	}
}

// TestParseErrors checks the problems found while reading JSON, each with
// its line and column (columns count bytes from 1).
func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		input string
		want  []dagflow.Problem
	}{
		{"empty input", "", []dagflow.Problem{
			{Message: "invalid JSON: the input is empty"}}},
		{"only white space", " \n\t\n", []dagflow.Problem{
			{Message: "invalid JSON: the input is empty"}}},
		{"trailing comma", "{\n  \"id\": \"w\",\n  \"steps\": [{\"id\": \"a\", \"handler\": \"h\"},]\n}", []dagflow.Problem{
			{Message: "invalid JSON at line 3, column 41: invalid character ']' looking for beginning of value"}}},
		{"trailing comma in object", `{"id": "w", "steps": [{"id": "a", "handler": "h"}],}`, []dagflow.Problem{
			{Message: "invalid JSON at line 1, column 52: invalid character '}' looking for beginning of object key string"}}},
		{"missing closing brace", "{\n  \"id\": \"w\",\n  \"steps\": [{\"id\": \"a\", \"handler\": \"h\"}]\n", []dagflow.Problem{
			{Message: "invalid JSON at line 4, column 1: unexpected end of input"}}},
		{"missing brace inside", `{"id": "w", "steps": [{"id": "a", "handler": "h"]}`, []dagflow.Problem{
			{Message: "invalid JSON at line 1, column 49: invalid character ']' after object key:value pair"}}},
		{"garbage after the object", "{\"id\": \"w\", \"steps\": [{\"id\": \"a\", \"handler\": \"h\"}]}\n  trailing", []dagflow.Problem{
			{Message: "invalid JSON at line 2, column 3: unexpected data after the workflow object"}}},
		{"second object", `{"id": "w"} {"id": "v"}`, []dagflow.Problem{
			{Message: "invalid JSON at line 1, column 13: unexpected data after the workflow object"}}},
		{"missing colon", "{\n\t\"id\" \"w\"\n}", []dagflow.Problem{
			{Message: "invalid JSON at line 2, column 7: invalid character '\"' after object key"}}},
		{"bad literal", `{"id": "w", "saga": tru}`, []dagflow.Problem{
			{Message: "invalid JSON at line 1, column 24: invalid character '}' in literal true (expecting 'e')"}}},
		{"single quotes", `{'id': 'w'}`, []dagflow.Problem{
			{Message: "invalid JSON at line 1, column 2: invalid character '\\'' looking for beginning of object key string"}}},
		{"not an object", `[{"id": "w"}]`, []dagflow.Problem{
			{Message: "a workflow must be a JSON object, not an array"}}},
		{"null", `null`, []dagflow.Problem{
			{Message: "a workflow must be a JSON object, not null"}}},
		{"step timeout is a string", `{
  "id": "typed",
  "steps": [
    {"id": "a", "handler": "h"},
    {"id": "b", "handler": "h"},
    {"id": "c", "handler": "h", "timeout": "300"}
  ]
}`, []dagflow.Problem{
			{Path: "steps[2].timeout", Message: "must be a number, not a string (line 6, column 44)"}}},
		{"unknown field with a suggestion", `{
  "id": "typo",
  "steps": [
    {"id": "a", "handler": "h"},
    {"id": "b", "handler": "h", "dependOn": ["a"]}
  ]
}`, []dagflow.Problem{
			{Path: "steps[1].dependOn", Message: `unknown field (did you mean "dependsOn"?) (line 5, column 33)`}}},
		{"unknown fields elsewhere", `{"id": "w", "Saga": true, "onCompleted": "https://x/",
"steps": [{"id": "a", "handler": "h", "retries": {"maxAttempt": 2, "jitter": true}}], "version": 2}`, []dagflow.Problem{
			{Path: "Saga", Message: `unknown field (did you mean "saga"?) (line 1, column 13)`},
			{Path: "onCompleted", Message: `unknown field (did you mean "onComplete"?) (line 1, column 27)`},
			{Path: "steps[0].retries.maxAttempt", Message: `unknown field (did you mean "maxAttempts"?) (line 2, column 51)`},
			{Path: "steps[0].retries.jitter", Message: `unknown field (line 2, column 68)`},
			{Path: "version", Message: `unknown field (line 2, column 87)`}}},
		{"case of a field", `{"ID": "w", "steps": [{"id": "a", "HANDLER": "h"}]}`, []dagflow.Problem{
			{Path: "ID", Message: `unknown field (did you mean "id"?) (line 1, column 2)`},
			{Path: "steps[0].HANDLER", Message: `unknown field (did you mean "handler"?) (line 1, column 35)`},
			// Without its handler the step has neither url nor handler.
			{Path: "id", Message: "is required"},
			{Path: "steps[0]", Message: "needs a url (an HTTP job handler), a handler (a Go handler registered on the engine), a workflow, a sleep or a waitForEvent"}}},
		{"duplicate keys", `{"id": "w",
 "steps": [{"id": "a", "handler": "h", "id": "b"}],
 "id": "v",
 "context": {"k": 1, "k": 2}}`, []dagflow.Problem{
			{Path: "steps[0].id", Message: "is given twice (line 2, column 40, and first at line 2, column 13)"},
			{Path: "id", Message: "is given twice (line 3, column 2, and first at line 1, column 2)"},
			{Path: "context.k", Message: "is given twice (line 4, column 22, and first at line 4, column 14)"}}},
		{"wrong types", `{"id": 7, "saga": "yes", "timeout": "1h", "onStepFailure": false, "context": [1],
"steps": [
  {"id": "a", "url": 5, "dependsOn": "b", "parallel": 1, "retries": {"maxAttempts": 2.5, "backoff": 3, "initialInterval": "1s"}},
  {"id": "b", "handler": "h", "dependsOn": [1, null], "retries": [], "allowFailedDeps": "no", "compensation": {}},
  "c",
  {"id": "d", "handler": "h", "timeout": 1e999, "retries": {"maxAttempts": 1e10}}
]}`, []dagflow.Problem{
			{Path: "id", Message: "must be a string, not a number (line 1, column 8)"},
			{Path: "saga", Message: "must be true or false, not a string (line 1, column 19)"},
			{Path: "timeout", Message: "must be a number, not a string (line 1, column 37)"},
			{Path: "onStepFailure", Message: "must be a string, not a boolean (line 1, column 60)"},
			{Path: "context", Message: "must be an object, not an array (line 1, column 78)"},
			{Path: "steps[0].url", Message: "must be a string, not a number (line 3, column 22)"},
			{Path: "steps[0].dependsOn", Message: "must be an array of step ids, not a string (line 3, column 38)"},
			{Path: "steps[0].parallel", Message: "must be true or false, not a number (line 3, column 55)"},
			{Path: "steps[0].retries.maxAttempts", Message: "must be a whole number in range, not 2.5 (line 3, column 85)"},
			{Path: "steps[0].retries.backoff", Message: "must be a string, not a number (line 3, column 101)"},
			{Path: "steps[0].retries.initialInterval", Message: "must be a number, not a string (line 3, column 123)"},
			{Path: "steps[1].dependsOn[0]", Message: "must be a string, not a number (line 4, column 45)"},
			{Path: "steps[1].retries", Message: "must be an object, not an array (line 4, column 66)"},
			{Path: "steps[1].allowFailedDeps", Message: "must be true or false, not a string (line 4, column 89)"},
			{Path: "steps[1].compensation", Message: "must be a string, not an object (line 4, column 111)"},
			{Path: "steps[2]", Message: "must be an object, not a string (line 5, column 3)"},
			{Path: "steps[3].timeout", Message: "number 1e999 is out of range (line 6, column 42)"},
			{Path: "steps[3].retries.maxAttempts", Message: "must be a whole number in range, not 1e10 (line 6, column 76)"},
			// Validation adds only what the JSON problems do not already
			// cover: steps[0] lost its url, and steps[1]'s null dependency
			// is empty.
			{Path: "steps[0]", Message: "needs a url (an HTTP job handler), a handler (a Go handler registered on the engine), a workflow, a sleep or a waitForEvent"},
			{Path: "steps[1].dependsOn[1]", Message: "is empty"}}},
		{"duplicate key in a large object", `{"id": "w", "steps": [{"id": "a", "handler": "h"}], "context": {` +
			`"k0": 0, "k1": 1, "k2": 2, "k3": 3, "k4": 4, "k5": 5, "k6": 6, "k7": 7, "k8": 8, "k9": 9, ` +
			`"k10": 10, "k11": 11, "k12": 12, "k13": 13, "k14": 14, "k15": 15, "k16": 16, "k17": 17, "k3": 3}}`, []dagflow.Problem{
			{Path: "context.k3", Message: "is given twice (line 1, column 243, and first at line 1, column 92)"}}},
		{"steps not an array", `{"id": "w", "steps": {"id": "a"}}`, []dagflow.Problem{
			{Path: "steps", Message: "must be an array, not an object (line 1, column 22)"}}},
		{"steps null", `{"id": "w", "steps": null}`, []dagflow.Problem{
			{Path: "steps", Message: "must be an array, not null (line 1, column 22)"}}},
		{"multi-byte text before the error", "{\"id\": \"wörkflow ✓\", \"timeout\": \"x\", \"steps\": [{\"id\": \"a\", \"handler\": \"h\"}]}", []dagflow.Problem{
			{Path: "timeout", Message: "must be a number, not a string (line 1, column 36)"}}},
		{"CRLF line ends", "{\r\n  \"id\": \"w\",\r\n  \"timeout\": true,\r\n  \"steps\": [{\"id\": \"a\", \"handler\": \"h\"}]\r\n}\r\n", []dagflow.Problem{
			{Path: "timeout", Message: "must be a number, not a boolean (line 3, column 14)"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := dagflow.ParseWorkflow([]byte(tc.input))
			if err == nil {
				t.Fatal("no error")
			}
			if d := cmp.Diff(tc.want, problemsOf(t, err)); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseByteOrderMark reads a file that an editor saved with a UTF-8 byte
// order mark, and counts columns after it as if it were not there.
func TestParseByteOrderMark(t *testing.T) {
	t.Parallel()
	data := append([]byte("\ufeff"), readTestdata(t, "chain.json")...)
	w, err := dagflow.ParseWorkflow(data)
	if err != nil || w.ID != "order-chain-1001" {
		t.Fatalf("ParseWorkflow = %q, %v", w.ID, err)
	}
	_, err = dagflow.ParseWorkflow([]byte("\ufeff{\"id\": 1}"))
	want := []dagflow.Problem{
		{Path: "id", Message: "must be a string, not a number (line 1, column 8)"},
		{Path: "steps", Message: "a workflow needs at least one step"},
	}
	if d := cmp.Diff(want, problemsOf(t, err)); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}

// TestParseDeepNesting feeds deeply nested input: the parser must refuse it
// with a clear error, not exhaust its stack.
func TestParseDeepNesting(t *testing.T) {
	t.Parallel()
	nested := func(depth int, closed bool) []byte {
		var b strings.Builder
		b.WriteString(`{"id": "deep", "steps": [{"id": "a", "handler": "h"}], "context": {"k": `)
		b.WriteString(strings.Repeat("[", depth))
		if closed {
			b.WriteString(strings.Repeat("]", depth))
			b.WriteString("}}")
		}
		return []byte(b.String())
	}
	const prefix = len(`{"id": "deep", "steps": [{"id": "a", "handler": "h"}], "context": {"k": `)
	tests := []struct {
		name   string
		input  []byte
		want   []dagflow.Problem
		wantOK bool
	}{
		{name: "shallow enough", input: nested(150, true), wantOK: true},
		{name: "too deep", input: nested(1000, true), want: []dagflow.Problem{{
			// The root object and the context are two levels; the 199th
			// bracket is the 201st level.
			Message: "invalid JSON at line 1, column " + strconv.Itoa(prefix+199) + ": objects and arrays nested more than 200 deep"}}},
		{name: "a million open brackets", input: nested(1_000_000, false), want: []dagflow.Problem{{
			Message: "invalid JSON at line 1, column " + strconv.Itoa(prefix+9999) + ": invalid character '[' exceeded max depth"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := dagflow.ParseWorkflow(tc.input)
			if tc.wantOK {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if d := cmp.Diff(tc.want, problemsOf(t, err)); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

// TestParseLeavesDefaultsZero checks that ParseWorkflow keeps what the file
// says: fields left out stay zero (meaning the documented defaults), and
// an explicit null reads as left out.
func TestParseLeavesDefaultsZero(t *testing.T) {
	t.Parallel()
	tests := []struct {
		input string
		want  dagflow.Workflow
	}{
		{`{"id": "min", "steps": [{"id": "a", "handler": "h"}]}`,
			dagflow.Workflow{ID: "min", Steps: []dagflow.Step{{ID: "a", Handler: "h"}}}},
		{`{"id": "nulls", "saga": null, "context": null, "onComplete": null, "timeout": null, "onStepFailure": null,
		  "steps": [{"id": "a", "handler": "h", "url": null, "dependsOn": null, "retries": null, "timeout": null,
		             "parallel": null, "compensation": null, "allowFailedDeps": null}]}`,
			dagflow.Workflow{ID: "nulls", Steps: []dagflow.Step{{ID: "a", Handler: "h"}}}},
		{`{"id": "empties", "context": {}, "steps": [{"id": "a", "handler": "h", "dependsOn": [], "retries": {}}]}`,
			dagflow.Workflow{ID: "empties", Context: json.RawMessage(`{}`),
				Steps: []dagflow.Step{{ID: "a", Handler: "h", Retries: &dagflow.RetryConfig{}}}}},
		{`{"id": "zeros", "timeout": 0, "steps": [{"id": "a", "handler": "h", "timeout": 0, "retries": {"maxAttempts": 0, "backoff": "", "initialInterval": 0, "maxInterval": 0}}]}`,
			dagflow.Workflow{ID: "zeros", Steps: []dagflow.Step{{ID: "a", Handler: "h", Retries: &dagflow.RetryConfig{}}}}},
	}
	for _, tc := range tests {
		got, err := dagflow.ParseWorkflow([]byte(tc.input))
		if err != nil {
			t.Errorf("ParseWorkflow(%s): %v", tc.input, err)
			continue
		}
		if d := cmp.Diff(tc.want, got); d != "" {
			t.Errorf("ParseWorkflow(%s) (-want +got):\n%s", tc.input, d)
		}
	}
}

// TestParseReportsEverythingTogether mixes JSON problems and validation
// problems: all come back in one error, the JSON ones first in the order of
// the input, and the same every time.
func TestParseReportsEverythingTogether(t *testing.T) {
	t.Parallel()
	input := []byte(`{
  "id": "mixed",
  "onStepFailure": "ignore",
  "steps": [
    {"id": "a", "handler": "h", "dependsOn": ["c"]},
    {"id": "b", "handler": "h", "dependsOn": ["a"], "timeout": "5"},
    {"id": "c", "handler": "h", "dependsOn": ["b"], "retries": {"backof": "fixed"}},
    {"id": "d", "url": "ftp://files/d", "id": "e", "dependsOn": ["proces-a"]}
  ]
}`)
	want := []dagflow.Problem{
		{Path: "steps[1].timeout", Message: "must be a number, not a string (line 6, column 64)"},
		{Path: "steps[2].retries.backof", Message: `unknown field (did you mean "backoff"?) (line 7, column 65)`},
		{Path: "steps[3].id", Message: "is given twice (line 8, column 41, and first at line 8, column 6)"},
		{Path: "onStepFailure", Message: `must be "fail" or "continue", not "ignore"`},
		{Path: "steps[3].url", Message: `has scheme "ftp"; only http and https are supported`},
		{Path: "steps[3].dependsOn[0]", Message: `unknown step "proces-a"`},
		{Message: "cycle: a -> b -> c -> a"},
	}
	for range 3 {
		_, err := dagflow.ParseWorkflow(input)
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("err = %v, want a *ValidationError", err)
		}
		if ve.WorkflowID != "mixed" {
			t.Errorf("WorkflowID = %q", ve.WorkflowID)
		}
		if d := cmp.Diff(want, ve.Problems); d != "" {
			t.Fatalf("problems (-want +got):\n%s", d)
		}
	}
}

// BenchmarkParseWorkflow10k reads a 10,000-step workflow (about 3
// dependencies a step, indented as people write it) and validates it.
func BenchmarkParseWorkflow10k(b *testing.B) {
	b.Logf("seed %d", benchSeed)
	w := randomDAG(rand.New(rand.NewPCG(benchSeed, 0)), 10_000, 3)
	w.Context = json.RawMessage(`{"orderId":"order_123","items":[1,2,3]}`)
	for i := range w.Steps {
		if i%2 == 0 {
			w.Steps[i].Handler = ""
			w.Steps[i].URL = "https://app.example.com/api/jobs/" + w.Steps[i].ID
			w.Steps[i].Retries = &dagflow.RetryConfig{MaxAttempts: 3, Backoff: dagflow.Linear, InitialInterval: 500 * time.Millisecond}
		}
	}
	data, err := json.MarshalIndent(&w, "", "  ")
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := dagflow.ParseWorkflow(data); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseInvalidUTF8: strings that are not valid UTF-8 are reported with
// their place, not made U+FFFD silently; so is a context that holds one.
func TestParseInvalidUTF8(t *testing.T) {
	t.Parallel()
	in := "{\"id\": \"x\xff\",\n \"context\": {\"a\": \"\xc3\"},\n \"steps\": [{\"id\": \"s\xfe\", \"handler\": \"h\"}]}"
	_, err := dagflow.ParseWorkflow([]byte(in))
	var ve *dagflow.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("ParseWorkflow: %v, want a *ValidationError", err)
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	want := []string{
		"id: is not valid UTF-8 (line 1, column 8)",
		"steps[0].id: is not valid UTF-8 (line 3, column 19)",
		"context: is not valid UTF-8",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}
