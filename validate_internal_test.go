package dagflow

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateNormalized checks the defaults that normalized fills in, on
// which Create's "same spec" comparison rests.
func TestValidateNormalized(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Workflow
		want Workflow
	}{
		{
			name: "every default",
			in:   Workflow{ID: "w", Steps: []Step{{ID: "a", Handler: "h"}}},
			want: Workflow{ID: "w", Context: json.RawMessage(`{}`), Timeout: 86400, OnStepFailure: FailWorkflow,
				Steps: []Step{{ID: "a", Handler: "h", Timeout: 300,
					Retries: &RetryConfig{MaxAttempts: 1, Backoff: Exponential, InitialInterval: 1, MaxInterval: 60}}}},
		},
		{
			name: "empty retries and null context",
			in: Workflow{ID: "w", Context: json.RawMessage(` null `),
				Steps: []Step{{ID: "a", URL: "https://app/a", Retries: &RetryConfig{}, DependsOn: []string{}}}},
			want: Workflow{ID: "w", Context: json.RawMessage(`{}`), Timeout: 86400, OnStepFailure: FailWorkflow,
				Steps: []Step{{ID: "a", URL: "https://app/a", Timeout: 300,
					Retries: &RetryConfig{MaxAttempts: 1, Backoff: Exponential, InitialInterval: 1, MaxInterval: 60}}}},
		},
		{
			name: "maxInterval follows a large initialInterval",
			in:   Workflow{ID: "w", Steps: []Step{{ID: "a", Handler: "h", Retries: &RetryConfig{InitialInterval: 120}}}},
			want: Workflow{ID: "w", Context: json.RawMessage(`{}`), Timeout: 86400, OnStepFailure: FailWorkflow,
				Steps: []Step{{ID: "a", Handler: "h", Timeout: 300,
					Retries: &RetryConfig{MaxAttempts: 1, Backoff: Exponential, InitialInterval: 120, MaxInterval: 120}}}},
		},
		{
			name: "given values are kept, context compacted",
			in: Workflow{ID: "w", Saga: true, Context: json.RawMessage("{\n  \"a\": [1, 2]\n}"), Timeout: 60,
				OnStepFailure: ContinueOnFailure,
				Steps: []Step{
					{ID: "a", Handler: "h", Timeout: 5, Compensation: "undo",
						Retries: &RetryConfig{MaxAttempts: 4, Backoff: Linear, InitialInterval: 0.5, MaxInterval: 2}},
					{ID: "b", URL: "/b", DependsOn: []string{"a"}, Parallel: true, AllowFailedDeps: true},
				}},
			want: Workflow{ID: "w", Saga: true, Context: json.RawMessage(`{"a":[1,2]}`), Timeout: 60,
				OnStepFailure: ContinueOnFailure,
				Steps: []Step{
					{ID: "a", Handler: "h", Timeout: 5, Compensation: "undo",
						Retries: &RetryConfig{MaxAttempts: 4, Backoff: Linear, InitialInterval: 0.5, MaxInterval: 2}},
					{ID: "b", URL: "/b", DependsOn: []string{"a"}, Parallel: true, AllowFailedDeps: true, Timeout: 300,
						Retries: &RetryConfig{MaxAttempts: 1, Backoff: Exponential, InitialInterval: 1, MaxInterval: 60}},
				}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.in.Validate(); err != nil {
				t.Fatal(err)
			}
			before, err := json.Marshal(&tc.in)
			if err != nil {
				t.Fatal(err)
			}
			got := tc.in.normalized()
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("normalized (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tc.want, got.normalized()); d != "" {
				t.Errorf("normalized twice (-want +got):\n%s", d)
			}
			if after, _ := json.Marshal(&tc.in); string(after) != string(before) {
				t.Errorf("normalized changed its receiver:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// TestValidateNormalizedSameSpec checks that a workflow file and the Go
// literal that spells out its defaults normalize to the same spec.
func TestValidateNormalizedSameSpec(t *testing.T) {
	t.Parallel()
	parsed, err := ParseWorkflow([]byte(`{
		"id": "w",
		"context": { "orderId": "order_123" },
		"steps": [ {"id": "a", "handler": "h", "dependsOn": []} ]
	}`))
	if err != nil {
		t.Fatal(err)
	}
	literal := Workflow{ID: "w", Context: json.RawMessage(`{"orderId":"order_123"}`), Timeout: DefaultWorkflowTimeout,
		OnStepFailure: FailWorkflow, Steps: []Step{{ID: "a", Handler: "h", Timeout: DefaultStepTimeout,
			Retries: &RetryConfig{MaxAttempts: DefaultMaxAttempts, Backoff: Exponential,
				InitialInterval: DefaultInitialInterval, MaxInterval: DefaultMaxInterval}}}}
	a, b := parsed.normalized(), literal.normalized()
	ja, _ := json.Marshal(&a)
	jb, _ := json.Marshal(&b)
	if string(ja) != string(jb) {
		t.Errorf("specs differ:\nparsed  %s\nliteral %s", ja, jb)
	}
}
