package dagflow

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/internal/path"
	"github.com/dagflow/dagflow/store"
)

// This file holds the calls on runs: Create, Status, Wait, List, Cancel,
// Retry, Rerun, Delete.

// Create validates a workflow and starts a run of it, and returns the run's
// status at its creation, every step pending (use Status or Wait to follow
// it). Creating a workflow whose id is taken returns the
// existing run's status when the spec is the same (Create is idempotent) and
// an error matching ErrConflict when it differs. Invalid workflows get a
// *ValidationError listing every problem. Create is safe for concurrent use;
// it returns once the run is in the store.
func (e *Engine) Create(ctx context.Context, w Workflow) (*Status, error) {
	st, _, err := e.create(ctx, w, false)
	return st, err
}

// CreateIfAbsent is Create that also reports whether this call created the
// run: false when a run of that id and the same workflow was there already,
// whose status it returns. Of several calls with one id at the same moment,
// on one engine or on engines sharing a store, exactly one reports true.
func (e *Engine) CreateIfAbsent(ctx context.Context, w Workflow) (st *Status, created bool, err error) {
	return e.create(ctx, w, false)
}

// create is Create; engineMade allows a "/" in the id (runs of schedules).
func (e *Engine) create(ctx context.Context, w Workflow, engineMade bool) (*Status, bool, error) {
	if e.closed.Load() {
		return nil, false, ErrClosed
	}
	prep, err := e.prepare(&w, engineMade)
	if err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			if st := e.existing(ctx, &w, engineMade); st != nil {
				return st, false, nil
			}
		}
		return nil, false, err
	}
	n, spec, key := &prep.n, prep.spec, prep.key
	trace := e.hookRunCreated(ctx, n.ID)
	exists := false
	var created store.Run
	err = e.update(store.ForRun(ctx, n.ID), func(tx store.Tx, x *flow.Txn) error {
		exists = false
		if _, err := tx.Run(n.ID); err == nil {
			old, err := tx.Spec(n.ID)
			if err != nil {
				return err
			}
			if !sameSpec(old, spec) {
				return fmt.Errorf("dagflow: Create: %w: a run with id %q exists with a different workflow", ErrConflict, n.ID)
			}
			exists = true
			return nil
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
		plan := e.runs.put(n.ID, n, prep.plan)
		if err := x.Create(store.Run{ID: n.ID, CreatedAt: e.now(), Trace: trace}, spec, plan, key); err != nil {
			return err
		}
		created, _ = x.Record(n.ID)
		return nil
	})
	if err != nil {
		if !exists {
			e.runs.forget(n.ID)
		}
		if errors.Is(err, ErrConflict) {
			return nil, false, err
		}
		return nil, false, fmt.Errorf("dagflow: Create %q: %w", w.ID, err)
	}
	if exists {
		st, err := e.Status(ctx, n.ID)
		return st, false, err
	}
	e.log.Debug("dagflow: run created", "run", n.ID, "steps", len(n.Steps))
	return e.createdStatus(&created, n), true, nil
}

// createdStatus is the status of a run just created, made without reading
// its steps back (a workflow may have many): its record as the creating
// transaction stored it, and every step pending.
func (e *Engine) createdStatus(r *store.Run, n *Workflow) *Status {
	ri := e.runs.get(r.ID)
	if ri == nil {
		ri = &runInfo{id: r.ID, wf: n, plan: compile(n, nil)}
	}
	st := buildStatus(r, ri, nil, nil)
	st.Steps = make([]StepStatus, len(n.Steps))
	for i := range n.Steps {
		st.Steps[i] = StepStatus{ID: n.Steps[i].ID, State: StatePending, Kind: kindName(&ri.plan.Steps[i])}
	}
	return st
}

// prepared is a valid workflow made ready to store, compiled before the
// creating transaction (which a store may run on its one commit goroutine).
type prepared struct {
	n    Workflow // normalized
	spec []byte
	plan *flow.Plan
	key  string // the concurrency key's value
}

// prepare validates a workflow, with what depends on the engine, and makes
// its spec and the value of its concurrency key. It returns a
// *ValidationError for an invalid workflow.
func (e *Engine) prepare(w *Workflow, engineMade bool) (*prepared, error) {
	check := &engineCheck{hasHandler: e.hasHandler, hasBaseURL: e.http.HasBaseURL(), maxDepth: e.cfg.maxDepth, slashID: engineMade}
	ps, g := w.check(check)
	if len(ps) > 0 {
		return nil, &ValidationError{WorkflowID: w.ID, Problems: ps}
	}
	spec, n, err := specOf(w)
	if err != nil {
		return nil, fmt.Errorf("dagflow: encoding workflow %q: %w", w.ID, err)
	}
	p := &prepared{n: n, spec: spec}
	p.plan = compile(&p.n, g)
	if c := n.Concurrency; c != nil {
		kp, _ := path.Parse(c.Key, nil)
		raw, err := path.Resolve(kp, n.Context)
		if err != nil {
			return nil, &ValidationError{WorkflowID: w.ID, Problems: []Problem{{Path: "concurrency.key", Message: err.Error()}}}
		}
		p.key = flow.KeyString(raw)
	}
	return p, nil
}

// existing returns the status of the run w names when one with the same
// spec exists, for a workflow that is valid but for what depends on the
// engine (a handler not registered yet, a relative URL and no base URL):
// Create is idempotent on a run created earlier, by an engine that had
// them, even before this one registers its handlers. Otherwise it returns
// nil.
func (e *Engine) existing(ctx context.Context, w *Workflow, engineMade bool) *Status {
	if ps, _ := w.check(&engineCheck{slashID: engineMade, maxDepth: e.cfg.maxDepth, hasBaseURL: true}); len(ps) > 0 {
		return nil
	}
	spec, _, err := specOf(w)
	if err != nil {
		return nil
	}
	var same bool
	err = e.store.View(ctx, func(tx store.Tx) error {
		old, err := tx.Spec(w.ID)
		same = err == nil && sameSpec(old, spec)
		return err
	})
	if err != nil || !same {
		return nil
	}
	st, err := e.Status(ctx, w.ID)
	if err != nil {
		return nil
	}
	return st
}

// Status returns the status of a run, read from the store, or an error
// matching ErrNotFound.
func (e *Engine) Status(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var st *Status
	err := e.store.View(ctx, func(tx store.Tx) error {
		r, err := tx.Run(id)
		if err != nil {
			return err
		}
		st, err = e.statusOf(tx, &r)
		return err
	})
	if err != nil {
		return nil, runErr("Status", id, err)
	}
	if st.State.Final() {
		return st, nil
	}
	if names := e.waitingFor(id); len(names) > 0 {
		st.WaitingFor = fmt.Sprintf("a Go handler named %s, which this engine has not registered", strings.Join(quoteAll(names), ", "))
	}
	return st, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = strconv.Quote(x)
	}
	return out
}

// Workflow returns the workflow of a run as the engine stored it, with every
// default filled in, or an error matching ErrNotFound.
func (e *Engine) Workflow(ctx context.Context, id string) (*Workflow, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var w Workflow
	err := e.store.View(ctx, func(tx store.Tx) error {
		spec, err := tx.Spec(id)
		if err != nil {
			return err
		}
		w, err = decodeSpec(spec)
		return err
	})
	if err != nil {
		return nil, runErr("Workflow", id, err)
	}
	unshare(&w)
	return &w, nil
}

// unshare gives every step of a normalized workflow a retry policy of its
// own, for a caller who may change it.
func unshare(w *Workflow) {
	w.Steps = slices.Clone(w.Steps)
	for i := range w.Steps {
		s := &w.Steps[i]
		if s.Retries != nil {
			r := *s.Retries
			s.Retries = &r
		}
		if s.Workflow != nil {
			sub := *s.Workflow
			unshare(&sub)
			s.Workflow = &sub
		}
	}
}

// waiters are the Wait calls under way, by run.
type waiters struct {
	mu sync.Mutex
	m  map[string][]chan struct{}
}

func (w *waiters) init() { w.m = map[string][]chan struct{}{} }

func (w *waiters) add(id string) chan struct{} {
	ch := make(chan struct{})
	w.mu.Lock()
	w.m[id] = append(w.m[id], ch)
	w.mu.Unlock()
	return ch
}

func (w *waiters) remove(id string, ch chan struct{}) {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.m[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(w.m, id)
	} else {
		w.m[id] = list
	}
}

func (w *waiters) wake(id string) {
	w.mu.Lock()
	list := w.m[id]
	delete(w.m, id)
	w.mu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// Wait blocks until the run is completed, failed or cancelled (after its
// compensations, for a saga) and returns its final status. It returns early
// with ctx's error when ctx is done, ErrClosed when the engine closes, and
// an error matching ErrNotFound for an unknown id.
func (e *Engine) Wait(ctx context.Context, id string) (*Status, error) {
	for {
		ch := e.waits.add(id)
		st, err := e.endedStatus(ctx, id)
		if err != nil || st != nil {
			e.waits.remove(id, ch)
			if err != nil {
				return nil, runErr("Wait", id, err)
			}
			return st, nil
		}
		if err := e.awaitChange(ctx, id, ch); err != nil {
			return nil, err
		}
	}
}

// awaitChange waits for word that run id changed on ch, or, on a shared
// store, where another engine may end the run and its notification may be
// lost, for a while.
func (e *Engine) awaitChange(ctx context.Context, id string, ch chan struct{}) error {
	var poll <-chan time.Time
	if e.lease > 0 {
		t := time.NewTimer(e.cfg.poll)
		defer t.Stop()
		poll = t.C
	}
	select {
	case <-ch:
		return nil
	case <-poll:
	case <-ctx.Done():
		e.waits.remove(id, ch)
		return ctx.Err()
	case <-e.ctx.Done():
		e.waits.remove(id, ch)
		return ErrClosed
	}
	e.waits.remove(id, ch)
	return nil
}

// endedStatus returns the status of a run that is completed, failed or
// cancelled, or nil while it is not.
func (e *Engine) endedStatus(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var st *Status
	err := e.store.View(ctx, func(tx store.Tx) error {
		r, err := tx.Run(id)
		if err != nil || !r.State.Final() {
			return err
		}
		st, err = e.statusOf(tx, &r)
		return err
	})
	return st, err
}

// runErr wraps the error of a call on run id: a missing run as
// ErrNotFound, a *StateError as it is, anything else with the call's name.
func runErr(op, id string, err error) error {
	var se *StateError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("dagflow: run %q: %w", id, ErrNotFound)
	case errors.As(err, &se), errors.Is(err, ErrClosed):
		return err
	}
	return fmt.Errorf("dagflow: %s %q: %w", op, id, err)
}

// ListOptions selects runs for List.
type ListOptions struct {
	// State keeps only runs in this state. A run is pending, as its
	// status says, until one of its steps starts.
	State State
	// IDContains keeps only runs whose id contains it.
	IDContains string
	// Parent keeps only the child runs of this run.
	Parent string
	// After is the Next of the previous page; "" starts at the newest run.
	After string
	// Limit is the page size; 0 means 100. A negative one is an error.
	Limit int
}

// RunList is a page of runs, newest first.
type RunList struct {
	// Runs are the runs of the page.
	Runs []RunSummary `json:"runs"`
	// Next is the ListOptions.After of the next page, "" on the last page.
	Next string `json:"next"`
}

// RunSummary is a run as List shows it.
type RunSummary struct {
	// ID is the run's id.
	ID string `json:"id"`
	// State is the run's state, as its Status says.
	State State `json:"state"`
	// CreatedAt is when the run was created (the list's order), StartedAt
	// when it started, CompletedAt when it ended, zero until then (and
	// again while a retry of it runs).
	CreatedAt   time.Time `json:"createdAt"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Parent is the id of the run whose step created this one, or "".
	Parent string `json:"parent,omitempty"`
	// Steps is the number of steps; Done counts those in a final state,
	// Failed those that failed.
	Steps  int `json:"steps"`
	Done   int `json:"done"`
	Failed int `json:"failed"`
	// Error says why the run failed or was cancelled.
	Error string `json:"error,omitempty"`
}

// List returns a page of runs, newest first. Bad options (a negative Limit,
// an unknown State, an After that is not a page's cursor) get a
// *ValidationError.
func (e *Engine) List(ctx context.Context, o ListOptions) (*RunList, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	limit := o.Limit
	switch {
	case limit < 0:
		return nil, &ValidationError{Of: "list query", Problems: []Problem{{"limit", fmt.Sprintf("%d is negative", limit)}}}
	case limit == 0:
		limit = 100
	}
	q := store.RunQuery{IDContains: o.IDContains, Parent: o.Parent, Limit: limit + 1}
	switch o.State {
	case "":
	case StatePending, StateRunning, StateCompleted, StateFailed, StateCancelled:
		q.State = store.RunState(o.State)
	default:
		return nil, &ValidationError{Of: "list query", Problems: []Problem{{"state", fmt.Sprintf("%s is not a run state (pending, running, completed, failed, cancelled)", quote(string(o.State)))}}}
	}
	if o.After != "" {
		c, err := decodeCursor(o.After)
		if err != nil {
			return nil, &ValidationError{Of: "list query", Problems: []Problem{{"after", fmt.Sprintf("is not the cursor of a page (the Next of the page before): %v", err)}}}
		}
		q.Before = c
	}
	var runs []store.Run
	err := e.store.View(ctx, func(tx store.Tx) (err error) {
		runs, err = tx.Runs(q)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("dagflow: List: %w", err)
	}
	out := &RunList{Runs: []RunSummary{}}
	for i, r := range runs {
		if i == limit {
			last := runs[i-1]
			out.Next = encodeCursor(last.CreatedAt, last.ID)
			break
		}
		out.Runs = append(out.Runs, RunSummary{ID: r.ID, State: State(r.State), CreatedAt: r.CreatedAt, StartedAt: r.StartedAt,
			CompletedAt: r.CompletedAt, Parent: r.Parent, Steps: r.Total, Done: r.Done, Failed: r.Failed, Error: r.Error})
	}
	return out, nil
}

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + "/" + id))
}

func decodeCursor(s string) (*store.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	ts, id, ok := strings.Cut(string(b), "/")
	if !ok {
		return nil, errors.New("malformed cursor")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, errors.New("malformed cursor")
	}
	return &store.Cursor{CreatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// Cancel cancels a run: its running attempts' contexts are cancelled (HTTP
// requests aborted; context.Cause says the run was cancelled), no step
// starts any more, sleeps, waits and child runs end at once (children are
// cancelled), a saga is compensated, and the run ends cancelled, calling
// onError. Cancel returns once the cancellation is in the store, not when
// the run has ended (use Wait). Cancelling a run that has ended returns a
// *StateError matching ErrConflict; cancelling one that is already stopping
// or compensating changes nothing.
func (e *Engine) Cancel(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	err := e.update(ctx, func(_ store.Tx, x *flow.Txn) error {
		before, err := x.Cancel(id, "cancelled")
		if err != nil {
			return err
		}
		if before.State.Final() {
			return &StateError{Op: "cancel", RunID: id, State: string(before.State)}
		}
		return nil
	})
	if err != nil {
		return nil, runErr("Cancel", id, err)
	}
	return e.Status(ctx, id)
}

// Retry runs a failed or cancelled run again (see the package
// documentation, "Failure and sagas"): its steps that did not complete and
// every step downstream of them run again, each with a new attempt budget;
// steps upstream keep their results; the workflow's timeout starts again.
// For a saga whose compensation failed, Retry runs the failed compensations
// again instead, to finish the rollback. Retry returns once the retry is in
// the store. It returns a *StateError matching ErrConflict for a run that
// is running or completed, or a saga that was rolled back.
func (e *Engine) Retry(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	err := e.update(ctx, func(tx store.Tx, x *flow.Txn) error {
		r, err := tx.Run(id)
		if err != nil {
			return err
		}
		if r.State != store.RunFailed && r.State != store.RunCancelled {
			return &StateError{Op: "retry", RunID: id, State: string(r.State)}
		}
		if r.Parent != "" {
			return childRedrive("retry", &r)
		}
		return redriveErr("retry", &r, x.Retry(id))
	})
	if err != nil {
		return nil, runErr("Retry", id, err)
	}
	return e.Status(ctx, id)
}

// Rerun runs a step of an ended run again, with every step downstream of it,
// keeping every other step's result: "retry from this step". It is a new
// round of the run (see Input.Generation). It returns a *StateError
// matching ErrConflict for a run that has not ended, a step whose
// dependencies did not all complete, a saga that was rolled back, or a child
// run (rerun its parent); and an error matching ErrNotFound for an unknown
// run or step.
func (e *Engine) Rerun(ctx context.Context, id, stepID string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	err := e.update(ctx, func(tx store.Tx, x *flow.Txn) error {
		r, err := tx.Run(id)
		if err != nil {
			return err
		}
		if r.Parent != "" {
			return childRedrive("rerun", &r)
		}
		ri, err := e.runs.load(tx, id)
		if err != nil {
			return err
		}
		i := ri.index(stepID)
		if i < 0 {
			return fmt.Errorf("dagflow: run %q has no step %q: %w", id, stepID, ErrNotFound)
		}
		return redriveErr("rerun", &r, x.Rerun(id, i))
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) && strings.Contains(err.Error(), "has no step") {
			return nil, err
		}
		return nil, runErr("Rerun", id, err)
	}
	return e.Status(ctx, id)
}

// childRedrive refuses to run a child run again on its own: its parent would
// not know. Retry the parent, which retries its failed children.
func childRedrive(op string, r *store.Run) error {
	return &StateError{Op: op, RunID: r.ID, State: string(r.State),
		Reason: fmt.Sprintf("it is a child run of %q: %s the parent, which runs its children again", r.Parent, op)}
}

// Delete removes a run that has ended, with its steps, attempts, webhooks
// and child runs. It returns a *StateError matching ErrConflict for a run
// that has not ended (cancel it first) or is a child run (it is deleted with
// its parent, not alone), and an error matching ErrNotFound for an unknown
// run.
func (e *Engine) Delete(ctx context.Context, id string) error {
	if e.closed.Load() {
		return ErrClosed
	}
	err := e.store.Update(ctx, func(tx store.Tx) error {
		r, err := tx.Run(id)
		if err != nil {
			return err
		}
		if !r.State.Final() {
			return &StateError{Op: "delete", RunID: id, State: string(r.State), Reason: "cancel it first"}
		}
		if r.Parent != "" {
			return &StateError{Op: "delete", RunID: id, State: string(r.State),
				Reason: fmt.Sprintf("it is a child run of %q, whose status names it: delete the parent, which deletes its children", r.Parent)}
		}
		return deleteRun(tx, id)
	})
	if err != nil {
		return runErr("Delete", id, err)
	}
	e.runs.forget(id)
	e.notify(store.Change{Kind: store.ChangeRun, RunID: id})
	return nil
}

// deleteRun deletes a run and its children.
func deleteRun(tx store.Tx, id string) error {
	children, err := tx.Runs(store.RunQuery{Parent: id})
	if err != nil {
		return err
	}
	for _, c := range children {
		if err := deleteRun(tx, c.ID); err != nil {
			return err
		}
	}
	return tx.DeleteRun(id)
}
