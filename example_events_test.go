package dagflow_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/dagflowtest"
	"github.com/dagflow/dagflow/store/memory"
)

// A step with waitForEvent waits, holding no worker, until SendEvent sends an
// event with its name and a key that matches the value at its key path; the
// event's payload is its result.
func ExampleEngine_SendEvent() {
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	eng.Handle("ship", func(ctx context.Context, in dagflow.Input) (any, error) {
		var approval struct{ By string }
		in.PreviousSteps.Decode("approval", &approval)
		return "shipped, approved by " + approval.By, nil
	})
	ctx := context.Background()
	_, err = eng.Create(ctx, dagflow.Workflow{ID: "order-1", Context: json.RawMessage(`{"orderId": "o-1"}`),
		Steps: []dagflow.Step{
			{ID: "approval", WaitForEvent: &dagflow.WaitForEvent{Name: "order-approved", Key: "context.orderId", Timeout: 7 * 24 * time.Hour}},
			{ID: "ship", Handler: "ship", DependsOn: []string{"approval"}},
		}})
	if err != nil {
		log.Fatal(err)
	}
	// From anywhere: an HTTP handler, another process on the same store,
	// `dagflow send-event`. An event sent before the wait starts is kept
	// for it.
	err = eng.SendEvent(ctx, dagflow.Event{Name: "order-approved", Key: "o-1", Payload: json.RawMessage(`{"by": "ada"}`)})
	if err != nil {
		log.Fatal(err)
	}
	st, _ := eng.Wait(ctx, "order-1")
	fmt.Println(st.State, string(st.Results["ship"]))
	// Output: completed "shipped, approved by ada"
}

// A sleep step is a durable timer: it holds no worker and survives
// restarts. With dagflowtest's clock, a day-long sleep takes no time.
func ExampleSleep() {
	clock := dagflowtest.NewClock(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithClock(clock))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	_, err = eng.Create(ctx, dagflow.Workflow{ID: "cool-off", Timeout: 48 * time.Hour, Steps: []dagflow.Step{
		{ID: "wait", Sleep: &dagflow.Sleep{Duration: 24 * time.Hour}},
	}})
	if err != nil {
		log.Fatal(err)
	}
	for st, _ := eng.Status(ctx, "cool-off"); st.Steps[0].State != dagflow.StateWaiting; st, _ = eng.Status(ctx, "cool-off") {
		time.Sleep(time.Millisecond)
	}
	clock.Advance(24 * time.Hour)
	st, _ := eng.Wait(ctx, "cool-off")
	fmt.Println(st.State, string(st.Results["wait"]))
	// Output: completed {"sleptUntil":"2026-01-02T09:00:00Z"}
}

// A schedule creates a run of its workflow at each tick of a cron
// expression, with the id "<scheduleId>/<tick>".
func ExampleEngine_Schedule() {
	clock := dagflowtest.NewClock(time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC))
	eng, err := dagflow.Open(dagflow.WithStore(memory.New()), dagflow.WithClock(clock),
		dagflow.WithHandler("report", func(ctx context.Context, in dagflow.Input) (any, error) { return "sent", nil }))
	if err != nil {
		log.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()
	err = eng.Schedule(ctx, dagflow.Schedule{ID: "nightly-report", Cron: "0 2 * * *", Timezone: "UTC",
		Workflow: dagflow.Workflow{Steps: []dagflow.Step{{ID: "send", Handler: "report"}}}})
	if err != nil {
		log.Fatal(err)
	}
	list, _ := eng.Schedules(ctx)
	fmt.Println(list[0].ID, "next at", list[0].Next.Format(time.RFC3339))
	clock.Advance(2 * time.Hour)
	st := waitForRun(eng, "nightly-report/2026-01-01T02:00:00Z")
	fmt.Println(st.ID, st.State)
	// Output:
	// nightly-report next at 2026-01-01T02:00:00Z
	// nightly-report/2026-01-01T02:00:00Z completed
}

// waitForRun waits for a run that the engine is about to create to end.
func waitForRun(eng *dagflow.Engine, id string) *dagflow.Status {
	for {
		if st, err := eng.Wait(context.Background(), id); err == nil {
			return st
		}
		time.Sleep(time.Millisecond)
	}
}
