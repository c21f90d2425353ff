package flow

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dagflow/dagflow/internal/path"
	"github.com/dagflow/dagflow/store"
)

// This file holds the rules of map steps: the list is read when the step
// begins, one item record is written per element, up to MaxConcurrency items
// are under way at once, and the step ends once every item has ended (or a
// tolerance is broken and the items under way have ended), with the items'
// results in order.

// beginMap begins a map step: it resolves the list and starts the first
// items. A step that ran before (a retry of its run) keeps the items that
// completed when its list is the same.
func (x *Txn) beginMap(rs *runState, st *store.Step) error {
	sp := &rs.plan.Steps[st.Index]
	if st.StartedAt.IsZero() {
		st.StartedAt = x.now
	}
	list, err := x.mapItems(rs, sp)
	if err != nil {
		return x.giveUp(rs, st, err.Error())
	}
	if len(list) > x.lim.MaxMapItems {
		return x.giveUp(rs, st, fmt.Sprintf("its list has %d items; the limit is %d (WithMaxMapItems)", len(list), x.lim.MaxMapItems))
	}
	if len(list) == 0 {
		st.Items = 0
		return x.stepCompleted(rs, st, json.RawMessage("[]"))
	}
	old, err := x.tx.Items(rs.rec.ID, st.Index)
	if err != nil {
		return err
	}
	keep := len(old) == len(list)
	for i := range old {
		if !keep || !bytes.Equal(old[i].Input, list[i]) {
			keep = false
			break
		}
	}
	st.Items, st.ItemsDone, st.ItemsFailed, st.ItemsRunning, st.ItemsNext = len(list), 0, 0, 0, 0
	st.State, st.DueAt, st.Error = store.StepWaiting, time.Time{}, ""
	// The items that start at once are written ready, not written pending
	// and then again by nextItems (a map of 100,000 items wrote each twice
	// in one transaction); nextItems starts the others, and any item that
	// starts a child run.
	limit := sp.Map.MaxConcurrency
	startNow := sp.Kind != Child && rs.rec.Phase == store.PhaseActive
	for i, v := range list {
		it := store.Step{RunID: rs.rec.ID, Index: st.Index, Item: i + 1, ID: st.ID, State: store.StepPending, Input: v}
		if keep && old[i].State == store.StepCompleted {
			st.ItemsDone++
			if st.ItemsNext == i {
				st.ItemsNext++
			}
			continue // kept as it is
		}
		if keep {
			// A retried item keeps its history but starts a new budget.
			it.Token, it.Comp = old[i].Token, old[i].Comp
		}
		if startNow && st.ItemsNext == i && (limit <= 0 || st.ItemsRunning < limit) {
			st.ItemsNext++
			st.ItemsRunning++
			x.readyItem(rs, &it)
		}
		if err := x.put(&it); err != nil {
			return err
		}
	}
	for i := len(list); i < len(old); i++ {
		// A list shorter than the one before: drop the items past its end.
		gone := old[i]
		gone.State, gone.DueAt, gone.Event, gone.Result = store.StepSkipped, time.Time{}, "", nil
		gone.Error = "not part of the list any more"
		if err := x.put(&gone); err != nil {
			return err
		}
	}
	return x.nextItems(rs, st)
}

// mapItems resolves the list of a map step.
func (x *Txn) mapItems(rs *runState, sp *StepPlan) ([]json.RawMessage, error) {
	raw := sp.Map.Literal
	if sp.Map.Items != nil {
		var err error
		if raw, err = x.resolve1(rs, *sp.Map.Items); err != nil {
			return nil, err
		}
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || bytes.TrimSpace(raw)[0] != '[' {
		return nil, fmt.Errorf("map items %q is %s, not an array", itemsName(sp.Map), path.Kind(raw))
	}
	for i := range list {
		list[i] = compact(list[i])
	}
	return list, nil
}

func itemsName(m *MapPlan) string {
	if m.Items != nil {
		return m.Items.Raw
	}
	return "(literal)"
}

// compact returns v without insignificant space, in a slice of its own
// length (a map of 100,000 small items kept a 64-byte buffer per item).
func compact(v json.RawMessage) json.RawMessage {
	b := bytes.NewBuffer(make([]byte, 0, len(v)))
	if json.Compact(b, v) != nil {
		return v
	}
	return b.Bytes()
}

// resolve1 resolves a path of a step's field against the run.
func (x *Txn) resolve1(rs *runState, p path.Path) (json.RawMessage, error) {
	var from json.RawMessage
	if p.Step == "" {
		c, err := x.env.Context(x.tx, rs.rec.ID)
		if err != nil {
			return nil, err
		}
		from = c
	} else {
		i := rs.plan.index(p.Step)
		if i < 0 {
			return nil, fmt.Errorf("path %q: no step %q", p.Raw, p.Step)
		}
		st, err := x.step(rs, i, 0)
		if err != nil {
			return nil, err
		}
		if st.State != store.StepCompleted {
			return nil, fmt.Errorf("path %q %w: step %q has no result (it is %s)", p.Raw, path.ErrNotFound, p.Step, st.State)
		}
		from = st.Result
	}
	return path.Resolve(p, from)
}

// index returns the index of the step with the given id, or -1.
func (p *Plan) index(id string) int {
	for i := range p.Steps {
		if p.Steps[i].ID == id {
			return i
		}
	}
	return -1
}

// nextItems starts pending items while the step's concurrency allows and its
// tolerance holds, then ends the step if nothing is left under way. It
// writes st.
func (x *Txn) nextItems(rs *runState, st *store.Step) error {
	sp := &rs.plan.Steps[st.Index]
	limit := sp.Map.MaxConcurrency
	active := rs.rec.Phase == store.PhaseActive && !sp.Map.Exceeded(st.ItemsFailed, st.Items)
	for active && st.ItemsNext < st.Items && (limit <= 0 || st.ItemsRunning < limit) {
		it, err := x.step(rs, st.Index, st.ItemsNext+1)
		if err != nil {
			return err
		}
		st.ItemsNext++
		if it.State != store.StepPending {
			continue // completed before a retry, kept
		}
		st.ItemsRunning++
		if sp.Kind == Child {
			it.StartedAt = x.now
			if err := x.beginChild(rs, &it); err != nil {
				return err
			}
			continue
		}
		x.readyItem(rs, &it)
		if err := x.put(&it); err != nil {
			return err
		}
	}
	return x.mapEnded(rs, st)
}

// readyItem makes an item ready to claim now; the caller writes it.
func (x *Txn) readyItem(rs *runState, it *store.Step) {
	it.State, it.DueAt = store.StepReady, x.now
	x.readied = append(x.readied, store.Ref{Index: it.Index, Item: it.Item})
	x.readiedRuns = append(x.readiedRuns, rs)
}

// itemCompleted records that an item completed with result.
func (x *Txn) itemCompleted(rs *runState, it *store.Step, result json.RawMessage) error {
	rs.rec.Seq++
	it.State, it.Result, it.Error, it.Seq, it.CompletedAt = store.StepCompleted, result, "", rs.rec.Seq, x.now
	it.DueAt = time.Time{}
	if err := x.put(it); err != nil {
		return err
	}
	st, err := x.step(rs, it.Index, 0)
	if err != nil {
		return err
	}
	st.ItemsDone++
	st.ItemsRunning--
	return x.nextItems(rs, &st)
}

// itemFailed records that an item failed for good.
func (x *Txn) itemFailed(rs *runState, it *store.Step, msg string) error {
	it.Error, it.CompletedAt, it.DueAt = msg, x.now, time.Time{}
	it.Owner, it.LeaseUntil, it.AttemptAt = "", time.Time{}, time.Time{}
	it.State = store.StepFailed
	if rs.rec.Phase != store.PhaseActive && rs.rec.Cause != store.CauseFailed {
		it.State = store.StepCancelled
	}
	if err := x.put(it); err != nil {
		return err
	}
	st, err := x.step(rs, it.Index, 0)
	if err != nil {
		return err
	}
	st.ItemsFailed++ // a cancelled item counts too: it did not complete
	st.ItemsRunning--
	return x.nextItems(rs, &st)
}

// mapEnded ends a map step once no item is under way and no more will
// start: completed with the items' results, or failed past its tolerance,
// or stopped with its run. Otherwise it writes st as it is.
func (x *Txn) mapEnded(rs *runState, st *store.Step) error {
	sp := &rs.plan.Steps[st.Index]
	if st.State != store.StepWaiting || st.ItemsRunning > 0 {
		return x.put(st)
	}
	exceeded := sp.Map.Exceeded(st.ItemsFailed, st.Items)
	stopped := rs.rec.Phase != store.PhaseActive
	if st.ItemsNext < st.Items && !exceeded && !stopped {
		return x.put(st)
	}
	switch {
	case exceeded:
		if err := x.endItems(rs, st, store.StepSkipped, "not run: the map step failed"); err != nil {
			return err
		}
		return x.giveUp(rs, st, x.mapFailure(rs, st))
	case stopped && st.ItemsDone+st.ItemsFailed < st.Items:
		state, why := store.StepSkipped, "not run: "+rs.rec.Error
		if rs.rec.Cause != store.CauseFailed {
			state = store.StepCancelled
		}
		if err := x.endItems(rs, st, state, why); err != nil {
			return err
		}
		return x.stopStep(rs, st)
	}
	result, err := x.mapResult(rs, st)
	if err != nil {
		return err
	}
	return x.stepCompleted(rs, st, result)
}

// mapFailure says why a map step failed.
func (x *Txn) mapFailure(rs *runState, st *store.Step) string {
	first := ""
	if items, err := x.tx.Items(rs.rec.ID, st.Index); err == nil {
		for _, it := range items {
			if it.State == store.StepFailed {
				first = fmt.Sprintf("; item %d: %s", it.Item-1, it.Error)
				break
			}
		}
	}
	m := rs.plan.Steps[st.Index].Map
	tol := "none tolerated"
	switch {
	case m.FailCount != nil && m.FailPercent != nil:
		tol = fmt.Sprintf("tolerated: %d, or %v%%", *m.FailCount, *m.FailPercent)
	case m.FailCount != nil:
		tol = fmt.Sprintf("tolerated: %d", *m.FailCount)
	case m.FailPercent != nil:
		tol = fmt.Sprintf("tolerated: %v%%", *m.FailPercent)
	}
	return fmt.Sprintf("%d of %d items failed (%s)%s", st.ItemsFailed, st.Items, tol, first)
}

// endItems ends the items of a map step that have not started.
func (x *Txn) endItems(rs *runState, st *store.Step, state store.StepState, why string) error {
	for st.ItemsNext < st.Items {
		st.ItemsNext++
		it, err := x.step(rs, st.Index, st.ItemsNext)
		if err != nil {
			return err
		}
		if it.State != store.StepPending {
			continue
		}
		it.State, it.Error, it.CompletedAt = state, why, x.now
		if err := x.put(&it); err != nil {
			return err
		}
	}
	return nil
}

// mapResult is the array of the items' results in item order, null for an
// item that did not complete.
func (x *Txn) mapResult(rs *runState, st *store.Step) (json.RawMessage, error) {
	// One item at a time: a list of every item's record at once would
	// double what a map of 100,000 items holds in memory.
	var b bytes.Buffer
	b.WriteByte('[')
	for i := range st.Items {
		it, err := x.tx.Step(rs.rec.ID, st.Index, i+1)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteByte(',')
		}
		if it.State == store.StepCompleted && len(it.Result) > 0 {
			b.Write(it.Result)
		} else {
			b.WriteString("null")
		}
	}
	b.WriteByte(']')
	return b.Bytes(), nil
}
