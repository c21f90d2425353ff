package dagflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
)

// runCache keeps what the engine knows of the runs it works on: each run's
// workflow and compiled plan (read from its spec once), the results its steps
// have shown to later steps, and the context its attempts run under (which
// Cancel cancels). A run leaves the cache when it ends.
type runCache struct {
	mu   sync.Mutex
	runs map[string]*runInfo
	// stops are the runs stopped (cancelled, timed out) while they were
	// not cached, with the cause their attempts' contexts end with: a
	// step claimed just before the stop may start its attempt after it,
	// through an entry cached later, and must start it cancelled.
	stops map[string]error
	// done are the runs that ended, oldest first: the cache keeps the last
	// keepEnded of them, whose statuses are likely to be read next.
	done []string
}

// keepEnded is how many runs that ended the cache keeps.
const keepEnded = 256

// runInfo is one run in the cache.
type runInfo struct {
	id   string
	wf   *Workflow // normalized
	plan *flow.Plan

	indexOnce sync.Once
	byID      map[string]int

	mu      sync.Mutex
	gen     int                  // of the results
	results map[int]storedResult // of the steps read so far
	ctx     context.Context      // the parent of its attempts' contexts
	cancel  context.CancelCauseFunc
	stopped error // why the run was stopped, or nil: its attempts start cancelled
}

// storedResult is a completed step's result and completion number.
type storedResult struct {
	raw json.RawMessage
	seq int64
}

func (c *runCache) init() {
	c.runs = map[string]*runInfo{}
	c.stops = map[string]error{}
}

// maxStops bounds the stops kept of runs not cached. A stop matters only
// between a claim and the start of its attempt, so one dropped beyond it
// is one of a run no attempt of this engine is about to start.
const maxStops = 4096

// load returns a run's entry, reading its spec through tx when it is not
// cached.
func (c *runCache) load(tx store.Tx, runID string) (*runInfo, error) {
	c.mu.Lock()
	ri := c.runs[runID]
	c.mu.Unlock()
	if ri != nil {
		return ri, nil
	}
	spec, err := tx.Spec(runID)
	if err != nil {
		return nil, fmt.Errorf("run %q: reading its spec: %w", runID, err)
	}
	w, err := decodeSpec(spec)
	if err != nil {
		return nil, fmt.Errorf("run %q: decoding its spec: %w", runID, err)
	}
	c.put(runID, &w, compile(&w, nil))
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[runID], nil
}

// put caches a normalized workflow and its compiled plan as run id's,
// unless the run is cached already; it returns the plan cached.
func (c *runCache) put(id string, w *Workflow, plan *flow.Plan) *flow.Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ri := c.runs[id]; ri != nil {
		return ri.plan
	}
	ri := &runInfo{id: id, wf: w, plan: plan}
	if cause, ok := c.stops[id]; ok {
		ri.stopped = cause
		delete(c.stops, id)
	}
	c.runs[id] = ri
	return ri.plan
}

// get returns a cached run, or nil.
func (c *runCache) get(id string) *runInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runs[id]
}

// forget drops a run (it ended, or was deleted), cancelling what its
// attempts still run under.
func (c *runCache) forget(id string) {
	c.mu.Lock()
	ri := c.runs[id]
	delete(c.runs, id)
	delete(c.stops, id)
	c.mu.Unlock()
	if ri != nil {
		ri.mu.Lock()
		if ri.cancel != nil {
			ri.cancel(errRunEnded)
		}
		ri.mu.Unlock()
	}
}

// ended lets go of a run that ended: its attempts' context is cancelled and
// its results dropped; its plan stays for a while, for its status.
func (c *runCache) ended(id string) {
	c.mu.Lock()
	delete(c.stops, id)
	ri := c.runs[id]
	if ri == nil {
		c.mu.Unlock()
		return
	}
	c.done = append(c.done, id)
	var drop []*runInfo
	for len(c.done) > keepEnded {
		old := c.done[0]
		c.done = c.done[1:]
		if x := c.runs[old]; x != nil && old != id {
			drop = append(drop, x)
			delete(c.runs, old)
		}
	}
	c.mu.Unlock()
	ri.mu.Lock()
	if ri.cancel != nil {
		ri.cancel(errRunEnded)
	}
	ri.results, ri.ctx, ri.cancel, ri.stopped = nil, nil, nil, nil
	ri.mu.Unlock()
	for _, x := range drop {
		x.mu.Lock()
		if x.cancel != nil {
			x.cancel(errRunEnded)
		}
		x.mu.Unlock()
	}
}

// redriven drops what the cache knows of a run's results and gives its
// attempts a context that is not cancelled: the run runs again.
func (c *runCache) redriven(id string) {
	c.mu.Lock()
	delete(c.stops, id)
	ri := c.runs[id]
	c.mu.Unlock()
	if ri != nil {
		ri.mu.Lock()
		ri.results, ri.ctx, ri.cancel, ri.stopped = nil, nil, nil, nil
		ri.mu.Unlock()
	}
}

// stop cancels the attempts of run id, which was cancelled or timed out,
// those under way and those about to start; cause is what context.Cause
// says to their handlers.
func (c *runCache) stop(id string, cause error) {
	c.mu.Lock()
	ri := c.runs[id]
	if ri == nil {
		if len(c.stops) >= maxStops {
			for old := range c.stops {
				delete(c.stops, old)
				break
			}
		}
		c.stops[id] = cause
	}
	c.mu.Unlock()
	if ri != nil {
		ri.stop(cause)
	}
}

// clear drops every run, as the engine closes.
func (c *runCache) clear() {
	c.mu.Lock()
	runs := c.runs
	c.runs, c.stops = map[string]*runInfo{}, map[string]error{}
	c.mu.Unlock()
	for _, ri := range runs {
		ri.mu.Lock()
		if ri.cancel != nil {
			ri.cancel(errRunEnded)
		}
		ri.mu.Unlock()
	}
}

// errRunEnded ends the contexts of attempts of a run that ended.
var errRunEnded = errors.New("dagflow: the run ended")

// attemptParent returns the context a run's attempts run under.
func (ri *runInfo) attemptParent(engine context.Context) context.Context {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	if ri.ctx == nil {
		ri.ctx, ri.cancel = context.WithCancelCause(engine)
		if ri.stopped != nil {
			ri.cancel(ri.stopped)
		}
	}
	return ri.ctx
}

// stop cancels the attempts of a run that was cancelled or timed out; cause
// is what context.Cause says to its handlers.
func (ri *runInfo) stop(cause error) {
	ri.mu.Lock()
	defer ri.mu.Unlock()
	ri.stopped = cause
	if ri.cancel != nil {
		ri.cancel(cause)
	}
}

// result returns step i's result as the engine knows it in generation gen,
// reading it from the store when it does not.
func (e *Engine) result(ri *runInfo, gen, i int) (storedResult, bool) {
	ri.mu.Lock()
	if ri.gen != gen {
		ri.gen, ri.results = gen, nil
	}
	r, ok := ri.results[i]
	ri.mu.Unlock()
	if ok {
		return r, r.seq > 0
	}
	var st store.Step
	err := e.store.View(e.bgCtx, func(tx store.Tx) error {
		var err error
		st, err = tx.Step(ri.id, i, 0)
		return err
	})
	if err != nil || st.State != store.StepCompleted {
		return storedResult{}, false
	}
	r = storedResult{raw: st.Result, seq: st.Seq}
	if r.raw == nil {
		r.raw = json.RawMessage("null")
	}
	ri.mu.Lock()
	if ri.gen == gen {
		if ri.results == nil {
			ri.results = map[int]storedResult{}
		}
		ri.results[i] = r
	}
	ri.mu.Unlock()
	return r, true
}

// index returns the index of the step with the given id, or -1.
func (ri *runInfo) index(id string) int {
	ri.indexOnce.Do(func() {
		ri.byID = make(map[string]int, len(ri.plan.Steps))
		for i := range ri.plan.Steps {
			ri.byID[ri.plan.Steps[i].ID] = i
		}
	})
	if i, ok := ri.byID[id]; ok {
		return i
	}
	return -1
}
