package dagflow

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// task is a claimed attempt waiting for, or on, a worker. Tasks are pooled:
// nothing a handler can keep (its context, its logger) lives in one.
type task struct {
	c   flow.Claim
	rc  *runCache
	ctx *attemptCtx // set while the attempt runs
	// Set by execute: when the attempt's context ends, and whether that is
	// the run's deadline rather than the step's timeout.
	deadline    time.Time
	runDeadline bool
}

var taskPool = sync.Pool{New: func() any { return new(task) }}

func newTask(c *flow.Claim, rc *runCache) *task {
	t := taskPool.Get().(*task)
	t.c, t.rc = *c, rc
	return t
}

func freeTask(t *task) {
	*t = task{}
	taskPool.Put(t)
}

// workerState is what a worker reuses from one attempt to the next, so
// that recording an outcome and claiming the next step allocate little.
type workerState struct {
	e     *Engine
	env   workerEnv
	eff   flow.Effects
	txn   flow.Txn
	tasks []*task
	// The arguments of finishTx, set before each call.
	t    *task
	o    flow.Outcome
	want int
	now  time.Time            // read before the transaction, not while it holds the store
	fn   func(store.Tx) error // finishTx, bound once
}

func newWorkerState(e *Engine) *workerState {
	ws := &workerState{e: e, env: workerEnv{flowEnv: (*flowEnv)(e)}}
	ws.fn = ws.finishTx
	return ws
}

// workerEnv is the engine as one worker's transactions see it: the plan of
// the run of the task that the transaction finishes comes without a look in
// the engine's cache.
type workerEnv struct {
	*flowEnv
	hint *runCache
}

// Plan implements flow.Env.
func (v *workerEnv) Plan(tx store.Tx, runID string) (*flow.Plan, error) {
	if v.hint.holds(runID) {
		return v.hint.plan, nil
	}
	return v.flowEnv.Plan(tx, runID)
}

// finishTx records ws.t's outcome and claims up to ws.want due steps.
func (ws *workerState) finishTx(tx store.Tx) error {
	e := ws.e
	ws.env.hint = ws.t.rc
	x := ws.txn.Reset(tx, &ws.env, ws.now, &ws.eff)
	if err := x.Finish(&ws.t.c, ws.o); err != nil {
		return err
	}
	if ws.want > 0 && e.ctx.Err() == nil {
		if err := x.Continue(ws.want); err != nil {
			return err
		}
	}
	return x.Flush()
}

// The worker pool. Every claim holds one of cfg.concurrency slots from the
// transaction that claims it to the one that records its outcome; the latter
// claims with the same slot a step that the outcome made ready, if any (else
// the step due longest: see flow.Txn.Continue), and the worker runs it at
// once, so a chain of steps never waits for a goroutine hand-off. Workers
// are started through an errgroup whose limit is the concurrency, only while
// there are tasks queued.

// reserve takes every free slot and returns how many it took.
func (e *Engine) reserve() int {
	for {
		n := e.free.Load()
		if n <= 0 {
			return 0
		}
		if e.free.CompareAndSwap(n, 0) {
			return int(n)
		}
	}
}

// release gives back n slots, waking the claim loop if it waits for one.
func (e *Engine) release(n int) {
	if n <= 0 {
		return
	}
	e.free.Add(int64(n))
	if e.starved.Load() {
		e.signal()
	}
}

// submit queues a task and starts a worker for it if fewer than the limit
// are running.
func (e *Engine) submit(t *task) {
	e.qmu.Lock()
	e.queue = append(e.queue, t)
	spawn := e.active < e.cfg.concurrency
	if spawn {
		e.active++
	}
	e.qmu.Unlock()
	if spawn {
		e.workers.Go(e.worker)
	}
}

func (e *Engine) worker() error {
	e.qmu.Lock()
	var ws *workerState
	if n := len(e.idle); n > 0 {
		ws, e.idle[n-1] = e.idle[n-1], nil
		e.idle = e.idle[:n-1]
	}
	e.qmu.Unlock()
	if ws == nil {
		ws = newWorkerState(e)
	}
	for {
		e.qmu.Lock()
		if len(e.queue) == 0 {
			e.active--
			e.idle = append(e.idle, ws)
			e.qmu.Unlock()
			return nil
		}
		t := e.queue[0]
		e.queue[0] = nil
		e.queue = e.queue[1:]
		e.qmu.Unlock()
		for t != nil {
			o := e.execute(t)
			t = e.finish(t, o, ws)
		}
	}
}

func (e *Engine) signal() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) signalHooks() {
	select {
	case e.hookWake <- struct{}{}:
	default:
	}
}

// claimLoop claims due work whenever it is told some may be there (a run
// created or retried, a handler registered, a slot freed while work waited,
// a notification from another engine) and when the next due time comes.
func (e *Engine) claimLoop() {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var txn flow.Txn
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-e.wake:
		case <-timer.C:
		}
		for e.ctx.Err() == nil && !e.draining.Load() {
			n := e.reserve()
			if n == 0 && e.lease > 0 {
				// Every slot is taken: nothing can be claimed, and the
				// workers claim with the slots they free. On a shared
				// store every notification lands here; spare it a
				// transaction. The next free slot wakes the loop.
				e.starved.Store(true)
				if e.free.Load() > 0 {
					e.starved.Store(false)
					continue
				}
				break
			}
			var eff flow.Effects
			var next time.Time
			err := e.store.Update(e.ctx, func(tx store.Tx) error {
				now := e.now()
				x := txn.Reset(tx, e.env(), now, &eff)
				if err := x.Claim(n); err != nil {
					return err
				}
				if err := x.Flush(); err != nil {
					return err
				}
				var err error
				next, err = tx.NextDue()
				return err
			})
			if err != nil {
				e.release(n)
				if e.ctx.Err() == nil {
					e.log.Error("dagflow: claiming due steps", "error", err)
					timer.Reset(time.Second)
				}
				break
			}
			tasks := e.apply(&eff, n, nil, nil)
			e.release(n - len(tasks))
			for _, t := range tasks {
				e.submit(t)
			}
			if n > 0 && len(tasks) == n {
				continue // there may be more
			}
			now := e.now()
			if !next.IsZero() && !next.After(now) {
				if n == 0 {
					// Due now but no slot was free: wait for one.
					e.starved.Store(true)
					if e.free.Load() > 0 {
						e.starved.Store(false)
						continue
					}
					break
				}
				// Due now and a slot free, yet not claimed: another
				// transaction holds it (a shared store skips locked
				// rows). Look again shortly rather than spin.
				e.starved.Store(false)
				timer.Reset(10 * time.Millisecond)
				break
			}
			e.starved.Store(false)
			wait := time.Duration(-1)
			if !next.IsZero() {
				wait = next.Sub(now)
			}
			if e.lease > 0 && (wait < 0 || wait > e.cfg.poll) {
				wait = e.cfg.poll // the slow fallback on a shared store
			}
			if wait >= 0 {
				timer.Reset(wait)
			}
			break
		}
	}
}

// apply acts on the effects of a committed transaction and returns the
// tasks it claimed, appended to buf. want is how many claims the
// transaction asked for; hint is the cache of the run whose step the
// transaction finished, if any (see Engine.runFor).
func (e *Engine) apply(eff *flow.Effects, want int, buf []*task, hint *runCache) []*task {
	for _, c := range eff.Completed {
		if rc := e.runFor(c.RunID, hint); rc != nil {
			rc.complete(c.Index, c.Seq, c.Result)
		}
	}
	for _, s := range eff.Stopped {
		if s.Cancel {
			if rc := e.runFor(s.RunID, hint); rc != nil {
				rc.cancelFor(s.Reason)
			}
		}
		e.notify(store.Event{Kind: store.EventRun, RunID: s.RunID})
	}
	for i := range eff.Finished {
		f := &eff.Finished[i]
		e.forget(f.RunID)
		e.wakeWaiters(f.RunID)
		e.notify(store.Event{Kind: store.EventRun, RunID: f.RunID})
		e.logFinished(f)
	}
	if len(eff.Parked) > 0 {
		e.park(eff.Parked)
	}
	if eff.Due && (len(eff.Claimed) >= want || e.lease > 0) {
		// More may be due than this transaction claimed.
		e.notify(store.Event{Kind: store.EventDue})
		if e.free.Load() > 0 {
			e.signal()
		}
	}
	if !eff.NextDue.IsZero() {
		e.signal() // the claim loop sets its timer
	}
	if eff.Hooks {
		e.signalHooks()
	}
	tasks := buf[:0]
	for i := range eff.Claimed {
		c := &eff.Claimed[i]
		rc := e.runFor(c.RunID, hint)
		if rc != nil && e.lease > 0 && !c.Comp && rc.ctx.Err() != nil {
			// Cancelled here, then retried by another engine.
			e.forget(c.RunID)
			rc = nil
		}
		// On a shared store the cache fills itself when the handler reads
		// a result (runCache.fill): no wait here.
		if rc == nil || e.lease == 0 && !rc.has(c.Seq) && !rc.catchUp(c.Seq, catchUpWait) {
			rc = e.refresh(c.RunID, c.Seq)
		}
		tasks = append(tasks, newTask(c, rc))
	}
	return tasks
}

// catchUpWait is how long a worker waits for a completion committed by
// another worker of this engine to reach the run's cache before it reads
// the results from the store instead.
const catchUpWait = 20 * time.Millisecond

// refresh brings a run's cache up to completion number seq from the store
// (results completed by another engine, or committed by another worker a
// moment ago). A cache it cannot refresh is used as it is: the step then
// misses some previous results rather than not running.
func (e *Engine) refresh(runID string, seq int64) *runCache {
	var rc *runCache
	err := e.store.View(e.bgCtx, func(tx store.Tx) error {
		var err error
		if rc, err = e.cached(tx, runID); err != nil {
			return err
		}
		if rc.has(seq) {
			return nil
		}
		rc.mu.Lock()
		from := rc.contig
		rc.mu.Unlock()
		return rc.load(tx, from)
	})
	if err != nil {
		e.log.Error("dagflow: loading the results of a run", "run", runID, "error", err)
	}
	return rc
}

func (e *Engine) park(ps []flow.Parked) {
	e.pmu.Lock()
	defer e.pmu.Unlock()
	for _, p := range ps {
		rc := e.cachedRun(p.RunID)
		if rc == nil {
			continue
		}
		s := &rc.plan.Steps[p.Index]
		name := s.Handler
		if !p.Handler {
			name = s.CompHandler
		}
		if e.handler(name) != nil {
			go e.unpark(name) // registered in the meantime
		} else if len(e.parked[name]) == 0 {
			e.log.Warn("dagflow: steps wait for a Go handler that is not registered", "handler", name,
				"run", p.RunID, "step", s.ID)
		}
		e.parked[name] = append(e.parked[name], p)
	}
}

// notifier holds the notifications waiting to be sent to the engines that
// share the store, so that no worker waits for one: notifyLoop sends them,
// one EventDue for any number asked for meanwhile.
type notifier struct {
	mu      sync.Mutex
	wake    chan struct{} // nil until notifyLoop runs
	stopped bool          // notifyLoop has ended: send at once
	due     bool
	runs    []string
}

// notify tells the engines sharing the store about ev, after the
// transaction that caused it committed.
func (e *Engine) notify(ev store.Event) {
	w, ok := e.store.(store.Watcher)
	if !ok || e.lease == 0 {
		return
	}
	n := &e.notes
	n.mu.Lock()
	if n.wake == nil || n.stopped {
		n.mu.Unlock()
		e.sendNote(w, ev)
		return
	}
	if ev.Kind == store.EventDue {
		n.due = true
	} else if !slices.Contains(n.runs, ev.RunID) {
		n.runs = append(n.runs, ev.RunID)
	}
	n.mu.Unlock()
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) notifyLoop(w store.Watcher) {
	n := &e.notes
	for {
		select {
		case <-n.wake:
			e.flushNotes(w)
		case <-e.ctx.Done():
			n.mu.Lock()
			n.stopped = true
			n.mu.Unlock()
			e.flushNotes(w)
			return
		}
	}
}

func (e *Engine) flushNotes(w store.Watcher) {
	n := &e.notes
	n.mu.Lock()
	due, runs := n.due, n.runs
	n.due, n.runs = false, nil
	n.mu.Unlock()
	for _, id := range runs {
		e.sendNote(w, store.Event{Kind: store.EventRun, RunID: id})
	}
	if due {
		e.sendNote(w, store.Event{Kind: store.EventDue})
	}
}

func (e *Engine) sendNote(w store.Watcher, ev store.Event) {
	ctx, cancel := context.WithTimeout(e.bgCtx, 5*time.Second)
	defer cancel()
	if err := w.Notify(ctx, ev); err != nil && e.ctx.Err() == nil {
		e.log.Warn("dagflow: notifying other engines", "error", err)
	}
}

// maxStoreRetries bounds how often the engine tries again to record an
// outcome the store refused for a reason other than a lost lease.
const maxStoreRetries = 8

// finish records an attempt's outcome, claims more work with the slot it
// frees (and any other free slot), and returns the task to run next on this
// worker, if any. It frees t.
func (e *Engine) finish(t *task, o flow.Outcome, ws *workerState) *task {
	defer freeTask(t)
	e.unlive(t)
	now := e.now()
	if o.Err == "" && !now.Before(t.deadline) {
		t.late(&o)
	}
	closing := e.ctx.Err() != nil
	if closing && o.Err != "" {
		// Cut short because the engine is closing: give the claim back
		// without counting the attempt; the step runs again when an engine
		// next opens the store. (If this fails too, the next engine counts
		// the attempt as interrupted, as after a crash.)
		err := e.store.Update(e.bgCtx, func(tx store.Tx) error {
			x := flow.Begin(tx, e.env(), e.now(), &ws.eff)
			if err := x.Release(&t.c, "cancelled: the engine closed"); err != nil {
				return err
			}
			return x.Flush()
		})
		if err != nil {
			e.log.Warn("dagflow: giving back an attempt cut short by Close", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		} else {
			e.notify(store.Event{Kind: store.EventDue}) // for the engines that stay
		}
		e.release(1)
		return nil
	}
	want := 0
	if !closing && !e.draining.Load() {
		want = 1 + e.reserve()
	}
	ws.t, ws.o, ws.want = t, o, want
	var err error
	for try := 0; ; try++ {
		if try > 0 {
			now = e.now()
		}
		ws.now = now
		err = e.store.Update(e.bgCtx, ws.fn)
		if err == nil || errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrClosed) || try == maxStoreRetries {
			break
		}
		if e.ctx.Err() == nil {
			e.log.Warn("dagflow: recording an outcome failed; trying again", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		}
		time.Sleep(time.Duration(10<<try) * time.Millisecond)
	}
	ws.t, ws.o, ws.env.hint = nil, flow.Outcome{}, nil
	if err != nil {
		e.release(max(want, 1))
		switch {
		case errors.Is(err, store.ErrLeaseLost):
			e.log.Warn("dagflow: an attempt's outcome was dropped: its lease was taken over", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		case o.Err == "" || !o.Permanent:
			// Could not record the outcome: fail the step for good with
			// a clear error if the store takes that, else leave the claim
			// to be taken over (at the next Open, or when its lease ends).
			e.log.Error("dagflow: recording an outcome failed", "run", t.c.RunID, "step", t.c.StepID, "error", err)
			msg := fmt.Sprintf("the store could not record the attempt's outcome: %v", err)
			if e.store.Update(e.bgCtx, func(tx store.Tx) error {
				x := flow.Begin(tx, e.env(), e.now(), &ws.eff)
				if err := x.Finish(&t.c, flow.Outcome{Err: msg, Permanent: true}); err != nil {
					return err
				}
				return x.Flush()
			}) == nil {
				e.apply(&ws.eff, 0, nil, t.rc)
			}
		default:
			e.log.Error("dagflow: recording an outcome failed", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		}
		return nil
	}
	e.logAttempt(t, &o)
	ws.tasks = e.apply(&ws.eff, want, ws.tasks, t.rc)
	tasks := ws.tasks
	// This worker held one slot and reserved want-1 more; the tasks hold
	// len(tasks) of them now.
	e.release(max(want, 1) - len(tasks))
	if len(tasks) == 0 {
		return nil
	}
	for _, nt := range tasks[1:] {
		e.submit(nt)
	}
	next := tasks[0]
	clear(ws.tasks)
	return next
}

// logAttempt logs how an attempt ended: at INFO when it failed, at DEBUG
// when it completed. (Not inlined: the log calls' arguments would grow the
// frame of every finish.)
//
//go:noinline
func (e *Engine) logAttempt(t *task, o *flow.Outcome) {
	if o.Err != "" {
		what := "dagflow: attempt failed"
		if t.c.Comp {
			what = "dagflow: compensation attempt failed"
		}
		e.log.Info(what, "run", t.c.RunID, "step", t.c.StepID, "attempt", t.c.Attempt, "error", o.Err, "permanent", o.Permanent)
	} else if e.log.Enabled(e.bgCtx, slog.LevelDebug) {
		what := "dagflow: attempt completed"
		if t.c.Comp {
			what = "dagflow: compensation attempt completed"
		}
		e.log.Debug(what, "run", t.c.RunID, "step", t.c.StepID, "attempt", t.c.Attempt)
	}
}

// logFinished logs a run that ended: at INFO when it failed or was
// cancelled, at DEBUG when it completed.
//
//go:noinline
func (e *Engine) logFinished(f *flow.Finish) {
	if f.State != store.RunCompleted {
		e.log.Info("dagflow: run ended", "run", f.RunID, "state", f.State, "error", f.Error)
	} else if e.log.Enabled(e.bgCtx, slog.LevelDebug) {
		e.log.Debug("dagflow: run completed", "run", f.RunID)
	}
}

// logPanic keeps the stack of a handler's panic with the attempt's logs,
// which the engine's logger gets too.
//
//go:noinline
func (e *Engine) logPanic(ctx *attemptCtx, in *Input, pe *PanicError) {
	ctx.logger(e, in).Error("the handler panicked", "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
}

// execute runs one attempt and says how it ended. It never panics.
func (e *Engine) execute(t *task) (o flow.Outcome) {
	c, rc := &t.c, t.rc
	sp := &rc.plan.Steps[c.Index]
	// The attempt's time runs from its claim, when the store recorded
	// that it started (the claim was made a moment ago, by this worker or
	// just before it took the task).
	start := c.StartedAt
	if start.IsZero() {
		start = time.Now()
	}
	deadline := start.Add(sp.Timeout)
	runDeadline := false
	if !c.Comp && !c.Deadline.IsZero() && c.Deadline.Before(deadline) {
		deadline, runDeadline = c.Deadline, true
	}
	// A compensation runs because the run was stopped (cancelled, timed
	// out, failed): it must not inherit the run's cancellation, only the
	// engine's.
	parent := rc.ctx
	if c.Comp {
		parent = e.ctx
	}
	ctx := &attemptCtx{}
	ctx.init(parent, deadline)
	ctx.e = e
	defer ctx.release()
	t.ctx = ctx
	if e.lease > 0 {
		e.setLive(t)
	}
	in := Input{WorkflowID: rc.id, StepID: sp.ID, Attempt: c.Attempt, Context: rc.context,
		PreviousSteps: Results{rc: rc, upto: c.Seq}, Compensation: c.Comp, Result: c.Result,
		FailedDependencies: c.FailedDeps, att: ctx}
	var err error
	if sp.Handler != "" {
		name := sp.Handler
		if c.Comp {
			name = sp.CompHandler
		}
		h := e.handler(name)
		if h == nil {
			err = fmt.Errorf("no handler named %q is registered on this engine", name)
		} else {
			var res any
			res, err = callHandler(ctx, h, in)
			if err == nil {
				o.Result, err = marshalResult(res)
			} else if pe, ok := err.(*PanicError); ok {
				e.logPanic(ctx, &in, pe) // the stack, for whoever debugs it
			}
		}
	} else {
		url := sp.URL
		if c.Comp {
			url = sp.CompURL
		}
		o, err = e.callHTTP(ctx, url, in)
	}
	t.deadline, t.runDeadline = deadline, runDeadline
	o.Logs, o.LogsCut = ctx.takeLogs()
	if err == nil {
		return o
	}
	o.Result = nil
	o.Err = err.Error()
	o.Permanent = IsPermanent(err)
	if ctxErr := ctx.Err(); ctxErr != nil {
		switch {
		case rc.ctx.Err() != nil && e.ctx.Err() == nil:
			o.Err = "cancelled: " + o.Err
			o.Permanent = true
		case errors.Is(ctxErr, context.DeadlineExceeded):
			t.timedOut(&o)
		}
	}
	return o
}

// timedOut makes o the outcome of t's attempt ended by its deadline.
func (t *task) timedOut(o *flow.Outcome) {
	if t.runDeadline {
		o.Err = fmt.Sprintf("workflow timed out after %s: %s", t.rc.plan.Timeout, o.Err)
		o.Permanent = true
		return
	}
	o.Err = fmt.Sprintf("attempt timed out after %s: %s", t.rc.plan.Steps[t.c.Index].Timeout, o.Err)
}

// late makes the outcome of an attempt whose handler returned a result
// after the attempt's deadline, having ignored its context, a time-out,
// as an HTTP step's late reply is: its result is dropped, and a run cannot
// end completed past its timeout because a handler overran.
//
//go:noinline
func (t *task) late(o *flow.Outcome) {
	o.Result, o.Err, o.Permanent = nil, errLate.Error(), false
	t.timedOut(o)
}

func (e *Engine) callHTTP(ctx context.Context, url string, in Input) (flow.Outcome, error) {
	var o flow.Outcome
	body, err := in.MarshalJSON()
	if err != nil {
		return o, Permanent(fmt.Errorf("encoding the step input: %w", err))
	}
	start := time.Now()
	reply, err := e.http.Call(ctx, url, in.IdempotencyKey(), body)
	o.StatusCode, o.Duration = reply.StatusCode, reply.Duration
	if o.Duration == 0 {
		o.Duration = time.Since(start)
	}
	if err != nil {
		var he *httpstep.Error
		if errors.As(err, &he) {
			o.StatusCode = he.StatusCode
			o.RetryAfter = he.RetryAfter
			if !he.Retryable {
				err = Permanent(err)
			}
		}
		return o, err
	}
	o.Result = reply.Result
	return o, nil
}

// callHandler calls h, turning a panic into a *PanicError.
func callHandler(ctx context.Context, h HandlerFunc, in Input) (res any, err error) {
	defer func() {
		if p := recover(); p != nil {
			res, err = nil, &PanicError{Value: p, Stack: debug.Stack()}
		}
	}()
	return h(ctx, in)
}

// marshalResult encodes a handler's result. A result that cannot be encoded
// fails the step for good: another attempt would return the same.
func marshalResult(v any) (json.RawMessage, error) {
	switch r := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(r) {
			return nil, Permanent(errors.New("the handler's result is a json.RawMessage that is not valid JSON"))
		}
		return r, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Permanent(fmt.Errorf("the handler's result cannot be encoded as JSON: %w", err))
	}
	return b, nil
}

func (e *Engine) setLive(t *task) {
	e.lmu.Lock()
	e.live[t] = struct{}{}
	e.lmu.Unlock()
}

func (e *Engine) unlive(t *task) {
	if e.lease == 0 {
		return
	}
	e.lmu.Lock()
	delete(e.live, t)
	e.lmu.Unlock()
}

// renewLoop extends the leases of the attempts this engine runs, on a store
// shared with other engines, and cancels an attempt whose lease was lost.
func (e *Engine) renewLoop() {
	tick := time.NewTicker(e.lease / 3)
	defer tick.Stop()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-tick.C:
		}
		// Copy the claims: a task is freed (and reused) by its worker as
		// soon as it leaves the live set.
		type liveClaim struct {
			t *task
			c flow.Claim
		}
		e.lmu.Lock()
		claims := make([]liveClaim, 0, len(e.live))
		for t := range e.live {
			claims = append(claims, liveClaim{t, t.c})
		}
		e.lmu.Unlock()
		if len(claims) == 0 {
			continue
		}
		// One order of row locks for every renewal.
		slices.SortFunc(claims, func(a, b liveClaim) int {
			return cmp.Or(cmp.Compare(a.c.RunID, b.c.RunID), cmp.Compare(a.c.Index, b.c.Index))
		})
		var lost []liveClaim
		err := e.store.Update(e.ctx, func(tx store.Tx) error {
			lost = lost[:0]
			var eff flow.Effects
			x := flow.Begin(tx, e.env(), e.now(), &eff)
			for _, lc := range claims {
				if err := x.Renew(&lc.c, e.lease); errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrNotFound) {
					lost = append(lost, lc)
				} else if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			if e.ctx.Err() == nil {
				e.log.Warn("dagflow: renewing leases", "error", err)
			}
			continue
		}
		e.lmu.Lock()
		for _, lc := range lost {
			// Only an attempt still under way: one that ended since the
			// copy gave its claim up itself.
			if _, ok := e.live[lc.t]; !ok || lc.t.c.Token != lc.c.Token || lc.t.c.RunID != lc.c.RunID || lc.t.c.Index != lc.c.Index {
				continue
			}
			e.log.Warn("dagflow: lease lost; cancelling the attempt", "run", lc.c.RunID, "step", lc.c.StepID)
			if lc.t.ctx != nil {
				lc.t.ctx.end(errLeaseLost)
			}
		}
		e.lmu.Unlock()
		// The slow fallback for a lost notification: cancel the attempts
		// of runs that another engine cancelled or that timed out.
		var runs []string
		for _, lc := range claims {
			if len(runs) == 0 || runs[len(runs)-1] != lc.c.RunID {
				runs = append(runs, lc.c.RunID)
			}
		}
		e.checkRuns(runs)
	}
}

// watchLoop turns a shared store's notifications into work: due steps and
// webhooks are claimed, stopped runs' attempts cancelled, waiters woken.
func (e *Engine) watchLoop(ch <-chan store.Event) {
	for ev := range ch {
		switch ev.Kind {
		case store.EventDue:
			e.signal()
			e.signalHooks()
		case store.EventRun:
			e.wakeWaiters(ev.RunID)
			e.checkRuns([]string{ev.RunID})
		}
	}
}

// checkRuns looks at runs this engine works on that another engine may have
// stopped or ended: the attempts of a run cancelled or timed out are
// cancelled, and an ended run leaves the cache.
func (e *Engine) checkRuns(ids []string) {
	var rcs []*runCache
	var runs []store.Run
	for _, id := range ids {
		if rc := e.cachedRun(id); rc != nil {
			rcs = append(rcs, rc)
		}
	}
	if len(rcs) == 0 {
		return
	}
	err := e.store.View(e.ctx, func(tx store.Tx) error {
		runs = runs[:0]
		for _, rc := range rcs {
			r, err := tx.Run(rc.id)
			if errors.Is(err, store.ErrNotFound) {
				r = store.Run{ID: rc.id, State: store.RunCancelled} // deleted
			} else if err != nil {
				return err
			}
			runs = append(runs, r)
		}
		return nil
	})
	if err != nil {
		if e.ctx.Err() == nil {
			e.log.Warn("dagflow: reading runs other engines changed", "error", err)
		}
		return
	}
	for i, r := range runs {
		switch {
		case r.State.Final():
			e.forget(r.ID)
			e.wakeWaiters(r.ID)
		case r.Phase == store.PhaseStopping && (r.Outcome == store.RunCancelled || isTimeout(r.Error)):
			rcs[i].cancelFor(r.Error)
		case r.Phase == store.PhaseActive && rcs[i].ctx.Err() != nil:
			// Retried since it was cancelled here: its attempts need a
			// context that is not cancelled.
			e.forget(r.ID)
		}
	}
}

// errLate is the error of an attempt whose handler returned after the
// attempt's deadline.
var errLate = fmt.Errorf("the handler returned after the deadline, ignoring its context: %w", context.DeadlineExceeded)

// errLeaseLost ends the context of an attempt whose lease another engine
// took over.
var errLeaseLost = errors.New("dagflow: the attempt's lease was lost to another engine")

func isTimeout(reason string) bool {
	return len(reason) >= 16 && reason[:16] == "workflow timed o"
}
