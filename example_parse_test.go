package dagflow_test

import (
	"errors"
	"fmt"

	"github.com/dagflow/dagflow"
)

// ParseWorkflow reads the hosted platform's workflow JSON; a workflow with
// problems gets one *ValidationError that lists them all, each with its
// place.
func ExampleParseWorkflow() {
	_, err := dagflow.ParseWorkflow([]byte(`{
	  "id": "etl",
	  "steps": [
	    {"id": "process-a", "url": "https://jobs.example/a"},
	    {"id": "load", "url": "https://jobs.example/load", "dependsOn": ["proces-a"]},
	    {"id": "report", "handler": "report", "dependsOn": ["report"]}
	  ]
	}`))
	var ve *dagflow.ValidationError
	if errors.As(err, &ve) {
		for _, p := range ve.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// steps[1].dependsOn[0]: unknown step "proces-a" (did you mean "process-a"?)
	// steps[2].dependsOn[0]: step "report" depends on itself
}
