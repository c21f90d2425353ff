package flow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dagflow/dagflow/internal/path"
	"github.com/dagflow/dagflow/store"
)

// This file holds the steps that wait without holding a worker: a sleep
// (a due time), a wait for an event (an entry in the store's event index and
// a due time for its timeout), and a child run (the step is made due when the
// child ends, and at the parent's deadline). Each is a record in state
// waiting; fire acts on it when it falls due.

// beginSleep starts a sleep step.
func (x *Txn) beginSleep(rs *runState, st *store.Step) error {
	sp := &rs.plan.Steps[st.Index]
	rs.rec.State = store.RunRunning
	st.StartedAt = x.now
	until := x.now.Add(sp.SleepFor)
	if !sp.SleepAt.IsZero() {
		until = sp.SleepAt
	}
	if sp.SleepUntil != nil {
		raw, err := x.resolve1(rs, *sp.SleepUntil)
		if err != nil {
			return x.giveUp(rs, st, err.Error())
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return x.giveUp(rs, st, fmt.Sprintf("sleep until %q is %s, not an RFC 3339 time", sp.SleepUntil.Raw, path.Kind(raw)))
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return x.giveUp(rs, st, fmt.Sprintf("sleep until %q is %q, not an RFC 3339 time", sp.SleepUntil.Raw, s))
		}
		until = t
	}
	until = until.UTC().Truncate(time.Microsecond)
	st.Input = sleptUntil(until)
	if !until.After(x.now) {
		return x.stepCompleted(rs, st, st.Input)
	}
	st.State, st.DueAt = store.StepWaiting, until
	if !rs.rec.Deadline.IsZero() && rs.rec.Deadline.Before(until) {
		st.DueAt = rs.rec.Deadline
	}
	x.eff.due(x.now, st.DueAt)
	return x.put(st)
}

// sleptUntil is a sleep step's result.
func sleptUntil(t time.Time) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"sleptUntil": t.Format(time.RFC3339Nano)})
	return b
}

// beginWait starts a step that waits for an event: an event with its name and
// key sent since the run started is received at once; otherwise the step
// waits, until its timeout (or the run's deadline).
func (x *Txn) beginWait(rs *runState, st *store.Step) error {
	sp := &rs.plan.Steps[st.Index]
	r := &rs.rec
	r.State = store.RunRunning
	st.StartedAt = x.now
	raw, err := x.resolve1(rs, sp.EventKey)
	if err != nil {
		return x.giveUp(rs, st, err.Error())
	}
	key := KeyString(raw)
	since := r.CreatedAt
	if r.Generation > 0 {
		since = r.StartedAt
	}
	evs, err := x.tx.Events(sp.EventName, key, since)
	if err != nil {
		return err
	}
	if len(evs) > 0 {
		return x.stepCompleted(rs, st, payload(evs[0].Payload))
	}
	st.State, st.Event, st.EventKey = store.StepWaiting, sp.EventName, key
	st.DueAt = r.Deadline
	if sp.EventTimeout > 0 && (st.DueAt.IsZero() || x.now.Add(sp.EventTimeout).Before(st.DueAt)) {
		st.DueAt = x.now.Add(sp.EventTimeout)
	}
	if !st.DueAt.IsZero() {
		x.eff.due(x.now, st.DueAt)
	}
	return x.put(st)
}

func payload(p json.RawMessage) json.RawMessage {
	if len(bytes.TrimSpace(p)) == 0 {
		return json.RawMessage("null")
	}
	return p
}

// KeyString is the key of an event that a key value matches: the text of a
// JSON string, or the compact JSON of any other value.
func KeyString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(compact(raw))
}

// Deliver stores an event and hands it to every step waiting for its name
// and key, which completes with its payload.
func (x *Txn) Deliver(ev store.Event) error {
	if err := x.tx.PutEvent(ev); err != nil {
		return err
	}
	waiting, err := x.tx.Waiting(ev.Name, ev.Key)
	if err != nil {
		return err
	}
	for _, w := range waiting {
		rs, err := x.run(w.RunID)
		if err != nil {
			return err
		}
		st, err := x.step(rs, w.Index, w.Item)
		if err != nil {
			return err
		}
		if st.State != store.StepWaiting || st.Event != ev.Name || st.EventKey != ev.Key {
			continue
		}
		st.Event, st.EventKey = "", ""
		if err := x.stepCompleted(rs, &st, payload(ev.Payload)); err != nil {
			return err
		}
	}
	return nil
}

// ChildID is the id of the child run that a step (item 0) or an item of a
// map step starts.
func ChildID(runID, stepID string, item int) string {
	if item > 0 {
		return runID + "/" + stepID + "/" + strconv.Itoa(item-1)
	}
	return runID + "/" + stepID
}

// beginChild starts the child run of a step or item, or, when the step ran
// before, retries the child that failed or runs again the child that
// completed. The record waits for the child to end (childEnded makes it due
// then) or for the parent's deadline. It writes st.
func (x *Txn) beginChild(rs *runState, st *store.Step) error {
	r := &rs.rec
	r.State = store.RunRunning
	st.State, st.DueAt = store.StepWaiting, r.Deadline
	if !st.DueAt.IsZero() {
		x.eff.later(st.DueAt)
	}
	// Written before the child starts: the child may end in this very
	// transaction, and tell this record so.
	if err := x.put(st); err != nil {
		return err
	}
	id := ChildID(r.ID, st.ID, st.Item)
	crs, err := x.run(id)
	switch {
	case err == nil && crs.rec.State == store.RunCompleted:
		return x.Rerun(id, -1) // its parent's step runs again: so does it
	case err == nil && crs.rec.State.Final():
		return x.retry(crs)
	case err == nil:
		return nil // under way (a parent resumed after a crash)
	case !errors.Is(err, store.ErrNotFound):
		return err
	}
	var input json.RawMessage
	if st.Item > 0 {
		input = st.Input
	}
	spec, plan, key, err := x.child(r, st.Index, st.Item, input)
	if err != nil {
		return x.giveUp(rs, st, err.Error())
	}
	return x.Create(store.Run{ID: id, CreatedAt: x.now, Parent: r.ID, ParentIndex: st.Index, ParentItem: st.Item, Trace: r.Trace}, spec, plan, key)
}

// child asks the engine for a child's spec and plan, and resolves its
// concurrency key.
func (x *Txn) child(parent *store.Run, index, item int, input json.RawMessage) (json.RawMessage, *Plan, string, error) {
	spec, plan, err := x.env.Child(x.tx, parent, index, item, input)
	if err != nil {
		return nil, nil, "", err
	}
	key := ""
	if plan.Concurrency != nil {
		var ctx struct {
			Context json.RawMessage `json:"context"`
		}
		if err := json.Unmarshal(spec, &ctx); err != nil {
			return nil, nil, "", err
		}
		raw, err := path.Resolve(plan.Concurrency.Key, ctx.Context)
		if err != nil {
			return nil, nil, "", fmt.Errorf("concurrency key: %w", err)
		}
		key = KeyString(raw)
	}
	return spec, plan, key, nil
}

// childEnded makes the parent's record of a child run that ended due now, so
// that the next claim reads the child's outcome (see fire).
func (x *Txn) childEnded(r *store.Run) error {
	st, err := x.tx.Step(r.Parent, r.ParentIndex, r.ParentItem)
	if err != nil {
		return nil // the parent is gone
	}
	if st.State != store.StepWaiting && st.Comp != store.CompWaiting {
		return nil
	}
	st.DueAt = x.now
	x.eff.Due = true
	return x.put(&st)
}

// fire acts on a waiting record that fell due: a sleep that ended, a wait
// that timed out, a child run that ended, or the run's deadline.
func (x *Txn) fire(rs *runState, st *store.Step) error {
	r := &rs.rec
	sp := &rs.plan.Steps[st.Index]
	if r.Phase != store.PhaseActive {
		st.DueAt = time.Time{}
		return x.put(st)
	}
	if sp.Kind == Child {
		// Through x.run: the child may have ended in this transaction.
		if crs, err := x.run(ChildID(r.ID, st.ID, st.Item)); err == nil && crs.rec.State.Final() {
			return x.childDone(rs, st, &crs.rec)
		}
	}
	if sp.Kind == Sleep {
		var res struct {
			Until time.Time `json:"sleptUntil"`
		}
		if json.Unmarshal(st.Input, &res) == nil && !x.now.Before(res.Until) {
			return x.stepCompleted(rs, st, st.Input) // the sleep ended by the deadline
		}
	}
	if !r.Deadline.IsZero() && !x.now.Before(r.Deadline) {
		return x.timedOut(rs)
	}
	switch sp.Kind {
	case Sleep:
		var res struct {
			Until time.Time `json:"sleptUntil"`
		}
		_ = json.Unmarshal(st.Input, &res)
		st.DueAt = res.Until // not yet: a clock that went back
		return x.put(st)
	case Event:
		st.Event, st.EventKey = "", ""
		return x.giveUp(rs, st, fmt.Sprintf("timed out waiting for event %q", sp.EventName))
	}
	st.DueAt = r.Deadline
	return x.put(st)
}

// childDone ends a step or item whose child run ended.
func (x *Txn) childDone(rs *runState, st *store.Step, child *store.Run) error {
	st.DueAt = time.Time{}
	if child.State != store.RunCompleted {
		verb := "failed"
		if child.State == store.RunCancelled {
			verb = "was cancelled"
		}
		return x.giveUp(rs, st, fmt.Sprintf("child run %q %s: %s", child.ID, verb, child.Error))
	}
	result, err := x.results(child.ID)
	if err != nil {
		return err
	}
	if st.Item > 0 {
		return x.itemCompleted(rs, st, result)
	}
	return x.stepCompleted(rs, st, result)
}

// results is a run's results: an object from each completed step's id to its
// result.
func (x *Txn) results(runID string) (json.RawMessage, error) {
	steps, err := x.tx.Steps(runID)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteByte('{')
	n := 0
	for _, s := range steps {
		if s.State != store.StepCompleted {
			continue
		}
		if n > 0 {
			b.WriteByte(',')
		}
		n++
		id, _ := json.Marshal(s.ID)
		b.Write(id)
		b.WriteByte(':')
		b.Write(payload(s.Result))
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}
