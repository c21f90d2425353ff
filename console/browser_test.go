package console_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console"
)

const chromiumPath = "/usr/bin/chromium"

// newBrowser starts headless Chromium for a test and closes it when the
// test ends. Outside CI it skips the test when Chromium is not installed;
// in CI (CI=true) it fails it.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is missing at %s (CI installs it: apt-get install -y chromium): %v", chromiumPath, err)
		}
		t.Skipf("browser test skipped: no Chromium at %s (apt-get install -y chromium)", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox, // Chromium as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	bctx, bcancel := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
	t.Cleanup(func() {
		chromedp.Cancel(bctx)
		bcancel()
		acancel()
		cancel()
	})
	if err := chromedp.Do(bctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("starting Chromium: %v", err)
	}
	return bctx
}

// TestBrowser drives the console in Chromium: a run fails, the user opens
// it from the list, sees the failed step in the graph, clicks retry, and
// watches the run complete without reloading.
func TestBrowser(t *testing.T) {
	ctx := newBrowser(t)
	eng := newEngine(t)
	var declined atomic.Bool // the charge fails while set
	declined.Store(true)
	paid := make(chan struct{}) // the retried charge completes when closed
	// Steps take a while, as real ones do, so the timeline has something
	// to show.
	took := map[string]time.Duration{"validate-order": 40 * time.Millisecond, "reserve-inventory": 150 * time.Millisecond,
		"fraud-check": 320 * time.Millisecond, "ship-order": 210 * time.Millisecond, "send-confirmation": 90 * time.Millisecond,
		"update-analytics": 60 * time.Millisecond}
	if err := eng.Handle("work", func(ctx context.Context, in dagflow.Input) (any, error) {
		in.Logger().Info("working", "step", in.StepID)
		time.Sleep(took[in.StepID])
		return map[string]any{"step": in.StepID, "ok": true}, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := eng.Handle("charge", func(ctx context.Context, in dagflow.Input) (any, error) {
		log := in.Logger()
		log.Info("charging card", "amount", 4200, "currency", "EUR")
		time.Sleep(80 * time.Millisecond)
		if declined.Load() {
			log.Warn("payment provider said no", "code", "insufficient_funds")
			return nil, errors.New("card declined: insufficient funds")
		}
		select {
		case <-paid:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		log.Info("charged")
		return map[string]any{"chargeId": "ch_3PqX", "amount": 4200}, nil
	}); err != nil {
		t.Fatal(err)
	}
	handleItems(t, eng)
	runWF(t, eng, mapRun("batch-7", "a.png", "b.png", "bad", "d.png", "e.png"))
	long := "upstream said: " + strings.Repeat("<trace> frame of a very long stack\n", 100<<10/35)
	if err := eng.Handle("verbose", func(ctx context.Context, in dagflow.Input) (any, error) { return nil, errors.New(long) }); err != nil {
		t.Fatal(err)
	}
	runWF(t, eng, dagflow.Workflow{ID: "loud-1", Steps: []dagflow.Step{step("call", "verbose")}})
	runWF(t, eng, pipeline("nightly-report-17"))
	runWF(t, eng, failing("order-1041"))
	par := func(s dagflow.Step) dagflow.Step { s.Parallel = true; return s }
	retries := &dagflow.RetryConfig{MaxAttempts: 3, Backoff: dagflow.Fixed, InitialInterval: 150 * time.Millisecond}
	order := dagflow.Workflow{ID: "order-1042", Context: []byte(`{"orderId":"order_1042","customer":"c_981","total":42.00}`),
		Steps: []dagflow.Step{
			step("validate-order", "work"),
			par(step("reserve-inventory", "work", "validate-order")),
			par(step("fraud-check", "work", "validate-order")),
			{ID: "charge-payment", Handler: "charge", DependsOn: []string{"reserve-inventory", "fraud-check"}, Retries: retries},
			par(step("ship-order", "work", "charge-payment")),
			par(step("send-confirmation", "work", "charge-payment")),
			step("update-analytics", "work", "ship-order", "send-confirmation"),
		}}
	if st := runWF(t, eng, order); st.State != dagflow.StateFailed {
		t.Fatalf("run is %s, want failed", st.State)
	}
	srv := serve(t, console.Handler(eng, console.WithActions(true)))
	artifacts := filepath.Join("testdata", "artifacts")
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot: %v", err)
		}
		if err := os.WriteFile(filepath.Join(artifacts, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	must := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	poll := func(what, js string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](js, chromedp.WithPollingTimeout(20*time.Second))); err != nil {
			t.Fatalf("waiting until %s: %v", what, err)
		}
	}

	// Collect what the pages write to the console: errors, exceptions and
	// Content-Security-Policy violations fail the test.
	var cmu sync.Mutex
	var problems []string
	go func() {
		for m, err := range chromedp.Console(ctx) {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				cmu.Lock()
				problems = append(problems, fmt.Sprintf("%s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line))
				cmu.Unlock()
			}
		}
	}()
	defer func() {
		cmu.Lock()
		defer cmu.Unlock()
		for _, p := range problems {
			t.Errorf("browser console: %s", p)
		}
	}()

	// The list, with the failed run marked.
	must("open the list", chromedp.Navigate(srv.URL+"/flows/"),
		chromedp.WaitVisible(chromedp.CSS(`tr.state-failed a[href="runs/order-1042"]`)))
	shot("list.png")

	// Open the failed run: the failed step is marked in the graph.
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`a[href="runs/order-1042"]`))); err != nil {
		t.Fatalf("open the run: %v", err)
	}
	must("see the graph", chromedp.WaitVisible(chromedp.CSS(`svg.dag g.node.state-failed[data-step="charge-payment"]`)),
		chromedp.WaitVisible(chromedp.CSS(`svg.dag g.node.state-skipped[data-step="ship-order"]`)),
		chromedp.WaitVisible(chromedp.CSS(`.run-head .badge.state-failed`)))

	// Clicking a node opens its step, with its attempts and logs.
	must("click a step", chromedp.Click(chromedp.CSS(`g.node[data-step="fraud-check"] rect`)))
	poll("the step opens", `document.querySelector('details[data-step="fraud-check"]').open`)
	must("see its logs", chromedp.WaitVisible(chromedp.CSS(`details[data-step="charge-payment"] table.logs`)))
	shot("run-failed.png")

	// Retry: the page comes back running, then follows the run live.
	declined.Store(false)
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.ID("retry"))); err != nil {
		t.Fatalf("click retry: %v", err)
	}
	poll("the step runs again", `document.querySelector('g.node[data-step="charge-payment"]').dataset.state === "running"`)
	must("mark the page", chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	close(paid)
	poll("the run completes on the page", `document.querySelector('.run-head .badge').textContent.trim() === "completed"`)
	poll("every node is completed", `[...document.querySelectorAll('g.node')].every(n => n.dataset.state === "completed")`)
	poll("the page was not reloaded", `window.notReloaded === true`)
	poll("the live marker is gone", `document.querySelector('.live-dot') === null || document.querySelector('.live-dot').hidden`)
	// The page may still swap in its last update: click through the DOM,
	// again until the step is open, rather than on a node found earlier.
	poll("the charge opens with its attempts", `(() => {
		const d = document.querySelector('details[data-step="charge-payment"]');
		if (!d.open) document.querySelector('g.node[data-step="charge-payment"] rect').dispatchEvent(new MouseEvent('click', {bubbles: true}));
		return d.open && document.querySelectorAll('details[data-step="charge-payment"] .attempt').length === 4;
	})()`)
	must("scroll up", chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	shot("run.png")
	if st, err := eng.Status(ctxT(t), "order-1042"); err != nil || st.State != dagflow.StateCompleted {
		t.Fatalf("run: %+v, %v", st, err)
	}

	// Rerun from a step: open it from the graph, click its button; the
	// page comes back following the run, and that step and those
	// downstream of it run again.
	must("open the step", chromedp.Navigate(srv.URL+"/flows/runs/order-1042"),
		chromedp.WaitVisible(chromedp.CSS(`g.node[data-step="ship-order"]`)),
		chromedp.Click(chromedp.CSS(`g.node[data-step="ship-order"] rect.box`)))
	poll("its rerun button shows", `(() => {
		const b = document.querySelector('details[data-step="ship-order"] button.rerun');
		return b !== null && b.getBoundingClientRect().height > 0;
	})()`)
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`details[data-step="ship-order"] button.rerun`))); err != nil {
		t.Fatalf("click rerun: %v", err)
	}
	poll("the run is rerun and completes", `document.querySelector('.run-head .badge').textContent.trim() === "completed" &&
		document.querySelector('.run-head').textContent.includes("2 times")`)
	st, err := eng.Status(ctxT(t), "order-1042")
	if err != nil || st.State != dagflow.StateCompleted || st.Generation != 2 {
		t.Fatalf("after rerun: %+v, %v", st, err)
	}
	atts, _ := eng.Attempts(ctxT(t), "order-1042")
	again := map[string]bool{}
	for _, a := range atts {
		again[a.StepID] = again[a.StepID] || a.Generation == 2
	}
	if !again["ship-order"] || !again["update-analytics"] || again["charge-payment"] || again["send-confirmation"] {
		t.Errorf("ran again: %v; want ship-order and update-analytics", again)
	}

	// A map step: one stacked node with its counts; its link leads to the
	// items, where the failed one is open with its logs.
	must("open the map's run", chromedp.Navigate(srv.URL+"/flows/runs/batch-7"),
		chromedp.WaitVisible(chromedp.CSS(`svg.dag g.node.kind-map[data-step="resize"] rect.stack`)))
	poll("the node shows the counts", `document.querySelector('g.node[data-step="resize"] text.sub').textContent === "4/5 done · 1 failed"`)
	shot("run-map.png")
	if _, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(`g.node[data-step="resize"] a.node-link text`))); err != nil {
		t.Fatalf("follow the link to the items: %v", err)
	}
	must("see the items", chromedp.WaitVisible(chromedp.CSS(`details.item.state-failed[data-item="2"] table.logs`)))
	poll("one item per row, the failed one open", `document.querySelectorAll('details.item').length === 5 &&
		document.querySelector('details.item[data-item="2"]').open && !document.querySelector('details.item[data-item="0"]').open`)
	must("open an item", chromedp.Click(chromedp.CSS(`details.item[data-item="0"] > summary`)))
	poll("its attempt and result show", `(() => {
		const d = document.querySelector('details.item[data-item="0"]');
		return d.open && d.querySelector('.attempt table.logs').getBoundingClientRect().height > 0 && d.textContent.includes("did a.png");
	})()`)
	shot("items.png")
	must("filter the failed items", chromedp.Click(chromedp.CSS(`a.chip.state-failed`)),
		chromedp.WaitVisible(chromedp.CSS(`a.chip.state-failed.on`)))
	poll("only the failed item is listed", `document.querySelectorAll('details.item').length === 1`)

	// A 100 KB error leaves the first screen to the run: folded to a line.
	must("open the loud run", chromedp.Navigate(srv.URL+"/flows/runs/loud-1"),
		chromedp.WaitVisible(chromedp.CSS(`.run-error details.fold`)))
	poll("the graph is on the first screen", `document.getElementById("graph").getBoundingClientRect().top < 600 &&
		document.getElementById("run-head").getBoundingClientRect().height < 400`)
	shot("run-long-error.png")
	must("unfold the error", chromedp.Click(chromedp.CSS(`.run-error details.fold > summary`)))
	poll("the error unfolds", `document.querySelector('.run-error details.fold').open &&
		document.querySelector('.run-error pre.error-text').getBoundingClientRect().height > 100`)
}
