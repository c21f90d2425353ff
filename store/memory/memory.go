// Package memory is an in-memory store.Store: fast, safe for concurrent use,
// and gone when the process ends. It suits tests and runs that need no
// durability, and it is the reference implementation that store/storetest
// checks other stores against.
package memory

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dagflow/dagflow/store"
)

// Store keeps runs in memory. The zero value is not usable; call New.
// A Store is safe for concurrent use. Update holds an exclusive lock while its
// function runs, so transactions are serial; View takes a shared lock.
type Store struct {
	mu     sync.RWMutex
	closed bool

	runs  map[string]*runEntry
	order []*runEntry // ascending (CreatedAt, ID)

	steps dueHeap // due steps, lazily pruned
	hooks dueHeap // due webhooks, lazily pruned
	seq   uint64  // numbers heap entries

	tx tx // reused by Update (calls are serial)
}

type runEntry struct {
	run     store.Run
	spec    json.RawMessage
	steps   []stepSlot
	hooks   map[string]*hookSlot
	deleted bool
}

type stepSlot struct {
	step     store.Step
	ok       bool
	dueSeq   uint64 // the heap entry that is current for this step
	attempts []store.Attempt
}

type hookSlot struct {
	hook   store.Webhook
	dueSeq uint64
}

// New returns an empty store.
func New() *Store {
	s := &Store{runs: make(map[string]*runEntry)}
	s.tx.s = s
	return s
}

// Exclusive reports true: a memory store belongs to one engine.
func (s *Store) Exclusive() bool { return true }

// Update runs fn in a read-write transaction. Transactions are serial; when fn
// returns an error every change it made is undone.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	t := &s.tx
	t.write = true
	t.undo = t.undo[:0]
	err := fn(t)
	if err != nil {
		t.rollback()
	}
	clear(t.undo)
	t.undo = t.undo[:0]
	t.write = false
	return err
}

// View runs fn in a read-only transaction.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	return fn(&tx{s: s})
}

// Close empties the store; later calls return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.runs = nil
	s.order = nil
	s.steps = nil
	s.hooks = nil
	return nil
}

// tx implements store.Tx. Writes go straight to the maps and are recorded in
// an undo log so that a failing transaction can be rolled back.
type tx struct {
	s     *Store
	write bool
	undo  []func()
}

func (t *tx) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
}

func (t *tx) log(f func()) { t.undo = append(t.undo, f) }

func (t *tx) entry(id string) *runEntry {
	e := t.s.runs[id]
	if e == nil {
		return nil
	}
	return e
}

func (t *tx) Run(id string) (store.Run, error) {
	e := t.entry(id)
	if e == nil {
		return store.Run{}, store.ErrNotFound
	}
	return e.run, nil
}

func (t *tx) PutRun(r store.Run) error {
	if !t.write {
		return store.ErrReadOnly
	}
	s := t.s
	e := s.runs[r.ID]
	if e == nil {
		e = &runEntry{run: r}
		s.runs[r.ID] = e
		s.insertOrder(e)
		t.log(func() { s.removeOrder(e); delete(s.runs, r.ID) })
		return nil
	}
	old := e.run
	if !old.CreatedAt.Equal(r.CreatedAt) {
		s.removeOrder(e)
		e.run = r
		s.insertOrder(e)
		t.log(func() { s.removeOrder(e); e.run = old; s.insertOrder(e) })
		return nil
	}
	e.run = r
	t.log(func() { e.run = old })
	return nil
}

func cmpEntry(a, b *runEntry) int {
	if c := a.run.CreatedAt.Compare(b.run.CreatedAt); c != 0 {
		return c
	}
	return strings.Compare(a.run.ID, b.run.ID)
}

func (s *Store) insertOrder(e *runEntry) {
	i, _ := slices.BinarySearchFunc(s.order, e, cmpEntry)
	s.order = slices.Insert(s.order, i, e)
}

func (s *Store) removeOrder(e *runEntry) {
	i, found := slices.BinarySearchFunc(s.order, e, cmpEntry)
	if found && s.order[i] == e {
		s.order = slices.Delete(s.order, i, i+1)
		return
	}
	if j := slices.Index(s.order, e); j >= 0 {
		s.order = slices.Delete(s.order, j, j+1)
	}
}

func (t *tx) Runs(q store.RunQuery) ([]store.Run, error) {
	out := []store.Run{}
	for i := len(t.s.order) - 1; i >= 0; i-- {
		e := t.s.order[i]
		if e.deleted {
			continue
		}
		r := &e.run
		if q.Before != nil {
			c := r.CreatedAt.Compare(q.Before.CreatedAt)
			if c > 0 || (c == 0 && r.ID >= q.Before.ID) {
				continue
			}
		}
		if q.State != "" && r.State != q.State {
			continue
		}
		if q.IDContains != "" && !strings.Contains(r.ID, q.IDContains) {
			continue
		}
		out = append(out, *r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (t *tx) DeleteRun(id string) error {
	if !t.write {
		return store.ErrReadOnly
	}
	e := t.entry(id)
	if e == nil {
		return store.ErrNotFound
	}
	s := t.s
	e.deleted = true
	delete(s.runs, id)
	s.removeOrder(e)
	t.log(func() { e.deleted = false; s.runs[id] = e; s.insertOrder(e) })
	return nil
}

func (t *tx) Spec(runID string) (json.RawMessage, error) {
	e := t.entry(runID)
	if e == nil || e.spec == nil {
		return nil, store.ErrNotFound
	}
	return e.spec, nil
}

func (t *tx) PutSpec(runID string, spec json.RawMessage) error {
	if !t.write {
		return store.ErrReadOnly
	}
	e := t.entry(runID)
	if e == nil {
		return store.ErrNotFound
	}
	old := e.spec
	e.spec = spec
	t.log(func() { e.spec = old })
	return nil
}

func (t *tx) Step(runID string, index int) (store.Step, error) {
	e := t.entry(runID)
	if e == nil || index < 0 || index >= len(e.steps) || !e.steps[index].ok {
		return store.Step{}, store.ErrNotFound
	}
	return e.steps[index].step, nil
}

func (t *tx) PutStep(st store.Step) error {
	if !t.write {
		return store.ErrReadOnly
	}
	e := t.entry(st.RunID)
	if e == nil || st.Index < 0 {
		return store.ErrNotFound
	}
	if st.Index >= len(e.steps) {
		prev := e.steps
		e.steps = append(e.steps, make([]stepSlot, st.Index+1-len(prev))...)
		t.log(func() { e.steps = prev })
	}
	i := st.Index
	sl := &e.steps[i]
	old := *sl
	sl.step, sl.ok = st, true
	if !st.DueAt.IsZero() && (!old.step.DueAt.Equal(st.DueAt) || !old.ok || old.dueSeq == 0) {
		t.s.seq++
		sl.dueSeq = t.s.seq
		heap.Push(&t.s.steps, dueEntry{at: st.DueAt, seq: sl.dueSeq, run: e, index: st.Index})
	} else if st.DueAt.IsZero() {
		sl.dueSeq = 0
	}
	// Undo by index: the slice may be grown later in this transaction.
	t.log(func() { e.steps[i].step, e.steps[i].ok, e.steps[i].dueSeq = old.step, old.ok, old.dueSeq })
	return nil
}

func (t *tx) Steps(runID string) ([]store.Step, error) {
	e := t.entry(runID)
	if e == nil {
		return []store.Step{}, nil
	}
	out := make([]store.Step, 0, len(e.steps))
	for i := range e.steps {
		if e.steps[i].ok {
			out = append(out, e.steps[i].step)
		}
	}
	return out, nil
}

func (t *tx) CompletedAfter(runID string, seq int64) ([]store.Step, error) {
	e := t.entry(runID)
	if e == nil {
		return []store.Step{}, nil
	}
	out := []store.Step{}
	for i := range e.steps {
		if e.steps[i].ok && e.steps[i].step.Seq > seq {
			out = append(out, e.steps[i].step)
		}
	}
	slices.SortFunc(out, func(a, b store.Step) int { return cmp.Compare(a.Seq, b.Seq) })
	return out, nil
}

// validStep reports whether a heap entry is the current due entry of a step.
func (s *Store) validStep(d dueEntry) bool {
	e := d.run
	if e.deleted || s.runs[e.run.ID] != e || d.index >= len(e.steps) {
		return false
	}
	sl := &e.steps[d.index]
	return sl.ok && sl.dueSeq == d.seq
}

func (s *Store) validHook(d dueEntry) bool {
	e := d.run
	if e.deleted || s.runs[e.run.ID] != e {
		return false
	}
	h := e.hooks[d.hook]
	return h != nil && h.dueSeq == d.seq
}

func (t *tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	out := []store.Step{}
	t.popDue(&t.s.steps, now, max, t.s.validStep, func(d dueEntry) {
		sl := &d.run.steps[d.index]
		out = append(out, sl.step)
		if t.write {
			// Popped: the caller's write-back pushes a fresh entry.
			sl.dueSeq = 0
			t.log(func() { d.run.steps[d.index].dueSeq = d.seq })
		}
	})
	return out, nil
}

func (t *tx) DueWebhooks(now time.Time, max int) ([]store.Webhook, error) {
	out := []store.Webhook{}
	t.popDue(&t.s.hooks, now, max, t.s.validHook, func(d dueEntry) {
		h := d.run.hooks[d.hook]
		out = append(out, h.hook)
		if t.write {
			h.dueSeq = 0
			t.log(func() { h.dueSeq = d.seq })
		}
	})
	return out, nil
}

// popDue collects up to max valid entries due by now. In a write transaction
// it pops them (the caller writes each record back, which pushes a new entry
// when it is still due) and drops stale entries on the way; a rollback pushes
// them back. A read transaction scans without changing the heap.
func (t *tx) popDue(h *dueHeap, now time.Time, max int, valid func(dueEntry) bool, emit func(dueEntry)) {
	if max <= 0 {
		return
	}
	if !t.write {
		due := []dueEntry{}
		for _, d := range *h {
			if !d.at.After(now) && valid(d) {
				due = append(due, d)
			}
		}
		slices.SortFunc(due, cmpDue)
		for i := 0; i < len(due) && i < max; i++ {
			emit(due[i])
		}
		return
	}
	n := 0
	for h.Len() > 0 && n < max {
		d := (*h)[0]
		if d.at.After(now) {
			break
		}
		heap.Pop(h)
		t.log(func() { heap.Push(h, d) })
		if !valid(d) {
			continue
		}
		emit(d)
		n++
	}
}

func (t *tx) NextDue() (time.Time, error) {
	var next time.Time
	for _, p := range []struct {
		h     *dueHeap
		valid func(dueEntry) bool
	}{{&t.s.steps, t.s.validStep}, {&t.s.hooks, t.s.validHook}} {
		at := t.first(p.h, p.valid)
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	return next, nil
}

// first returns the earliest valid due time in h, pruning stale entries from
// the top in a write transaction.
func (t *tx) first(h *dueHeap, valid func(dueEntry) bool) time.Time {
	if t.write {
		for h.Len() > 0 {
			d := (*h)[0]
			if valid(d) {
				return d.at
			}
			heap.Pop(h)
			t.log(func() { heap.Push(h, d) })
		}
		return time.Time{}
	}
	var at time.Time
	for _, d := range *h {
		if valid(d) && (at.IsZero() || d.at.Before(at)) {
			at = d.at
		}
	}
	return at
}

func (t *tx) PutAttempt(a store.Attempt) error {
	if !t.write {
		return store.ErrReadOnly
	}
	e := t.entry(a.RunID)
	if e == nil || a.Index < 0 || a.Index >= len(e.steps) || !e.steps[a.Index].ok {
		return store.ErrNotFound
	}
	i := a.Index
	sl := &e.steps[i]
	old := sl.attempts
	i, found := slices.BinarySearchFunc(sl.attempts, a, cmpAttempt)
	// Copy on write so that the undo closure keeps the old slice intact.
	next := make([]store.Attempt, 0, len(old)+1)
	next = append(next, old[:i]...)
	next = append(next, a)
	if found {
		i++
	}
	next = append(next, old[i:]...)
	sl.attempts = next
	t.log(func() { e.steps[i].attempts = old })
	return nil
}

func cmpAttempt(a, b store.Attempt) int {
	if a.Compensation != b.Compensation {
		if !a.Compensation {
			return -1
		}
		return 1
	}
	if c := cmp.Compare(a.Generation, b.Generation); c != 0 {
		return c
	}
	return cmp.Compare(a.Number, b.Number)
}

func (t *tx) Attempts(runID string, index int) ([]store.Attempt, error) {
	out := []store.Attempt{}
	e := t.entry(runID)
	if e == nil {
		return out, nil
	}
	for i := range e.steps {
		if (index < 0 || i == index) && e.steps[i].ok {
			out = append(out, e.steps[i].attempts...)
		}
	}
	return out, nil
}

func (t *tx) PutWebhook(w store.Webhook) error {
	if !t.write {
		return store.ErrReadOnly
	}
	e := t.entry(w.RunID)
	if e == nil {
		return store.ErrNotFound
	}
	if e.hooks == nil {
		e.hooks = make(map[string]*hookSlot)
	}
	h := e.hooks[w.ID]
	if h == nil {
		h = &hookSlot{}
		e.hooks[w.ID] = h
		t.log(func() { delete(e.hooks, w.ID) })
	}
	old, oldSeq := h.hook, h.dueSeq
	h.hook = w
	if !w.DueAt.IsZero() && (!old.DueAt.Equal(w.DueAt) || oldSeq == 0) {
		t.s.seq++
		h.dueSeq = t.s.seq
		heap.Push(&t.s.hooks, dueEntry{at: w.DueAt, seq: h.dueSeq, run: e, hook: w.ID})
	} else if w.DueAt.IsZero() {
		h.dueSeq = 0
	}
	t.log(func() { h.hook, h.dueSeq = old, oldSeq })
	return nil
}

func (t *tx) Webhooks(runID string) ([]store.Webhook, error) {
	out := []store.Webhook{}
	e := t.entry(runID)
	if e == nil {
		return out, nil
	}
	for _, h := range e.hooks {
		out = append(out, h.hook)
	}
	slices.SortFunc(out, func(a, b store.Webhook) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// dueEntry is one entry of a due heap: a step (index) or a webhook (hook) of
// a run, due at at. seq tells the current entry of a record from stale ones.
type dueEntry struct {
	at    time.Time
	seq   uint64
	run   *runEntry
	index int
	hook  string
}

func cmpDue(a, b dueEntry) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return cmpDue(h[i], h[j]) < 0 }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	return d
}
