package console_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console"
	"github.com/dagflow/dagflow/store/memory"
)

// handleItems registers "item", a map step's handler that logs its item,
// fails for good on "bad" and returns "did <item>" otherwise.
func handleItems(t testing.TB, eng *dagflow.Engine) {
	t.Helper()
	if err := eng.Handle("item", func(ctx context.Context, in dagflow.Input) (any, error) {
		var s string
		if err := in.DecodeItem(&s); err != nil {
			return nil, err
		}
		in.Logger().Info("resizing", "image", s, "index", in.Index)
		if s == "bad" {
			return nil, dagflow.Permanent(errors.New("cannot decode " + s))
		}
		return "did " + s, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// mapRun is a workflow with a map step over the context's images, one of
// which fails; the failure is tolerated.
func mapRun(id string, images ...string) dagflow.Workflow {
	list, _ := json.Marshal(map[string]any{"images": images})
	one := 1
	return dagflow.Workflow{ID: id, Context: list, Steps: []dagflow.Step{
		step("list-images", "ok"),
		{ID: "resize", Handler: "item", DependsOn: []string{"list-images"},
			Map: &dagflow.Map{Items: dagflow.MapItems{Path: "context.images"}, MaxConcurrency: 2, ToleratedFailureCount: &one}},
		step("publish", "ok", "resize"),
	}}
}

func TestMapStep(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	handleItems(t, eng)
	if st := runWF(t, eng, mapRun("batch-7", "a.png", "bad", "c.png")); st.State != dagflow.StateCompleted {
		t.Fatalf("run is %s: %s", st.State, st.Error)
	}
	srv := serve(t, console.Handler(eng))

	// The run's page draws the map as one node, stacked, with its counts
	// and a link to its items.
	r := get(t, srv.URL+"/flows/runs/batch-7")
	wantCode(t, r, http.StatusOK)
	for _, want := range []string{
		`class="node state-completed kind-map`,
		`class="box stack"`,
		`2/3 done · 1 failed`,
		`<a class="node-link" href="../runs/batch-7/steps/resize">`,
		`<span class="kind">map</span>`,
		`2/3 items done, 1 failed`,
		`context.images`,
		`Open the items (3) ›`,
		`3 attempts of its items`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	// The items' attempts are on the step's page, not the run's.
	if strings.Contains(r.body, "resizing") {
		t.Errorf("the run page shows the log lines of the map's items")
	}

	// The step's page lists the items with their attempts, logs, results
	// and errors.
	page := get(t, srv.URL+"/flows/runs/batch-7/steps/resize")
	wantCode(t, page, http.StatusOK)
	for _, want := range []string{
		`id="item-0"`, `id="item-1"`, `id="item-2"`,
		`class="item state-failed" id="item-1" data-item="1" open`, // a failed item is unfolded
		`&#34;bad&#34;`,
		`cannot decode bad`,   // its error
		`image=bad index=1`,   // its log line's attributes
		`&#34;did c.png&#34;`, // a result
		`Items 1–3 of 3`,
		`all <b>3</b>`, `failed <b>1</b>`, `completed <b>2</b>`,
		`href="../../../runs/batch-7/steps/resize/items"`,
		`href="../../../runs/batch-7"`, // back to the run
	} {
		if !strings.Contains(page.body, want) {
			t.Errorf("items page lacks %q", want)
		}
	}
	if n := strings.Count(page.body, `<div class="attempt `); n != 3 {
		t.Errorf("items page shows %d attempts, want one per item", n)
	}

	t.Run("filter and pages", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs/batch-7/steps/resize?state=failed")
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.body, `id="item-1"`) || strings.Contains(r.body, `id="item-0"`) {
			t.Errorf("state=failed shows the wrong items")
		}
		r = get(t, srv.URL+"/flows/runs/batch-7/steps/resize?limit=2")
		if !strings.Contains(r.body, `id="item-1"`) || strings.Contains(r.body, `id="item-2"`) || !strings.Contains(r.body, "Later items") {
			t.Errorf("limit=2 shows the wrong items, or no next page")
		}
		m := regexp.MustCompile(`class="next" href="([^"]+)"`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatal("no link to the next page")
		}
		r = get(t, resolve(t, r, unescapeAttr(m[1])))
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.body, `id="item-2"`) || strings.Contains(r.body, `id="item-0"`) || !strings.Contains(r.body, "Items 3–3 of 3") {
			t.Errorf("the next page shows the wrong items")
		}
		for _, q := range []string{"state=weird", "limit=0", "from=-1", "from=x"} {
			wantCode(t, get(t, srv.URL+"/flows/runs/batch-7/steps/resize?"+q), http.StatusBadRequest)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs/batch-7/steps/resize/items")
		wantCode(t, r, http.StatusOK)
		var items []dagflow.Item
		if err := json.Unmarshal([]byte(r.body), &items); err != nil || len(items) != 3 || items[1].State != dagflow.StateFailed {
			t.Errorf("items JSON %s (%v)", r.body, err)
		}
		for path, want := range map[string]string{
			"items/1/value": `"bad"`, "items/2/result": `"did c.png"`, "items/1/error": "cannot decode bad",
		} {
			r := get(t, srv.URL+"/flows/runs/batch-7/steps/resize/"+path)
			wantCode(t, r, http.StatusOK)
			if strings.TrimSpace(r.body) != want {
				t.Errorf("%s = %q, want %q", path, r.body, want)
			}
		}
		for _, path := range []string{"items/1/result", "items/3/value", "items/x/value", "items/01/value"} {
			wantCode(t, get(t, srv.URL+"/flows/runs/batch-7/steps/resize/"+path), http.StatusNotFound)
		}
	})
	t.Run("a step that is not a map", func(t *testing.T) {
		r := get(t, srv.URL+"/flows/runs/batch-7/steps/publish")
		wantCode(t, r, http.StatusOK)
		if !strings.Contains(r.body, `data-step="publish"`) || !strings.Contains(r.body, "working on it") || strings.Contains(r.body, `id="items"`) {
			t.Errorf("the page of a plain step lacks its attempts, or shows items")
		}
		wantCode(t, get(t, srv.URL+"/flows/runs/batch-7/steps/nope"), http.StatusNotFound)
	})
}

// TestManyItems checks that a map of many items makes a page of bounded
// size: the timeline merges the items' attempts into spans, and the
// step's page shows a page of items.
func TestManyItems(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	handleItems(t, eng)
	images := make([]string, 500)
	for i := range images {
		images[i] = fmt.Sprintf("img-%03d.png", i)
	}
	images[7] = "bad"
	if st := runWF(t, eng, mapRun("big-batch", images...)); st.State != dagflow.StateCompleted {
		t.Fatalf("run is %s: %s", st.State, st.Error)
	}
	srv := serve(t, console.Handler(eng))
	r := get(t, srv.URL+"/flows/runs/big-batch")
	wantCode(t, r, http.StatusOK)
	if n := strings.Count(r.body, `<rect class="bar `); n > 20 {
		t.Errorf("the timeline draws %d bars for a map of 500 items", n)
	}
	if !strings.Contains(r.body, `499/500 done · 1 failed`) || len(r.body) > 100<<10 {
		t.Errorf("run page of %d KiB, counts shown: %v", len(r.body)>>10, strings.Contains(r.body, "499/500"))
	}
	page := get(t, srv.URL+"/flows/runs/big-batch/steps/resize")
	wantCode(t, page, http.StatusOK)
	if n := strings.Count(page.body, `<details class="item `); n != 50 {
		t.Errorf("items page shows %d items, want a page of 50", n)
	}
	if !strings.Contains(page.body, "Items 1–50 of 500") {
		t.Errorf("items page does not say which items it shows")
	}
}

// gated registers "gate", a handler that waits until its context ends:
// runs that use it stay running until they are cancelled.
func gated(t testing.TB, eng *dagflow.Engine) {
	t.Helper()
	if err := eng.Handle("gate", func(ctx context.Context, in dagflow.Input) (any, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}); err != nil {
		t.Fatal(err)
	}
}

// waitRun polls until a run exists and is in state.
func waitRun(t testing.TB, eng *dagflow.Engine, id string, state dagflow.State) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := eng.Status(ctxT(t), id)
		if err == nil && st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: %v, %v; want %s", id, st, err, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestChildRuns(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	gated(t, eng)
	wf := dagflow.Workflow{ID: "order-9", Steps: []dagflow.Step{
		step("charge", "ok"),
		{ID: "ship", DependsOn: []string{"charge"}, Parallel: true,
			Workflow: &dagflow.Workflow{Steps: []dagflow.Step{step("pack", "ok"), step("hand-over", "gate", "pack")}}},
		{ID: "notify", DependsOn: []string{"charge"}, Parallel: true,
			Map:      &dagflow.Map{Items: dagflow.MapItems{List: json.RawMessage(`["mail","sms"]`)}},
			Workflow: &dagflow.Workflow{Steps: []dagflow.Step{step("send", "gate")}}},
	}}
	if _, err := eng.Create(ctxT(t), wf); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Cancel(context.Background(), "order-9") })
	for _, id := range []string{"order-9/ship", "order-9/notify/0", "order-9/notify/1"} {
		waitRun(t, eng, id, dagflow.StateRunning)
	}
	srv := serve(t, console.Handler(eng, console.WithActions(true)))

	// The parent links to its children: from the workflow step's node,
	// its details, the map's items, and a list of child runs.
	r := get(t, srv.URL+"/flows/runs/order-9")
	wantCode(t, r, http.StatusOK)
	for _, want := range []string{
		`class="node state-running kind-workflow`,
		`<a class="node-link" href="../runs/order-9%2Fship">`,
		`<a class="id child-run" href="../runs/order-9%2Fship">order-9/ship</a>`,
		`id="children"`,
		`href="../runs/order-9%2Fnotify%2F0"`,
		`Sub-workflow</dt><dd class="id">2 steps`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("parent page lacks %q", want)
		}
	}
	items := get(t, srv.URL+"/flows/runs/order-9/steps/notify")
	wantCode(t, items, http.StatusOK)
	if !strings.Contains(items.body, `href="../../../runs/order-9%2Fnotify%2F1"`) {
		t.Errorf("the items of a map of sub-workflows do not link their child runs")
	}

	// The child's page says whose child it is, and draws its own graph.
	child := get(t, resolve(t, r, "../runs/order-9%2Fship"))
	wantCode(t, child, http.StatusOK)
	for _, want := range []string{
		`<h1 class="id">order-9/ship</h1>`,
		`Child of</dt><dd><a class="id" href="../runs/order-9">order-9</a>, step <a class="id" href="../runs/order-9/steps/ship">ship</a>`,
		`data-step="hand-over"`,
		`<a class="id" href="../runs/order-9">order-9</a> <span>/</span>`, // the crumbs
	} {
		if !strings.Contains(child.body, want) {
			t.Errorf("child page lacks %q", want)
		}
	}
	item := get(t, srv.URL+"/flows/runs/"+url.PathEscape("order-9/notify/1"))
	if !strings.Contains(item.body, `step <a class="id" href="../runs/order-9/steps/notify">notify</a> item 1`) {
		t.Errorf("the child run of an item does not name its item")
	}

	// The run list marks children, and lists them by parent.
	list := get(t, srv.URL+"/flows/")
	if !strings.Contains(list.body, `child of <a href="runs/order-9">order-9</a>`) {
		t.Errorf("the list does not mark child runs")
	}
	kids := get(t, srv.URL+"/flows/?parent=order-9")
	wantCode(t, kids, http.StatusOK)
	ids := regexp.MustCompile(`<td class="id"><a href="runs/([^"]+)"`).FindAllStringSubmatch(kids.body, -1)
	if len(ids) != 3 || !strings.Contains(kids.body, "Child runs of") {
		t.Errorf("?parent=order-9 lists %v", ids)
	}

	// A child runs again with its parent: its page offers no rerun, and
	// the console refuses one.
	ck, csrf := formOf(t, child)
	if strings.Contains(child.body, `class="rerun"`) {
		t.Errorf("a child run offers a rerun")
	}
	if _, err := eng.Cancel(ctxT(t), "order-9"); err != nil {
		t.Fatal(err)
	}
	waitRun(t, eng, "order-9", dagflow.StateCancelled)
	waitRun(t, eng, "order-9/ship", dagflow.StateCancelled)
	child = get(t, srv.URL+"/flows/runs/"+url.PathEscape("order-9/ship"))
	if strings.Contains(child.body, `id="retry"`) || !strings.Contains(child.body, "retry or rerun that run") {
		t.Errorf("a cancelled child run offers a retry of its own, or does not say why not")
	}
	rr := postForm(t, srv.URL+"/flows/runs/"+url.PathEscape("order-9/ship")+"/steps/pack/rerun", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, rr, http.StatusConflict)
	rr = postForm(t, srv.URL+"/flows/runs/"+url.PathEscape("order-9/ship")+"/retry", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, rr, http.StatusConflict)
	if st, _ := eng.Status(ctxT(t), "order-9/ship"); st.Generation != 0 {
		t.Errorf("the child run was run again alone")
	}
}

func TestWaitingSteps(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	wf := dagflow.Workflow{ID: "approval-1", Context: json.RawMessage(`{"orderId":"order_123"}`), Steps: []dagflow.Step{
		{ID: "cool-off", Parallel: true, Sleep: &dagflow.Sleep{Duration: time.Hour}},
		{ID: "approval", Parallel: true, WaitForEvent: &dagflow.WaitForEvent{Name: "order-approved", Key: "context.orderId"}},
		step("ship", "ok", "cool-off", "approval"),
	}}
	if _, err := eng.Create(ctxT(t), wf); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := eng.Status(ctxT(t), "approval-1")
		if err != nil {
			t.Fatal(err)
		}
		if st.Steps[0].State == dagflow.StateWaiting && st.Steps[1].State == dagflow.StateWaiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("steps are %s and %s, want waiting", st.Steps[0].State, st.Steps[1].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv := serve(t, console.Handler(eng))
	r := get(t, srv.URL+"/flows/runs/approval-1")
	wantCode(t, r, http.StatusOK)
	for _, want := range []string{
		`class="node state-waiting kind-sleep`,
		`class="node state-waiting kind-waitForEvent`,
		`waiting · order-approved`,
		`waiting · until `,
		`class="badge state-waiting"`,
		`waits for the event &#34;order-approved&#34; with key &#34;order_123&#34;`,
		`waits until `,
		`from now)`,
		`Event</dt><dd class="id">&#34;order-approved&#34; with key context.orderId`,
		`Sleep</dt><dd class="id">for 1h00m`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	// The event ends the wait; the page shows it completed.
	if err := eng.SendEvent(ctxT(t), dagflow.Event{Name: "order-approved", Key: "order_123", Payload: json.RawMessage(`{"by":"ops"}`)}); err != nil {
		t.Fatal(err)
	}
	for {
		st, _ := eng.Status(ctxT(t), "approval-1")
		if st.Steps[1].State == dagflow.StateCompleted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the event did not end the wait: %s", st.Steps[1].State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	r = get(t, srv.URL+"/flows/runs/approval-1")
	if !strings.Contains(r.body, `data-step="approval" data-index="1" data-state="completed"`) || !strings.Contains(r.body, `&#34;by&#34;: &#34;ops&#34;`) {
		t.Errorf("the page does not show the wait ended with the event's payload")
	}
}

// TestWaitingFor opens a second engine, without the handler a run needs,
// on the store of the first: the page says what the run waits for.
func TestWaitingFor(t *testing.T) {
	t.Parallel()
	ms := memory.New()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	first, err := dagflow.Open(dagflow.WithStore(ms), dagflow.WithLogger(logger),
		dagflow.WithHandler("ok", func(ctx context.Context, in dagflow.Input) (any, error) { return "ok", nil }),
		dagflow.WithHandler("resize", func(ctx context.Context, in dagflow.Input) (any, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Create(ctxT(t), dagflow.Workflow{ID: "stuck", Steps: []dagflow.Step{step("a", "ok"), step("b", "resize", "a")}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, first, "stuck", dagflow.StateRunning)
	for {
		st, _ := first.Status(ctxT(t), "stuck")
		if st.Steps[1].State == dagflow.StateRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	first.Close() // b's attempt is handed back
	eng, err := dagflow.Open(dagflow.WithStore(ms), dagflow.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := eng.Status(ctxT(t), "stuck")
		if err != nil {
			t.Fatal(err)
		}
		if st.WaitingFor != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the status does not say what the run waits for: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv := serve(t, console.Handler(eng))
	r := get(t, srv.URL+"/flows/runs/stuck")
	wantCode(t, r, http.StatusOK)
	if !strings.Contains(r.body, `<p class="waiting-for" id="waiting-for"><strong>Waiting for</strong> a Go handler named &#34;resize&#34;`) {
		t.Errorf("the run page does not say what the run waits for:\n%s", r.body)
	}
}

func TestSchedulesAndRetention(t *testing.T) {
	t.Parallel()
	eng := newEngine(t, dagflow.WithRetention(30*24*time.Hour))
	if err := eng.Schedule(ctxT(t), dagflow.Schedule{ID: "nightly-report", Cron: "0 2 * * *", Timezone: "Europe/Paris",
		Workflow: pipeline("")}); err != nil {
		t.Fatal(err)
	}
	list, err := eng.Schedules(ctxT(t))
	if err != nil || len(list) != 1 {
		t.Fatalf("Schedules: %v, %v", list, err)
	}
	runWF(t, eng, pipeline("done"))
	srv := serve(t, console.Handler(eng))

	r := get(t, srv.URL+"/flows/schedules")
	wantCode(t, r, http.StatusOK)
	next := list[0].Next.UTC().Format("2006-01-02 15:04:05")
	for _, want := range []string{
		`data-schedule="nightly-report"`, `<code>0 2 * * *</code>`, `Europe/Paris`, next,
		`href="./?q=nightly-report%2F"`,
		`removed 30 days after they end`, `kept 7 days`,
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("schedules page lacks %q", want)
		}
	}
	var infos []dagflow.ScheduleInfo
	r = get(t, srv.URL+"/flows/schedules.json")
	if err := json.Unmarshal([]byte(r.body), &infos); err != nil || len(infos) != 1 || !infos[0].Next.Equal(list[0].Next) {
		t.Errorf("schedules.json %s (%v)", r.body, err)
	}
	if r := get(t, srv.URL+"/flows/"); !strings.Contains(r.body, "Runs are removed 30 days after they end") {
		t.Errorf("the run list does not say how long runs are kept")
	}
	if r := get(t, srv.URL+"/flows/runs/done"); !strings.Contains(r.body, "Removed after (UTC)") {
		t.Errorf("a finished run's page does not say when it is removed")
	}

	// Without retention, runs are kept.
	plain := serve(t, console.Handler(newEngine(t)))
	r = get(t, plain.URL+"/flows/schedules")
	if !strings.Contains(r.body, "kept until they are deleted") || !strings.Contains(r.body, "No schedules") {
		t.Errorf("schedules page of an engine without retention or schedules:\n%s", r.body)
	}
}

// TestLongErrors: a 100 KB error is folded on the run page, cut in the run
// list, and whole a link away.
func TestLongErrors(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	long := "upstream said: " + strings.Repeat("<trace> frame\n", 100<<10/14)
	if err := eng.Handle("verbose", func(ctx context.Context, in dagflow.Input) (any, error) {
		return nil, errors.New(long)
	}); err != nil {
		t.Fatal(err)
	}
	for i := range 7 {
		wf := dagflow.Workflow{ID: fmt.Sprintf("loud-%d", i), Steps: []dagflow.Step{
			{ID: "call", Handler: "verbose", Retries: &dagflow.RetryConfig{MaxAttempts: 3, InitialInterval: time.Millisecond}},
		}}
		if st := runWF(t, eng, wf); st.State != dagflow.StateFailed || len(st.Error) < 100<<10 {
			t.Fatalf("run is %s with a %d-byte error", st.State, len(st.Error))
		}
	}
	srv := serve(t, console.Handler(eng))

	list := get(t, srv.URL+"/flows/")
	wantCode(t, list, http.StatusOK)
	if len(list.body) > 40<<10 {
		t.Errorf("the list of 7 runs with 100 KB errors is %d KiB", len(list.body)>>10)
	}
	for _, m := range regexp.MustCompile(`title="([^"]*)"`).FindAllStringSubmatch(list.body, -1) {
		if len(m[1]) > 8<<10 {
			t.Errorf("a title attribute of %d bytes", len(m[1]))
		}
	}

	r := get(t, srv.URL+"/flows/runs/loud-0")
	wantCode(t, r, http.StatusOK)
	// The error is on the page four times (the run's, the step's, three
	// attempts'), each folded and cut.
	if len(r.body) > 120<<10 {
		t.Errorf("run page is %d KiB", len(r.body)>>10)
	}
	head := r.body[strings.Index(r.body, `id="run-head"`):strings.Index(r.body, `id="graph"`)]
	if !strings.Contains(head, `<details class="fold">`) || strings.Count(head, "frame") > 600 {
		t.Errorf("the run's head does not fold the error (%d bytes of it)", len(head))
	}
	if !strings.Contains(head, `href="../runs/loud-0/error">Open the whole text</a>`) {
		t.Errorf("no link to the whole error")
	}
	whole := get(t, srv.URL+"/flows/runs/loud-0/error")
	wantCode(t, whole, http.StatusOK)
	if !strings.HasSuffix(whole.body, long) || !strings.HasPrefix(whole.Header.Get("Content-Type"), "text/plain") {
		t.Errorf("the whole error is %d bytes of %s", len(whole.body), whole.Header.Get("Content-Type"))
	}
	step := get(t, srv.URL+"/flows/runs/loud-0/steps/call/error")
	if step.body != long {
		t.Errorf("the step's error is %d bytes, want %d", len(step.body), len(long))
	}
}

func TestRerunFromStep(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	runWF(t, eng, pipeline("p"))
	runWF(t, eng, failing("f"))
	srv := serve(t, console.Handler(eng, console.WithActions(true)))

	page := get(t, srv.URL+"/flows/runs/p")
	wantCode(t, page, http.StatusOK)
	if n := strings.Count(page.body, `<button type="submit" class="rerun"`); n != 5 {
		t.Errorf("%d rerun buttons on a completed run of 5 steps", n)
	}
	ck, csrf := formOf(t, page)
	rerun := srv.URL + "/flows/runs/p/steps/score/rerun"
	if !strings.Contains(page.body, `action="../runs/p/steps/score/rerun"`) {
		t.Fatalf("no rerun form for score")
	}
	wantCode(t, postForm(t, rerun, url.Values{}, nil, ck), http.StatusForbidden) // no CSRF token
	r := postForm(t, rerun, url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, r, http.StatusSeeOther)
	if back := resolve(t, r, r.Header.Get("Location")); back != srv.URL+"/flows/runs/p" {
		t.Errorf("redirected to %s", back)
	}
	st, err := eng.Wait(ctxT(t), "p")
	if err != nil || st.State != dagflow.StateCompleted || st.Generation != 1 {
		t.Fatalf("after the rerun: %+v, %v", st, err)
	}
	atts, _ := eng.Attempts(ctxT(t), "p")
	again := map[string]bool{}
	for _, a := range atts {
		if a.Generation == 1 {
			again[a.StepID] = true
		}
	}
	if !again["score"] || !again["publish"] || again["clean"] || again["extract"] {
		t.Errorf("ran again: %v; want score and publish only", again)
	}
	// From the step's page, the form comes back to it.
	r = postForm(t, srv.URL+"/flows/runs/p/steps/publish/rerun", url.Values{"csrf": {csrf}, "back": {"step"}}, nil, ck)
	wantCode(t, r, http.StatusSeeOther)
	if back := resolve(t, r, r.Header.Get("Location")); back != srv.URL+"/flows/runs/p/steps/publish" {
		t.Errorf("redirected to %s", back)
	}
	if _, err := eng.Wait(ctxT(t), "p"); err != nil {
		t.Fatal(err)
	}

	// A step after one that failed is not offered, and not taken: Retry
	// runs both.
	page = get(t, srv.URL+"/flows/runs/f")
	if strings.Contains(page.body, `action="../runs/f/steps/ship/rerun"`) || !strings.Contains(page.body, `its dependency &#34;charge&#34; is failed`) {
		t.Errorf("a step whose dependency failed is offered a rerun, or the page does not say why not")
	}
	if !strings.Contains(page.body, `action="../runs/f/steps/charge/rerun"`) {
		t.Errorf("the failed step itself is not offered a rerun")
	}
	r = postForm(t, srv.URL+"/flows/runs/f/steps/ship/rerun", url.Values{"csrf": {csrf}}, nil, ck)
	wantCode(t, r, http.StatusConflict)
	wantCode(t, postForm(t, srv.URL+"/flows/runs/f/steps/nope/rerun", url.Values{"csrf": {csrf}}, nil, ck), http.StatusNotFound)

	// A client with the token header gets the status.
	tokened := serve(t, console.Handler(eng, console.WithActions(true), console.WithToken("s3cret")))
	r = postForm(t, tokened.URL+"/flows/runs/f/steps/charge/rerun", nil, http.Header{"X-Dagflow-Token": {"s3cret"}, "Accept": {"application/json"}})
	wantCode(t, r, http.StatusOK)
	var got dagflow.Status
	if err := json.Unmarshal([]byte(r.body), &got); err != nil || got.Generation != 1 {
		t.Errorf("JSON reply %s (%v)", r.body, err)
	}
	if st, err := eng.Wait(ctxT(t), "f"); err != nil || st.State != dagflow.StateFailed {
		t.Fatalf("after rerunning a step that fails: %v, %v", st, err)
	}

	// A running run takes no rerun; a read-only console none at all.
	if _, err := eng.Create(ctxT(t), dagflow.Workflow{ID: "long", Steps: []dagflow.Step{step("wait", "block")}}); err != nil {
		t.Fatal(err)
	}
	waitState(t, eng, "long", dagflow.StateRunning)
	if page := get(t, srv.URL+"/flows/runs/long"); strings.Contains(page.body, `class="rerun"`) {
		t.Errorf("a running run offers a rerun")
	}
	wantCode(t, postForm(t, srv.URL+"/flows/runs/long/steps/wait/rerun", url.Values{"csrf": {csrf}}, nil, ck), http.StatusConflict)
	eng.Cancel(ctxT(t), "long")
	ro := serve(t, console.Handler(eng))
	if page := get(t, ro.URL+"/flows/runs/p"); strings.Contains(page.body, `class="rerun"`) {
		t.Errorf("a read-only console offers a rerun")
	}
	wantCode(t, postForm(t, ro.URL+"/flows/runs/p/steps/score/rerun", nil, nil), http.StatusForbidden)
}

// TestQueued: a run over its concurrency key's limit says what it waits
// for.
func TestQueued(t *testing.T) {
	t.Parallel()
	eng := newEngine(t)
	gated(t, eng)
	mk := func(id string) dagflow.Workflow {
		return dagflow.Workflow{ID: id, Context: json.RawMessage(`{"customerId":"c1"}`),
			Concurrency: &dagflow.Concurrency{Key: "context.customerId", Limit: 1}, Steps: []dagflow.Step{step("work", "gate")}}
	}
	for _, id := range []string{"first", "second"} {
		if _, err := eng.Create(ctxT(t), mk(id)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Cancel(context.Background(), id) })
	}
	waitRun(t, eng, "first", dagflow.StateRunning)
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, _ := eng.Status(ctxT(t), "second")
		if st.Phase == "queued" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second run: %s, phase %q", st.State, st.Phase)
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv := serve(t, console.Handler(eng))
	r := get(t, srv.URL+"/flows/runs/second")
	if !strings.Contains(r.body, `<strong>Queued, waiting for</strong> a free slot: at most 1 run with the same context.customerId`) {
		t.Errorf("a queued run's page does not say what it waits for")
	}
}
