package dagflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// A map step runs its handler once per item of a list found in the run (here
// the context), at most maxConcurrency at a time; the next step sees the
// items' results in order.
func ExampleMap() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("resize", func(ctx context.Context, in dagflow.Input) (any, error) {
		var name string
		if err := in.DecodeItem(&name); err != nil {
			return nil, dagflow.Permanent(err)
		}
		return fmt.Sprintf("%d:%s", in.Index, strings.TrimSuffix(name, ".png")+"@2x.png"), nil
	})
	eng.Handle("publish", func(ctx context.Context, in dagflow.Input) (any, error) {
		var resized []string
		err := in.PreviousSteps.Decode("resize", &resized)
		return len(resized), err
	})
	ctx := context.Background()
	_, err = eng.Create(ctx, dagflow.Workflow{ID: "batch-7",
		Context: json.RawMessage(`{"images": ["a.png", "b.png", "c.png"]}`),
		Steps: []dagflow.Step{
			{ID: "resize", Handler: "resize", Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.images"}, MaxConcurrency: 2}},
			{ID: "publish", Handler: "publish", DependsOn: []string{"resize"}},
		}})
	if err != nil {
		log.Fatal(err)
	}
	st, _ := eng.Wait(ctx, "batch-7")
	fmt.Println(st.State, string(st.Results["resize"]), string(st.Results["publish"]))
	// Output: completed ["0:a@2x.png","1:b@2x.png","2:c@2x.png"] 3
}

// A workflow step runs a sub-workflow as a child run, "<parentId>/<stepId>",
// whose context is the parent's with its own fields laid over it; the step's
// result is the child's results.
func ExampleStep_workflow() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("do", func(ctx context.Context, in dagflow.Input) (any, error) {
		var c struct{ Carrier string }
		in.DecodeContext(&c)
		return in.StepID + " via " + c.Carrier, nil
	})
	ctx := context.Background()
	_, err = eng.Create(ctx, dagflow.Workflow{ID: "order-9", Context: json.RawMessage(`{"carrier": "ups"}`),
		Steps: []dagflow.Step{
			{ID: "ship", Workflow: &dagflow.Workflow{
				Context: json.RawMessage(`{"carrier": "dhl"}`),
				Steps:   []dagflow.Step{{ID: "pack", Handler: "do"}, {ID: "label", Handler: "do", DependsOn: []string{"pack"}}},
			}},
		}})
	if err != nil {
		log.Fatal(err)
	}
	st, _ := eng.Wait(ctx, "order-9")
	child, _ := eng.Status(ctx, "order-9/ship")
	fmt.Println(st.State, string(st.Results["ship"]))
	fmt.Println(child.ID, child.State, "child of", child.Parent)
	// Output:
	// completed {"pack":"pack via dhl","label":"label via dhl"}
	// order-9/ship completed child of order-9
}
