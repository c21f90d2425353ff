package dagflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// runCache is what the engine keeps in memory of a run it is working on: the
// compiled plan, the workflow, and one shared copy of each completed step's
// result, so that previousSteps costs nothing per step.
type runCache struct {
	id      string
	plan    *flow.Plan
	context json.RawMessage // the workflow's

	indexOnce sync.Once
	index     map[string]int // step ids, made when a handler first reads a result

	// ctx is cancelled when the run is cancelled or times out, which
	// cancels the contexts of its attempts on this engine.
	ctx  context.Context
	stop context.CancelCauseFunc
	// gone is set when the run leaves the engine's cache: a worker that
	// kept this runCache from its last task then looks the run up again.
	gone atomic.Bool

	// done[i] is step i's completion: its number (0: not completed) and
	// its result, written before the number is stored.
	done []completion

	mu      sync.Mutex
	filled  []bool        // by completion number, to track contig
	contig  int64         // completions 1..contig are all in the cache
	changed chan struct{} // made by catchUp, closed when contig grows

	// fill is set on a store shared with other engines, whose completions
	// reach the cache only from the store: result calls it to read them
	// when a handler first asks for a result the cache may lack (see
	// Engine.fill), so that steps that read no result cost no read.
	fill   func(rc *runCache, upto int64)
	fillMu sync.Mutex // one fill at a time
}

// completion is a step's completion as a runCache keeps it.
type completion struct {
	seq    atomic.Int64
	result json.RawMessage
}

func newRunCache(parent context.Context, id string, wfContext json.RawMessage, plan *flow.Plan) *runCache {
	n := len(plan.Steps)
	rc := &runCache{id: id, plan: plan, context: wfContext, done: make([]completion, n)}
	rc.ctx, rc.stop = context.WithCancelCause(parent)
	return rc
}

// cancel cancels the contexts of the run's attempts on this engine, which
// have left the cache or been cut short otherwise.
func (rc *runCache) cancel() { rc.stop(errRunEnded) }

// cancelFor cancels the contexts of the run's attempts because the run was
// cancelled or timed out: context.Cause of a handler's context then says
// which, with the run's error.
func (rc *runCache) cancelFor(reason string) {
	rc.stop(fmt.Errorf("dagflow: run %q stopped: %s", rc.id, reason))
}

// errRunEnded is the cause of a run context's cancellation when the run
// leaves the engine's cache.
var errRunEnded = errors.New("dagflow: the run ended or left this engine")

// lookup returns the index of a step by its id.
func (rc *runCache) lookup(stepID string) (int, bool) {
	rc.indexOnce.Do(func() {
		rc.index = make(map[string]int, len(rc.plan.Steps))
		for i := range rc.plan.Steps {
			rc.index[rc.plan.Steps[i].ID] = i
		}
	})
	i, ok := rc.index[stepID]
	return i, ok
}

// result returns step i's result if it completed at or before upto.
func (rc *runCache) result(i int, upto int64) (json.RawMessage, bool) {
	if rc.fill != nil && !rc.has(upto) {
		rc.fill(rc, upto)
	}
	s := rc.done[i].seq.Load()
	if s == 0 || s > upto {
		return nil, false
	}
	r := rc.done[i].result
	if r == nil {
		r = json.RawMessage("null")
	}
	return r, true
}

// complete records that step i completed as completion number seq.
func (rc *runCache) complete(i int, seq int64, result json.RawMessage) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.done[i].seq.Load() != 0 {
		return
	}
	rc.done[i].result = result
	rc.done[i].seq.Store(seq)
	for int64(len(rc.filled)) <= seq {
		rc.filled = append(rc.filled, false)
	}
	rc.filled[seq] = true
	grew := false
	for rc.contig+1 < int64(len(rc.filled)) && rc.filled[rc.contig+1] {
		rc.contig++
		grew = true
	}
	if grew && rc.changed != nil {
		close(rc.changed)
		rc.changed = nil
	}
}

// has reports whether every completion up to seq is in the cache.
func (rc *runCache) has(seq int64) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.contig >= seq
}

// catchUp waits up to d for the cache to hold every completion up to seq:
// a completion another worker has just committed reaches the cache a moment
// after its commit. It reports whether the cache caught up.
func (rc *runCache) catchUp(seq int64, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	rc.mu.Lock()
	for {
		if rc.contig >= seq {
			rc.mu.Unlock()
			return true
		}
		if rc.changed == nil {
			rc.changed = make(chan struct{})
		}
		ch := rc.changed
		rc.mu.Unlock()
		select {
		case <-ch:
		case <-timer.C:
			return rc.has(seq)
		}
		rc.mu.Lock()
	}
}

func (rc *runCache) load(tx store.Tx, after int64) error {
	steps, err := tx.CompletedAfter(rc.id, after)
	if err != nil {
		return err
	}
	for _, st := range steps {
		if st.Index >= 0 && st.Index < len(rc.done) {
			rc.complete(st.Index, st.Seq, st.Result)
		}
	}
	return nil
}

// Plan implements flow.Env: it returns the cached plan of a run, compiling
// it from the stored spec the first time.
func (v *flowEnv) Plan(tx store.Tx, runID string) (*flow.Plan, error) {
	rc, err := (*Engine)(v).cached(tx, runID)
	if err != nil {
		return nil, err
	}
	return rc.plan, nil
}

// cached returns the cache of a run, building it from the store through tx
// when the engine has none.
func (e *Engine) cached(tx store.Tx, runID string) (*runCache, error) {
	e.cmu.Lock()
	rc := e.cache[runID]
	e.cmu.Unlock()
	if rc != nil {
		return rc, nil
	}
	spec, err := tx.Spec(runID)
	if err != nil {
		return nil, fmt.Errorf("reading the spec of run %q: %w", runID, err)
	}
	wf, err := decodeSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("decoding the stored spec of run %q: %w", runID, err)
	}
	rc = newRunCache(e.ctx, runID, wf.Context, compile(&wf, nil))
	if e.lease > 0 {
		// A shared store: results are read when a handler asks for them
		// (in a View, which locks nothing), not here, where tx may be a
		// claim that would lock every completed step of the run.
		rc.fill = e.fill
	} else if err := rc.load(tx, 0); err != nil {
		return nil, err
	}
	e.cmu.Lock()
	defer e.cmu.Unlock()
	if old := e.cache[runID]; old != nil {
		rc.cancel()
		return old, nil
	}
	e.cache[runID] = rc
	return rc, nil
}

// sharedCatchUp is how long a handler on a shared store waits for
// completions committed by other workers of this engine to reach the cache
// before it reads them from the store.
const sharedCatchUp = 2 * time.Millisecond

// fill brings a run's cache up to completion number upto on a shared store:
// completions of this engine reach it a moment after their commit, those of
// other engines are read from the store. A cache it cannot fill is used as
// it is, and the error logged: the step misses some previous results rather
// than not running.
func (e *Engine) fill(rc *runCache, upto int64) {
	if rc.catchUp(upto, sharedCatchUp) {
		return
	}
	rc.fillMu.Lock()
	defer rc.fillMu.Unlock()
	if rc.has(upto) {
		return // filled by another handler meanwhile
	}
	err := e.store.View(e.bgCtx, func(tx store.Tx) error {
		rc.mu.Lock()
		from := rc.contig
		rc.mu.Unlock()
		return rc.load(tx, from)
	})
	if err != nil {
		e.log.Error("dagflow: loading the results of a run", "run", rc.id, "error", err)
	}
}

func (e *Engine) cachedRun(runID string) *runCache {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	return e.cache[runID]
}

// forget drops a run that ended from the cache.
func (e *Engine) forget(runID string) {
	e.cmu.Lock()
	rc := e.cache[runID]
	delete(e.cache, runID)
	e.cmu.Unlock()
	if rc != nil {
		rc.gone.Store(true)
		rc.cancel()
	}
}

// runFor returns the cache of a run: hint when it is that run's and still
// in the cache (a worker's last task's run, which its next transaction
// almost always touches again), else whatever the cache holds.
func (e *Engine) runFor(runID string, hint *runCache) *runCache {
	if hint.holds(runID) {
		return hint
	}
	return e.cachedRun(runID)
}

// holds reports whether rc, which may be nil, is the cache of run runID
// that the engine still keeps.
func (rc *runCache) holds(runID string) bool {
	return rc != nil && rc.id == runID && !rc.gone.Load()
}

// defaultRetry is the policy of a step that sets none.
var defaultRetry = flow.Retry{MaxAttempts: DefaultMaxAttempts, Kind: flow.Exponential,
	Initial: seconds(DefaultInitialInterval), Max: seconds(DefaultMaxInterval)}

// retryPool hands out one *flow.Retry per distinct policy of a workflow.
type retryPool struct {
	m    map[flow.Retry]*flow.Retry
	last *flow.Retry // most steps share the policy of the step before
}

func (p *retryPool) get(r flow.Retry) *flow.Retry {
	if p.last != nil && *p.last == r {
		return p.last
	}
	if r == defaultRetry {
		p.last = &defaultRetry // shared by every plan: plans never change a policy
		return p.last
	}
	if p.m == nil {
		p.m = make(map[flow.Retry]*flow.Retry)
	}
	q, ok := p.m[r]
	if !ok {
		q = new(flow.Retry) // not &r: that would put r on the heap on every call
		*q = r
		p.m[r] = q
	}
	p.last = q
	return q
}

// indexDeps builds the dependency graph of a workflow known to be valid
// (one read back from the store).
func indexDeps(w *Workflow) *depGraph {
	index := make(map[string]int32, len(w.Steps))
	for i := range w.Steps {
		index[w.Steps[i].ID] = int32(i)
	}
	g := &depGraph{first: make([]int32, len(w.Steps)+1)}
	for i := range w.Steps {
		g.first[i] = int32(len(g.edges))
		for _, d := range w.Steps[i].DependsOn {
			g.edges = append(g.edges, index[d])
		}
	}
	g.first[len(w.Steps)] = int32(len(g.edges))
	return g
}

// compile turns a workflow, its own fields normalized (withDefaults), into
// the state machine's plan. g is
// its dependency graph when validation built it, or nil.
func compile(w *Workflow, g *depGraph) *flow.Plan {
	p := &flow.Plan{
		Saga: w.Saga, Continue: w.OnStepFailure == ContinueOnFailure, Timeout: seconds(w.Timeout),
		OnComplete: w.OnComplete, OnError: w.OnError,
		Steps: make([]flow.StepPlan, len(w.Steps)),
	}
	if g == nil {
		g = indexDeps(w)
	}
	var retries retryPool
	ndeps := len(g.edges)
	// One backing array for every dependency list (g's), and one for every
	// dependents list, the offsets of those lists and a cursor into each.
	n := len(w.Steps)
	buf := make([]int32, ndeps+2*n+1)
	dependents := buf[:ndeps:ndeps]
	offset := buf[ndeps : ndeps+n+1 : ndeps+n+1]
	fill := buf[ndeps+n+1:]
	for _, j := range g.edges {
		offset[j+1]++ // a count for now
	}
	for i := range w.Steps {
		st := normalizedStep(w.Steps[i], &defaultRetries)
		s := &st
		deps := g.edges[g.first[i]:g.first[i+1]:g.first[i+1]]
		r := s.Retries
		if r == nil {
			r = &RetryConfig{MaxAttempts: DefaultMaxAttempts, InitialInterval: DefaultInitialInterval, MaxInterval: DefaultMaxInterval}
		}
		kind := flow.Exponential
		switch r.Backoff {
		case Linear:
			kind = flow.Linear
		case Fixed:
			kind = flow.Fixed
		}
		p.Steps[i] = flow.StepPlan{
			ID: s.ID, Deps: deps, Parallel: s.Parallel, AllowFailedDeps: s.AllowFailedDeps,
			HasComp: s.Compensation != "", Timeout: seconds(s.Timeout), Handler: s.Handler, URL: s.URL,
			Retry: retries.get(flow.Retry{MaxAttempts: max(r.MaxAttempts, 1), Kind: kind, Initial: seconds(r.InitialInterval), Max: seconds(r.MaxInterval)}),
		}
		if s.Handler != "" {
			p.Steps[i].CompHandler = s.Compensation
		} else {
			p.Steps[i].CompURL = s.Compensation
		}
	}
	for i := range n {
		offset[i+1] += offset[i]
	}
	copy(fill, offset[:n])
	for i := range p.Steps {
		for _, d := range p.Steps[i].Deps {
			dependents[fill[d]] = int32(i)
			fill[d]++
		}
	}
	for i := range p.Steps {
		p.Steps[i].Dependents = dependents[offset[i]:offset[i+1]:offset[i+1]]
	}
	return p
}
