package dagflow_test

import (
	"encoding/json"
	"errors"
	"fmt"

	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/dagflow/dagflow"
)

// hstep is a handler step with dependencies.
func hstep(id string, deps ...string) dagflow.Step {
	return dagflow.Step{ID: id, Handler: "h", DependsOn: deps}
}

// flow is a workflow with the given steps and nothing else.
func flow(steps ...dagflow.Step) dagflow.Workflow {
	return dagflow.Workflow{ID: "w", Steps: steps}
}

// TestValidateProblems has one row per kind of problem Validate reports, on
// workflows written as Go literals.
func TestValidateProblems(t *testing.T) {
	t.Parallel()
	with := func(f func(w *dagflow.Workflow)) dagflow.Workflow {
		w := flow(hstep("a"))
		f(&w)
		return w
	}
	withStep := func(f func(s *dagflow.Step)) dagflow.Workflow {
		s := hstep("a")
		f(&s)
		return flow(s)
	}
	p := func(path, msg string) dagflow.Problem { return dagflow.Problem{Path: path, Message: msg} }
	long := strings.Repeat("x", 257)
	tests := []struct {
		name string
		w    dagflow.Workflow
		want []dagflow.Problem
	}{
		// Workflow fields.
		{"missing workflow id", with(func(w *dagflow.Workflow) { w.ID = "" }),
			[]dagflow.Problem{p("id", "is required")}},
		{"over-long workflow id", with(func(w *dagflow.Workflow) { w.ID = long }),
			[]dagflow.Problem{p("id", "is 257 bytes long; the limit is 256")}},
		{"256-byte workflow id is fine", with(func(w *dagflow.Workflow) { w.ID = long[:256] }), nil},
		// A slash would make idempotency keys ambiguous: workflow "a/b"
		// step "compensation" and workflow "a" step "b"'s compensation
		// would share "a/b/compensation".
		{"workflow id with a slash", with(func(w *dagflow.Workflow) { w.ID = "orders/2025/1" }),
			[]dagflow.Problem{p("id", `"orders/2025/1" contains "/", which the idempotency key <workflowId>/<stepId> reserves`)}},
		{"workflow id with a control character", with(func(w *dagflow.Workflow) { w.ID = "w\n1" }),
			[]dagflow.Problem{p("id", `"w\n1" contains a control character`)}},
		{"workflow id not UTF-8", with(func(w *dagflow.Workflow) { w.ID = "w\xff" }),
			[]dagflow.Problem{p("id", "is not valid UTF-8")}},
		{"no steps", dagflow.Workflow{ID: "w"},
			[]dagflow.Problem{p("steps", "a workflow needs at least one step")}},
		{"empty steps", dagflow.Workflow{ID: "w", Steps: []dagflow.Step{}},
			[]dagflow.Problem{p("steps", "a workflow needs at least one step")}},
		{"unknown onStepFailure", with(func(w *dagflow.Workflow) { w.OnStepFailure = "ignore" }),
			[]dagflow.Problem{p("onStepFailure", `must be "fail" or "continue", not "ignore"`)}},
		{"onStepFailure is case-sensitive", with(func(w *dagflow.Workflow) { w.OnStepFailure = "Fail" }),
			[]dagflow.Problem{p("onStepFailure", `must be "fail" or "continue", not "Fail"`)}},
		{"negative workflow timeout", with(func(w *dagflow.Workflow) { w.Timeout = -time.Second }),
			[]dagflow.Problem{p("timeout", "must not be negative, got -1s")}},
		{"workflow timeout under a millisecond", with(func(w *dagflow.Workflow) { w.Timeout = 100 * time.Nanosecond }),
			[]dagflow.Problem{p("timeout", "must be at least 1ms, got 100ns")}},
		{"absurd workflow timeout", with(func(w *dagflow.Workflow) { w.Timeout = 20 * 365 * 24 * time.Hour }),
			[]dagflow.Problem{p("timeout", "175200h0m0s is more than ten years")}},
		{"webhooks with bad schemes", with(func(w *dagflow.Workflow) { w.OnComplete, w.OnError = "ftp://app/done", "mailto:ops@example.com" }),
			[]dagflow.Problem{
				p("onComplete", `has scheme "ftp"; only http and https are supported`),
				p("onError", `has scheme "mailto"; only http and https are supported`)}},
		{"relative webhooks are fine without an engine", with(func(w *dagflow.Workflow) { w.OnComplete, w.OnError = "/hooks/done", "hooks/failed" }), nil},

		// Step ids.
		{"empty step id", flow(hstep("")),
			[]dagflow.Problem{p("steps[0].id", "is required")}},
		{"duplicate step ids", flow(hstep("a"), hstep("b"), hstep("a"), hstep("a")),
			[]dagflow.Problem{
				p("steps[2].id", `duplicate step id "a" (also steps[0])`),
				p("steps[3].id", `duplicate step id "a" (also steps[0])`)}},
		{"over-long step id", flow(hstep(long)),
			[]dagflow.Problem{p("steps[0].id", "is 257 bytes long; the limit is 256")}},
		{"control characters in step ids", flow(hstep("a\x00"), hstep("b\tc"), hstep("d\u0085e"), hstep("\x7f")),
			[]dagflow.Problem{
				p("steps[0].id", `"a\x00" contains a control character`),
				p("steps[1].id", `"b\tc" contains a control character`),
				p("steps[2].id", `"d\u0085e" contains a control character`),
				p("steps[3].id", `"\x7f" contains a control character`)}},
		{"slash in a step id", flow(hstep("charge/refund")),
			[]dagflow.Problem{p("steps[0].id", `"charge/refund" contains "/", which the idempotency key <workflowId>/<stepId> reserves`)}},
		{"white space around a step id", flow(hstep(" a"), hstep("b\u00a0")),
			[]dagflow.Problem{
				p("steps[0].id", `" a" has leading or trailing white space`),
				p("steps[1].id", `"b\u00a0" has leading or trailing white space`)}},
		{"step id not UTF-8", flow(hstep("\xc3(")),
			[]dagflow.Problem{p("steps[0].id", "is not valid UTF-8")}},
		{"unicode step ids are fine", flow(hstep("größe"), hstep("サイズ", "größe")), nil},

		// url and handler.
		{"both url and handler", withStep(func(s *dagflow.Step) { s.URL = "https://app/jobs/a" }),
			[]dagflow.Problem{p("steps[0]", "has both url and handler; a step is either an HTTP job (url) or a Go handler (handler)")}},
		{"neither url nor handler", flow(dagflow.Step{ID: "a"}),
			[]dagflow.Problem{p("steps[0]", "needs a url (an HTTP job handler), a handler (a Go handler registered on the engine), a workflow, a sleep or a waitForEvent")}},
		{"bad URLs", flow(
			dagflow.Step{ID: "ftp", URL: "ftp://files.example.com/job"},
			dagflow.Step{ID: "file", URL: "file:///etc/passwd"},
			dagflow.Step{ID: "js", URL: "javascript:alert(1)"},
			dagflow.Step{ID: "nohost", URL: "https:///jobs/a"},
			dagflow.Step{ID: "noscheme", URL: "//app.example.com/jobs/a"},
			dagflow.Step{ID: "space", URL: "https://app example.com/jobs"},
			dagflow.Step{ID: "ctl", URL: "https://app/jobs/\n"},
			dagflow.Step{ID: "upper", URL: "HTTPS://APP/jobs"},
			dagflow.Step{ID: "relative", URL: "/api/jobs/a"},
			dagflow.Step{ID: "port", URL: "http://127.0.0.1:8080/jobs?x=1#f"},
		),
			[]dagflow.Problem{
				p("steps[0].url", `has scheme "ftp"; only http and https are supported`),
				p("steps[1].url", `has scheme "file"; only http and https are supported`),
				p("steps[2].url", `has scheme "javascript"; only http and https are supported`),
				p("steps[3].url", "has no host"),
				p("steps[4].url", "has a host but no scheme"),
				p("steps[5].url", `is not a valid URL: invalid character " " in host name`),
				p("steps[6].url", "is not a valid URL: net/url: invalid control character in URL"),
			}},

		// Dependencies.
		{"unknown dependency with a suggestion", flow(hstep("process-a"), hstep("process-b"), hstep("merge"), hstep("report", "proces-a")),
			[]dagflow.Problem{p("steps[3].dependsOn[0]", `unknown step "proces-a" (did you mean "process-a"?)`)}},
		{"unknown dependency without a suggestion", flow(hstep("a"), hstep("b", "zzz")),
			[]dagflow.Problem{p("steps[1].dependsOn[0]", `unknown step "zzz"`)}},
		{"no suggestion of an invalid id", flow(hstep("proc/a"), hstep("b", "proc-a")),
			[]dagflow.Problem{
				p("steps[0].id", `"proc/a" contains "/", which the idempotency key <workflowId>/<stepId> reserves`),
				p("steps[1].dependsOn[0]", `unknown step "proc-a"`)}},
		{"empty dependency", flow(hstep("a"), hstep("b", "")),
			[]dagflow.Problem{p("steps[1].dependsOn[0]", "is empty")}},
		{"self-dependency", flow(hstep("a", "a")),
			[]dagflow.Problem{p("steps[0].dependsOn[0]", `step "a" depends on itself`)}},
		{"duplicate dependsOn entry", flow(hstep("a"), hstep("b"), hstep("c", "a", "b", "a")),
			[]dagflow.Problem{p("steps[2].dependsOn[2]", `lists "a" twice`)}},
		{"dependency on a duplicated id is not a cycle", flow(hstep("a"), hstep("a", "a")),
			[]dagflow.Problem{
				p("steps[1].id", `duplicate step id "a" (also steps[0])`),
				p("steps[1].dependsOn[0]", `step "a" depends on itself`)}},

		// Retries.
		{"negative maxAttempts", withStep(func(s *dagflow.Step) { s.Retries = &dagflow.RetryConfig{MaxAttempts: -1} }),
			[]dagflow.Problem{p("steps[0].retries.maxAttempts", "must be at least 1, got -1")}},
		{"unknown backoff", withStep(func(s *dagflow.Step) { s.Retries = &dagflow.RetryConfig{Backoff: "random"} }),
			[]dagflow.Problem{p("steps[0].retries.backoff", `must be "exponential", "linear" or "fixed", not "random"`)}},
		{"negative intervals", withStep(func(s *dagflow.Step) {
			s.Retries = &dagflow.RetryConfig{InitialInterval: -time.Second, MaxInterval: -2 * time.Second}
		}),
			[]dagflow.Problem{
				p("steps[0].retries.initialInterval", "must not be negative, got -1s"),
				p("steps[0].retries.maxInterval", "must not be negative, got -2s")}},
		{"maxInterval below initialInterval", withStep(func(s *dagflow.Step) {
			s.Retries = &dagflow.RetryConfig{InitialInterval: 10 * time.Second, MaxInterval: 5 * time.Second}
		}),
			[]dagflow.Problem{p("steps[0].retries.maxInterval", "5s is less than initialInterval 10s")}},
		{"maxInterval below the default initialInterval", withStep(func(s *dagflow.Step) {
			s.Retries = &dagflow.RetryConfig{MaxInterval: 500 * time.Millisecond}
		}),
			[]dagflow.Problem{p("steps[0].retries.maxInterval", "500ms is less than the default initialInterval 1s")}},
		{"initialInterval above the default maxInterval is fine", withStep(func(s *dagflow.Step) {
			s.Retries = &dagflow.RetryConfig{InitialInterval: 120 * time.Second}
		}), nil},
		{"maxInterval equal to initialInterval is fine", withStep(func(s *dagflow.Step) {
			s.Retries = &dagflow.RetryConfig{MaxAttempts: 3, Backoff: dagflow.Fixed, InitialInterval: 5 * time.Second, MaxInterval: 5 * time.Second}
		}), nil},

		// Timeouts.
		{"negative step timeout", withStep(func(s *dagflow.Step) { s.Timeout = -500 * time.Millisecond }),
			[]dagflow.Problem{p("steps[0].timeout", "must not be negative, got -500ms")}},
		{"step timeout of 1e-7 s", withStep(func(s *dagflow.Step) { s.Timeout = 100 * time.Nanosecond }),
			[]dagflow.Problem{p("steps[0].timeout", "must be at least 1ms, got 100ns")}},

		// Sagas and failure policy.
		{"compensation on a non-saga workflow", withStep(func(s *dagflow.Step) { s.Compensation = "undo-a" }),
			[]dagflow.Problem{p("steps[0].compensation", `only saga workflows compensate steps; set "saga": true or remove the compensation`)}},
		{"compensation URL with a bad scheme", dagflow.Workflow{ID: "w", Saga: true, Steps: []dagflow.Step{
			{ID: "a", URL: "https://app/jobs/a", Compensation: "ftp://app/jobs/undo-a"}}},
			[]dagflow.Problem{p("steps[0].compensation", `has scheme "ftp"; only http and https are supported`)}},
		{"compensation handler on a saga is fine", dagflow.Workflow{ID: "w", Saga: true, Steps: []dagflow.Step{
			{ID: "a", Handler: "h", Compensation: "undo-a"}}}, nil},
		{"allowFailedDeps without continue", withStep(func(s *dagflow.Step) { s.AllowFailedDeps = true }),
			[]dagflow.Problem{p("steps[0].allowFailedDeps", `has no effect unless the workflow's onStepFailure is "continue"`)}},
		{"allowFailedDeps with fail", dagflow.Workflow{ID: "w", OnStepFailure: dagflow.FailWorkflow, Steps: []dagflow.Step{
			{ID: "a", Handler: "h", AllowFailedDeps: true}}},
			[]dagflow.Problem{p("steps[0].allowFailedDeps", `has no effect unless the workflow's onStepFailure is "continue"`)}},
		{"allowFailedDeps with continue is fine", dagflow.Workflow{ID: "w", OnStepFailure: dagflow.ContinueOnFailure, Steps: []dagflow.Step{
			{ID: "a", Handler: "h"}, {ID: "b", Handler: "h", DependsOn: []string{"a"}, AllowFailedDeps: true}}}, nil},

		// Context.
		{"context is an array", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage(`[1, 2]`) }),
			[]dagflow.Problem{p("context", "must be a JSON object, not an array")}},
		{"context is a string", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage(`"order_123"`) }),
			[]dagflow.Problem{p("context", "must be a JSON object, not a string")}},
		{"context is a number", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage(` 42 `) }),
			[]dagflow.Problem{p("context", "must be a JSON object, not a number")}},
		{"context is a boolean", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage(`true`) }),
			[]dagflow.Problem{p("context", "must be a JSON object, not a boolean")}},
		{"context is not JSON", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage(`{"orderId": }`) }),
			[]dagflow.Problem{p("context", "is not valid JSON")}},
		{"context null is fine", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage(`null`) }), nil},
		{"context with white space is fine", with(func(w *dagflow.Workflow) { w.Context = json.RawMessage("\n {\"a\": [1]}\n") }), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.w.Validate()
			if d := cmp.Diff(tc.want, problemsOf(t, err)); d != "" {
				t.Errorf("problems (-want +got):\n%s", d)
			}
		})
	}
}

// TestValidateDidYouMean checks the message of the design document, as
// Problem.String prints it.
func TestValidateDidYouMean(t *testing.T) {
	t.Parallel()
	w := flow(hstep("process-a"), hstep("process-b"), hstep("merge", "process-a", "process-b"), hstep("report", "proces-a"))
	var ve *dagflow.ValidationError
	if err := w.Validate(); !errors.As(err, &ve) || len(ve.Problems) != 1 {
		t.Fatalf("Validate() = %v", err)
	}
	const want = `steps[3].dependsOn[0]: unknown step "proces-a" (did you mean "process-a"?)`
	if got := ve.Problems[0].String(); got != want {
		t.Errorf("Problem.String() = %s, want %s", got, want)
	}
	if got, want := ve.Error(), `invalid workflow "w": `+want; got != want {
		t.Errorf("Error() = %s, want %s", got, want)
	}
}

// TestValidateCycles checks that cycles are named as a path in the order
// the steps would run, starting at the cycle's first step in the workflow.
func TestValidateCycles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		steps []dagflow.Step
		want  []string
	}{
		{"three steps", []dagflow.Step{hstep("a", "c"), hstep("b", "a"), hstep("c", "b")},
			[]string{"cycle: a -> b -> c -> a"}},
		{"declared in another order", []dagflow.Step{hstep("c", "b"), hstep("b", "a"), hstep("a", "c")},
			[]string{"cycle: c -> a -> b -> c"}},
		{"two steps", []dagflow.Step{hstep("x", "y"), hstep("y", "x")},
			[]string{"cycle: x -> y -> x"}},
		{"entered from outside", []dagflow.Step{hstep("start", "q"), hstep("p", "q"), hstep("q", "p")},
			[]string{"cycle: p -> q -> p"}},
		{"several cycles at once", []dagflow.Step{
			hstep("a", "b"), hstep("b", "a"),
			hstep("ok"),
			hstep("c", "e"), hstep("d", "c"), hstep("e", "d"),
			hstep("f", "ok", "g"), hstep("g", "f"),
		}, []string{"cycle: a -> b -> a", "cycle: c -> d -> e -> c", "cycle: f -> g -> f"}},
		{"a cycle behind another", []dagflow.Step{hstep("a", "b"), hstep("b", "a", "c"), hstep("c", "d"), hstep("d", "c")},
			[]string{"cycle: c -> d -> c", "cycle: a -> b -> a"}},
		{"self-dependency is not a cycle", []dagflow.Step{hstep("a", "a"), hstep("b", "a")}, nil},
		{"diamond is no cycle", []dagflow.Step{hstep("a"), hstep("b", "a"), hstep("c", "a"), hstep("d", "b", "c")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w := flow(tc.steps...)
			var got []string
			for _, p := range problemsOf(t, w.Validate()) {
				if strings.HasPrefix(p.Message, "cycle: ") {
					if p.Path != "" {
						t.Errorf("cycle problem has path %q", p.Path)
					}
					got = append(got, p.String())
				}
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("cycles (-want +got):\n%s", d)
			}
		})
	}
}

// TestValidateReportsEverythingTogether builds a workflow with a problem of
// almost every kind and checks that all come back in one
// *ValidationError, in the same order each time.
func TestValidateReportsEverythingTogether(t *testing.T) {
	t.Parallel()
	w := dagflow.Workflow{
		ID:            "",
		Context:       json.RawMessage(`["not", "an", "object"]`),
		OnComplete:    "ftp://app/done",
		Timeout:       -5 * time.Second,
		OnStepFailure: "retry",
		Steps: []dagflow.Step{
			{ID: "process-a", Handler: "h", DependsOn: []string{"merge"}},
			{ID: "process-a", URL: "https://app/jobs/a"},
			{ID: "bad/id", URL: "gopher://app/jobs/x", Handler: "h"},
			{ID: "report", DependsOn: []string{"proces-a", "report", "", "merge", "merge"},
				Retries: &dagflow.RetryConfig{MaxAttempts: -2, Backoff: "cubic", InitialInterval: 10 * time.Second, MaxInterval: 1 * time.Second},
				Timeout: -time.Second, Compensation: "undo", AllowFailedDeps: true},
			{ID: "merge", Handler: "h", DependsOn: []string{"process-a"}},
		},
	}
	want := []string{
		"id: is required",
		"timeout: must not be negative, got -5s",
		`onStepFailure: must be "fail" or "continue", not "retry"`,
		"context: must be a JSON object, not an array",
		`onComplete: has scheme "ftp"; only http and https are supported`,
		`steps[1].id: duplicate step id "process-a" (also steps[0])`,
		`steps[2].id: "bad/id" contains "/", which the idempotency key <workflowId>/<stepId> reserves`,
		"steps[2]: has both url and handler; a step is either an HTTP job (url) or a Go handler (handler)",
		"steps[3]: needs a url (an HTTP job handler), a handler (a Go handler registered on the engine), a workflow, a sleep or a waitForEvent",
		`steps[3].dependsOn[0]: unknown step "proces-a" (did you mean "process-a"?)`,
		`steps[3].dependsOn[1]: step "report" depends on itself`,
		"steps[3].dependsOn[2]: is empty",
		`steps[3].dependsOn[4]: lists "merge" twice`,
		"steps[3].retries.maxAttempts: must be at least 1, got -2",
		`steps[3].retries.backoff: must be "exponential", "linear" or "fixed", not "cubic"`,
		"steps[3].retries.maxInterval: 1s is less than initialInterval 10s",
		"steps[3].timeout: must not be negative, got -1s",
		`steps[3].compensation: only saga workflows compensate steps; set "saga": true or remove the compensation`,
		`steps[3].allowFailedDeps: has no effect unless the workflow's onStepFailure is "continue"`,
		"cycle: process-a -> merge -> process-a",
	}
	for range 3 {
		err := w.Validate()
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) {
			t.Fatalf("Validate() = %v, want a *ValidationError", err)
		}
		var got []string
		for _, p := range ve.Problems {
			got = append(got, p.String())
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("problems (-want +got):\n%s", d)
		}
		if msg := err.Error(); !strings.HasPrefix(msg, "invalid workflow: 20 problems:\n\t") ||
			!strings.Contains(msg, "\n\t"+want[len(want)-1]) {
			t.Errorf("Error() = %s", msg)
		}
	}
	// A wrapped ValidationError is still found.
	if err := fmt.Errorf("loading: %w", w.Validate()); !errors.As(err, new(*dagflow.ValidationError)) {
		t.Errorf("errors.As does not find a wrapped *ValidationError")
	}
}

// TestValidateProblemsInOrder: problems come in the order of the
// workflow, the workflow's own fields first, then step by step, then
// cycles, whatever kind of problem each is.
func TestValidateProblemsInOrder(t *testing.T) {
	t.Parallel()
	w := dagflow.Workflow{ID: "order", Steps: []dagflow.Step{
		{ID: "a", Handler: "h", DependsOn: []string{"c"}},
		{ID: "b", Handler: "h", DependsOn: []string{"nope"}},
		{ID: "a", Handler: "h"},
		{ID: "c", Handler: "h", DependsOn: []string{"a"}, Timeout: -1},
		{ID: "", Handler: "h"},
	}, Timeout: -1}
	want := []string{
		"timeout: must not be negative, got -1ns",
		`steps[1].dependsOn[0]: unknown step "nope"`,
		`steps[2].id: duplicate step id "a" (also steps[0])`,
		"steps[3].timeout: must not be negative, got -1ns",
		"steps[4].id: is required",
		"cycle: a -> c -> a",
	}
	var ve *dagflow.ValidationError
	if !errors.As(w.Validate(), &ve) {
		t.Fatal("no *ValidationError")
	}
	var got []string
	for _, p := range ve.Problems {
		got = append(got, p.String())
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("problems (-want +got):\n%s", d)
	}
}

// TestValidateContextKinds checks a context that is not a JSON object both
// through ParseWorkflow and through Validate on a Go literal.
func TestValidateContextKinds(t *testing.T) {
	t.Parallel()
	tests := []struct {
		context string
		kind    string
	}{
		{`["order_123"]`, "an array"},
		{`"order_123"`, "a string"},
		{`123`, "a number"},
		{`-1.5e3`, "a number"},
		{`false`, "a boolean"},
	}
	for _, tc := range tests {
		input := `{"id": "w", "context": ` + tc.context + `, "steps": [{"id": "a", "handler": "h"}]}`
		_, err := dagflow.ParseWorkflow([]byte(input))
		want := []dagflow.Problem{{Path: "context", Message: "must be an object, not " + tc.kind + " (line 1, column 24)"}}
		if d := cmp.Diff(want, problemsOf(t, err)); d != "" {
			t.Errorf("ParseWorkflow(%s) (-want +got):\n%s", input, d)
		}
		w := flow(hstep("a"))
		w.Context = json.RawMessage(tc.context)
		want = []dagflow.Problem{{Path: "context", Message: "must be a JSON object, not " + tc.kind}}
		if d := cmp.Diff(want, problemsOf(t, w.Validate())); d != "" {
			t.Errorf("Validate with context %s (-want +got):\n%s", tc.context, d)
		}
	}
}

// TestValidateZeroValues checks that every optional field may be left at its
// zero value, which means its default.
func TestValidateZeroValues(t *testing.T) {
	t.Parallel()
	for _, w := range []dagflow.Workflow{
		{ID: "w", Steps: []dagflow.Step{{ID: "a", Handler: "h"}}},
		{ID: "w", Steps: []dagflow.Step{{ID: "a", URL: "https://app/jobs/a", Retries: &dagflow.RetryConfig{}}}},
		{ID: "w", Steps: []dagflow.Step{{ID: "a", URL: "jobs/a", DependsOn: []string{}}}},
		{ID: "w", Context: json.RawMessage{}, Steps: []dagflow.Step{{ID: "a", Handler: "h"}}},
	} {
		if err := w.Validate(); err != nil {
			t.Errorf("Validate(%+v) = %v", w, err)
		}
	}
	// Validate does not fill in defaults: it leaves the workflow alone.
	w := dagflow.Workflow{ID: "w", Steps: []dagflow.Step{{ID: "a", Handler: "h", Retries: &dagflow.RetryConfig{}}}}
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(dagflow.Workflow{ID: "w", Steps: []dagflow.Step{{ID: "a", Handler: "h", Retries: &dagflow.RetryConfig{}}}}, w); d != "" {
		t.Errorf("Validate changed the workflow (-want +got):\n%s", d)
	}
}

// randomDAG is a workflow of n steps whose dependencies all point to
// earlier steps in a random order, so it is acyclic, with about deps
// dependencies a step. Step ids are shuffled so that declaration order says
// nothing of the graph.
func randomDAG(r *rand.Rand, n, deps int) dagflow.Workflow {
	perm := r.Perm(n) // perm[k] is the step that comes k-th in dependency order
	steps := make([]dagflow.Step, n)
	for k, i := range perm {
		s := dagflow.Step{ID: "s" + strconv.Itoa(i), Handler: "h"}
		if k > 0 {
			for range r.IntN(2*deps + 1) {
				d := "s" + strconv.Itoa(perm[r.IntN(k)])
				if !slices.Contains(s.DependsOn, d) {
					s.DependsOn = append(s.DependsOn, d)
				}
			}
		}
		steps[i] = s
	}
	return dagflow.Workflow{ID: "random", Steps: steps}
}

// TestValidateRandomDAGs is a property test: random acyclic graphs have no
// problem, and cycles injected into them are found exactly, each named in
// run order from its first step.
func TestValidateRandomDAGs(t *testing.T) {
	t.Parallel()
	seed := rand.Uint64()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewPCG(seed, 0))
	for iter := range 300 {
		n := 1 + r.IntN(60)
		w := randomDAG(r, n, 1+r.IntN(3))
		if err := w.Validate(); err != nil {
			t.Fatalf("seed %d, iteration %d: acyclic workflow: %v", seed, iter, err)
		}

		// Now build a condensation: groups of steps in a random order, each
		// a single step or a ring of 2 or more, with dependencies only on
		// members of earlier groups besides the ring's own. The strongly
		// connected components are then exactly the rings.
		var groups [][]int
		total := 0
		for range 1 + r.IntN(20) {
			size := 1
			if r.IntN(3) == 0 {
				size = 2 + r.IntN(4)
			}
			g := make([]int, size)
			for k := range g {
				g[k] = total
				total++
			}
			groups = append(groups, g)
		}
		order := r.Perm(total) // step positions in the workflow
		id := func(node int) string { return "n" + strconv.Itoa(node) }
		steps := make([]dagflow.Step, total)
		var wantCycles []string
		var earlier []int
		for _, g := range groups {
			for k, node := range g {
				s := dagflow.Step{ID: id(node), Handler: "h"}
				if len(g) > 1 {
					// Ring: node depends on the previous member, so the
					// run order is g[0] -> g[1] -> ... -> g[0].
					s.DependsOn = append(s.DependsOn, id(g[(k+len(g)-1)%len(g)]))
				}
				for range r.IntN(3) {
					if len(earlier) > 0 {
						if d := id(earlier[r.IntN(len(earlier))]); !slices.Contains(s.DependsOn, d) {
							s.DependsOn = append(s.DependsOn, d)
						}
					}
				}
				steps[order[node]] = s
			}
			earlier = append(earlier, g...)
			if len(g) > 1 {
				// Named from the member declared first, in run order.
				first := 0
				for k := range g {
					if order[g[k]] < order[g[first]] {
						first = k
					}
				}
				names := make([]string, 0, len(g)+1)
				for k := range len(g) + 1 {
					names = append(names, id(g[(first+k)%len(g)]))
				}
				wantCycles = append(wantCycles, "cycle: "+strings.Join(names, " -> "))
			}
		}
		w = dagflow.Workflow{ID: "cyclic", Steps: steps}
		var got []string
		for _, p := range problemsOf(t, w.Validate()) {
			if p.Path != "" || !strings.HasPrefix(p.Message, "cycle: ") {
				t.Fatalf("seed %d, iteration %d: unexpected problem %s", seed, iter, p)
			}
			got = append(got, p.Message)
		}
		slices.Sort(got)
		slices.Sort(wantCycles)
		if d := cmp.Diff(wantCycles, got); d != "" {
			t.Fatalf("seed %d, iteration %d: cycles (-want +got):\n%s", seed, iter, d)
		}
	}
}

// benchSeed is the seed of the benchmarks' random graphs, printed so that a
// surprising number can be reproduced.
const benchSeed = 20250301

func BenchmarkValidate100k(b *testing.B) {
	b.Logf("seed %d", benchSeed)
	w := randomDAG(rand.New(rand.NewPCG(benchSeed, 0)), 100_000, 3)
	edges := 0
	for _, s := range w.Steps {
		edges += len(s.DependsOn)
	}
	b.ResetTimer()
	for b.Loop() {
		if err := w.Validate(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(edges), "edges")
}

func BenchmarkValidateChain100k(b *testing.B) {
	steps := make([]dagflow.Step, 100_000)
	for i := range steps {
		steps[i] = dagflow.Step{ID: "step-" + strconv.Itoa(i), Handler: "h"}
		if i > 0 {
			steps[i].DependsOn = []string{steps[i-1].ID}
		}
	}
	w := dagflow.Workflow{ID: "chain", Steps: steps}
	b.ResetTimer()
	for b.Loop() {
		if err := w.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateUnknownDeps100k validates 100,000 steps each with an
// unknown dependency two edits away from a real id and one or two from
// thousands of others: did-you-mean searches must stay bounded for this to
// take well under a second.
func BenchmarkValidateUnknownDeps100k(b *testing.B) {
	steps := make([]dagflow.Step, 100_000)
	for i := range steps {
		steps[i] = dagflow.Step{ID: fmt.Sprintf("step-%06d", i), Handler: "h",
			DependsOn: []string{fmt.Sprintf("spet-%06d", (i*7919)%len(steps))}}
	}
	w := dagflow.Workflow{ID: "typos", Steps: steps}
	b.ResetTimer()
	for b.Loop() {
		err := w.Validate()
		var ve *dagflow.ValidationError
		if !errors.As(err, &ve) || len(ve.Problems) != len(steps) {
			b.Fatalf("got %v", err)
		}
	}
}
