package dagflow_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store/memory"
)

// A saga compensates the steps it completed, in reverse order, when a later
// step fails.
func ExampleEngine_Create_saga() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("book", func(ctx context.Context, in dagflow.Input) (any, error) { return in.StepID + "-ok", nil })
	eng.Handle("fail", func(ctx context.Context, in dagflow.Input) (any, error) {
		return nil, dagflow.Permanent(errors.New("no rooms left"))
	})
	eng.Handle("undo", func(ctx context.Context, in dagflow.Input) (any, error) {
		fmt.Printf("undo %s (it returned %s)\n", in.StepID, in.Result)
		return nil, nil
	})
	ctx := context.Background()
	_, err = eng.Create(ctx, dagflow.Workflow{ID: "trip", Saga: true, Steps: []dagflow.Step{
		{ID: "flight", Handler: "book", Compensation: "undo"},
		{ID: "car", Handler: "book", Compensation: "undo", DependsOn: []string{"flight"}},
		{ID: "hotel", Handler: "fail", Compensation: "undo", DependsOn: []string{"car"}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	st, _ := eng.Wait(ctx, "trip")
	fmt.Println(st.State, st.CompensatedSteps)
	// Output:
	// undo car (it returned "car-ok")
	// undo flight (it returned "flight-ok")
	// failed [car flight]
}
