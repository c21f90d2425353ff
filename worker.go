package dagflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// A worker runs one attempt after another: the attempt of a claim, then the
// transaction that records its outcome, which claims the next due step with
// the same worker slot, so that a chain of steps goes on without a hand-off
// (see Engine.finish). Workers run on an errgroup limited to the engine's
// concurrency; the scheduler hands them the claims it makes.

// task is a claimed attempt.
type task struct {
	c  flow.Claim
	ri *runInfo
	// Set by execute, for finish: the attempt's context and deadline, and
	// the context the hooks made.
	ctx      *attemptCtx
	deadline time.Time
	hctx     context.Context
	// started is when the attempt got its slot, when it waited for one
	// (a step claimed ahead); zero when it did not.
	started time.Time
	// lost is set, under the engine's leases' lock, when the lease of a
	// step claimed ahead was lost before its attempt started.
	lost bool
}

// work runs t, then whatever its outcome's transaction claims next, and
// gives the worker's slot back.
func (e *Engine) work(t *task) {
	var ts *txState
	select {
	case ts = <-e.sched.spare:
	default:
		ts = new(txState)
	}
	ahead := e.sched.ahead > 0 // else every worker runs its attempts at once
	for t != nil {
		if e.lease > 0 {
			e.leases.add(t)
		}
		if ahead && !e.startSlot(t) {
			break
		}
		o := e.execute(t)
		if ahead {
			<-e.sched.exec
			e.sched.ends.ended(e.now())
		}
		t = e.finish(t, o, ts)
	}
	ts.cache.Reset(nil)
	select {
	case e.sched.spare <- ts:
	default:
	}
	e.sched.workerDone()
}

// startSlot, on an engine that claims ahead, waits until fewer than its
// concurrency of attempts run, and takes a place among them for t's
// attempt: a step claimed ahead waits here for an attempt to end. It gives
// t's claim back and returns false when the engine closes first, or when t
// waited aheadWait.
func (e *Engine) startSlot(t *task) bool {
	s := e.sched
	select {
	case s.exec <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(aheadWait)
	defer timer.Stop()
	select {
	case s.exec <- struct{}{}:
		t.started = e.now()
		return true
	case <-e.ctx.Done():
		e.giveBack(t, "cancelled: the engine closed")
	case <-timer.C:
		e.giveBack(t, "no worker was free")
	}
	return false
}

// giveBack gives back the claim of an attempt that did not start: it does
// not count, and the step is due again at once, here or on another engine.
func (e *Engine) giveBack(t *task, why string) {
	e.leases.remove(t)
	err := e.update(e.bgCtx, func(_ store.Tx, x *flow.Txn) error { return x.Release(&t.c, why) })
	if err != nil && !errors.Is(err, store.ErrClosed) {
		e.log.Warn("dagflow: giving back a claimed step that did not start", "run", t.c.RunID, "step", t.c.StepID, "reason", why, "error", err)
	}
}

// maxStoreRetries bounds how often the engine tries again to record an
// outcome the store refused for a reason other than a lost lease.
const maxStoreRetries = 8

// maxReadHints bounds the steps an outcome's Update names to the store:
// past it, a store reads a run's steps in bulk anyway.
const maxReadHints = 16

// reads returns the steps, besides its own, that recording outcome o of
// claim c reads first: a completed step's dependents, and a map item's step.
func reads(c *flow.Claim, o flow.Outcome) []int {
	switch {
	case c.Item > 0:
		return []int{c.Index}
	case c.Comp || o.Err != "" || c.Plan == nil:
		return nil
	}
	deps := c.Plan.Steps[c.Index].Dependents
	if len(deps) == 0 || len(deps) > maxReadHints {
		return nil
	}
	out := make([]int, len(deps))
	for i, d := range deps {
		out[i] = int(d)
	}
	return out
}

// finish records an attempt's outcome and, with the same transaction, claims
// due steps for this worker's slot and the slots free then: those the outcome
// made ready first. It hands all but the first to new workers and returns
// the first, if any, for this worker to run next.
func (e *Engine) finish(t *task, o flow.Outcome, ts *txState) *task {
	e.leases.remove(t)
	if o.Err == "" && !e.now().Before(t.deadline) {
		late(t, &o)
	}
	e.hookEnded(t, &o)
	closing := e.ctx.Err() != nil
	if closing && o.Err != "" {
		// Cut short because the engine is closing: give the claim back
		// without counting the attempt; the step runs again when an engine
		// next opens the store.
		err := e.update(e.bgCtx, func(_ store.Tx, x *flow.Txn) error { return x.Release(&t.c, "cancelled: the engine closed") })
		if err != nil {
			e.log.Warn("dagflow: giving back an attempt cut short by Close", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		}
		return nil
	}
	// Claim, with this worker's slot and the slots free now, the steps
	// the outcome made ready (else those due longest).
	want := 0
	if !closing && !e.draining.Load() {
		want = 1 + e.sched.reserve()
	}
	var err error
	var named []int
	if e.lease > 0 {
		// A store that engines share reads over a network, where naming
		// the steps to read saves round trips; the others need no names.
		named = reads(&t.c, o)
	}
	ctx := store.ForRun(e.bgCtx, t.c.RunID, named...)
	for try := 0; ; try++ {
		err = e.store.Update(ctx, func(tx store.Tx) error {
			return e.inTx(tx, ts, func(_ store.Tx, x *flow.Txn) error {
				if err := x.Finish(&t.c, o); err != nil {
					return err
				}
				if want > 0 {
					return x.Continue(want)
				}
				return nil
			})
		})
		if err == nil || errors.Is(err, store.ErrLeaseLost) || errors.Is(err, store.ErrClosed) || try == maxStoreRetries {
			break
		}
		if e.ctx.Err() == nil {
			e.log.Warn("dagflow: recording an outcome failed; trying again", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		}
		time.Sleep(time.Duration(10<<try) * time.Millisecond)
	}
	if err != nil {
		e.sched.release(want - 1)
		e.outcomeLost(t, o, err)
		return nil
	}
	e.logAttempt(t, &o)
	e.apply(&ts.eff)
	claimed := ts.eff.Claimed
	e.sched.release(want - max(len(claimed), 1))
	if len(claimed) == 0 {
		return nil
	}
	for i := 1; i < len(claimed); i++ {
		e.sched.submit(&task{c: claimed[i], ri: e.claimedRun(&claimed[i])})
	}
	// The worker goes on with the first.
	*t = task{c: claimed[0], ri: e.claimedRun(&claimed[0])}
	return t
}

// outcomeLost handles an outcome the store would not record.
func (e *Engine) outcomeLost(t *task, o flow.Outcome, err error) {
	switch {
	case errors.Is(err, store.ErrLeaseLost):
		e.log.Warn("dagflow: an attempt's outcome was dropped: its lease was taken over", "run", t.c.RunID, "step", t.c.StepID, "error", err)
	case o.Err == "" || !o.Permanent:
		// Fail the step for good with a clear error if the store takes
		// that; else leave the claim to be taken over (at the next Open,
		// or when its lease ends).
		e.log.Error("dagflow: recording an outcome failed", "run", t.c.RunID, "step", t.c.StepID, "error", err)
		msg := fmt.Sprintf("the store could not record the attempt's outcome: %v", err)
		_ = e.update(e.bgCtx, func(_ store.Tx, x *flow.Txn) error { return x.Finish(&t.c, flow.Outcome{Err: msg, Permanent: true}) })
	default:
		e.log.Error("dagflow: recording an outcome failed", "run", t.c.RunID, "step", t.c.StepID, "error", err)
	}
}

// logAttempt logs how an attempt ended: at INFO when it failed, at DEBUG
// when it completed.
func (e *Engine) logAttempt(t *task, o *flow.Outcome) {
	what := "dagflow: attempt"
	if t.c.Comp {
		what = "dagflow: compensation attempt"
	}
	if o.Err == "" && !e.log.Enabled(e.bgCtx, slog.LevelDebug) {
		return
	}
	args := []any{"run", t.c.RunID, "step", t.c.StepID}
	if t.c.Item > 0 {
		args = append(args, "item", t.c.Item-1)
	}
	args = append(args, "attempt", t.c.Attempt)
	if o.Err != "" {
		e.log.Info(what+" failed", append(args, "error", o.Err, "permanent", o.Permanent)...)
	} else {
		e.log.Debug(what+" completed", args...)
	}
}

// execute runs one attempt and says how it ended. It never panics.
func (e *Engine) execute(t *task) (o flow.Outcome) {
	c, ri := &t.c, t.ri
	sp := &c.Plan.Steps[c.Index]
	// The attempt's time runs from its claim, when the store recorded
	// that it started, or, for a step claimed ahead, from when a slot
	// became free.
	deadline := c.StartedAt.Add(sp.Timeout)
	if t.started.After(c.StartedAt) {
		deadline = t.started.Add(sp.Timeout)
	}
	runDeadline := false
	if !c.Comp && !c.Deadline.IsZero() && c.Deadline.Before(deadline) {
		deadline, runDeadline = c.Deadline, true
	}
	t.deadline = deadline
	// A compensation runs because the run was stopped (cancelled, timed
	// out, failed): it must not inherit the run's cancellation, only the
	// engine's.
	parent := e.ctx
	if !c.Comp {
		parent = ri.attemptParent(e.ctx)
	}
	ctx := newAttemptCtx(parent, deadline, e)
	defer ctx.release()
	if e.lease > 0 {
		e.leases.started(t, ctx)
	} else {
		t.ctx = ctx
	}
	in := e.input(t, ctx)
	hctx := e.hookStarted(ctx, t)
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
			res, err = callHandler(hctx, h, in)
			if err == nil {
				o.Result, err = e.marshalResult(res)
			} else if pe, ok := err.(*PanicError); ok {
				ctx.logger(&in).Error("the handler panicked", "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
			}
		}
	} else {
		url := sp.URL
		if c.Comp {
			url = sp.CompURL
		}
		o, err = e.callHTTP(hctx, url, in)
		if err == nil && len(o.Result) > e.cfg.maxPayload {
			err = Permanent(fmt.Errorf("the result is %d bytes; the limit is %d (WithMaxPayload)", len(o.Result), e.cfg.maxPayload))
		}
	}
	o.Logs, o.LogsCut = ctx.takeLogs()
	if err == nil {
		return o
	}
	o.Result = nil
	o.Err = err.Error()
	o.Permanent = IsPermanent(err)
	if ctxErr := ctx.Err(); ctxErr != nil {
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errClosing):
		case errors.Is(ctxErr, context.DeadlineExceeded):
			timedOut(t, &o, runDeadline)
		default:
			// Cancelled with its run (Cancel, a timeout another engine
			// saw, the parent's end): over for good.
			o.Err = "cancelled: " + o.Err
			o.Permanent = true
		}
	}
	return o
}

// timedOut makes o the outcome of t's attempt ended by its deadline.
func timedOut(t *task, o *flow.Outcome, runDeadline bool) {
	if runDeadline {
		o.Err = fmt.Sprintf("workflow timed out after %s: %s", t.c.Plan.Timeout, o.Err)
		o.Permanent, o.Timeout = true, true
		return
	}
	o.Err = fmt.Sprintf("attempt timed out after %s: %s", t.c.Plan.Steps[t.c.Index].Timeout, o.Err)
}

// late makes the outcome of an attempt whose handler returned a result
// after the attempt's deadline, having ignored its context, a time-out, as
// an HTTP step's late reply is: its result is dropped, and a run cannot end
// completed past its timeout because a handler overran.
func late(t *task, o *flow.Outcome) {
	o.Result, o.Err, o.Permanent = nil, errLate.Error(), false
	timedOut(t, o, !t.c.Comp && !t.c.Deadline.IsZero() && !t.deadline.Before(t.c.Deadline))
}

// errLate is the error of an attempt whose handler returned after the
// attempt's deadline.
var errLate = fmt.Errorf("the handler returned after the deadline, ignoring its context: %w", context.DeadlineExceeded)

// input is the step input of an attempt.
func (e *Engine) input(t *task, ctx *attemptCtx) Input {
	c, ri := &t.c, t.ri
	in := Input{WorkflowID: c.RunID, StepID: c.StepID, Attempt: c.Attempt, Generation: c.Generation,
		Context: ri.wf.Context, Compensation: c.Comp, Result: c.Result, FailedDependencies: c.FailedDeps}
	ctx.results = attemptResults{e: e, ri: ri, gen: c.Generation, step: c.Index, seq: c.Seq,
		all: ri.wf.PreviousSteps == PreviousAll}
	in.PreviousSteps = Results{src: &ctx.results}
	if c.Item > 0 {
		in.Item, in.Index = c.Input, c.Item-1
	}
	in.attempt = ctx
	return in
}

// attemptResults are the results an attempt sees (see Results).
type attemptResults struct {
	e    *Engine
	ri   *runInfo
	gen  int
	step int
	seq  int64 // for "all": the run's completions when the attempt was claimed
	all  bool

	once      sync.Once
	ancestors map[int]bool
}

func (a *attemptResults) ids() []string {
	p := a.ri.plan
	var ids []string
	if a.all {
		for i := range p.Steps {
			ids = append(ids, p.Steps[i].ID)
		}
		return ids
	}
	for _, i := range p.Ancestors(a.step) {
		ids = append(ids, p.Steps[i].ID)
	}
	return ids
}

func (a *attemptResults) get(id string) (json.RawMessage, bool) {
	i := a.ri.index(id)
	if i < 0 {
		return nil, false
	}
	if !a.all {
		a.once.Do(func() {
			a.ancestors = map[int]bool{}
			for _, j := range a.ri.plan.Ancestors(a.step) {
				a.ancestors[j] = true
			}
		})
		if !a.ancestors[i] {
			return nil, false
		}
	}
	r, ok := a.e.result(a.ri, a.gen, i)
	if !ok || a.all && r.seq > a.seq {
		return nil, false
	}
	return r.raw, true
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

// marshalResult encodes a handler's result. A result that cannot be encoded,
// or is over the payload limit, fails the step for good: another attempt
// would return the same.
func (e *Engine) marshalResult(v any) (json.RawMessage, error) {
	var b json.RawMessage
	switch r := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		if !json.Valid(r) {
			return nil, Permanent(errors.New("the handler's result is a json.RawMessage that is not valid JSON"))
		}
		b = r
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			return nil, Permanent(fmt.Errorf("the handler's result cannot be encoded as JSON: %w", err))
		}
	}
	if len(b) > e.cfg.maxPayload {
		return nil, Permanent(fmt.Errorf("the result is %d bytes; the limit is %d (WithMaxPayload)", len(b), e.cfg.maxPayload))
	}
	return b, nil
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
