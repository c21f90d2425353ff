// Package memory is an in-memory store.Store: safe for concurrent use, and
// gone when the process ends. It suits tests and runs that need no
// durability, and it is the reference implementation that store/storetest
// checks other stores against, so it is written to be read: maps, a heap for
// what is due, and an undo log of closures.
package memory

import (
	"cmp"
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

	runs      map[string]*runData
	events    map[string][]store.Event // by name and key, oldest first
	schedules map[string]store.Schedule
	slots     map[string]store.Slots

	// The due index: every step, item and webhook whose DueAt is set has
	// an entry with that time in a heap. An entry whose time is no longer
	// its record's DueAt is stale and skipped.
	due     dueHeap // of steps and items
	hookDue dueHeap
	// waiting indexes waiting steps by event name and key.
	waiting map[string]map[stepKey]bool

	undo []func() // of the Update under way
}

// runData is a run and what belongs to it. Records are kept by pointer and
// never changed in place: a write puts a new record, and its undo puts the
// old pointer back.
type runData struct {
	run      *store.Run
	spec     json.RawMessage
	steps    []*store.Step         // by Index
	items    map[int][]*store.Step // by step Index, then Item-1
	attempts map[attemptKey]store.Attempt
	hooks    map[string]store.Webhook
}

type stepKey struct {
	run         string
	index, item int
}

type hookKey struct{ run, id string }

type attemptKey struct {
	index, item int
	comp        bool
	gen, number int
}

// New returns an empty store.
func New() *Store {
	return &Store{
		runs: map[string]*runData{}, events: map[string][]store.Event{},
		schedules: map[string]store.Schedule{}, slots: map[string]store.Slots{},
		waiting: map[string]map[stepKey]bool{},
	}
}

// Exclusive reports true: a memory store belongs to one engine.
func (s *Store) Exclusive() bool { return true }

// Update runs fn in a read-write transaction. Transactions are serial; when fn
// returns an error every change it made is undone.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) (err error) {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.undo = s.undo[:0]
	defer func() {
		if p := recover(); p != nil {
			s.rollback()
			panic(p)
		}
		if err != nil {
			s.rollback()
		}
		s.undo = s.undo[:0]
	}()
	return fn(&tx{s: s, write: true})
}

func (s *Store) rollback() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
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

// Close drops every record. Later calls return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	s.runs = nil
	return nil
}

// tx is a transaction: the store itself, under its lock.
type tx struct {
	s     *Store
	write bool
}

// log records how to undo a change of the Update under way.
func (t *tx) log(f func()) { t.s.undo = append(t.s.undo, f) }

func (t *tx) writable() error {
	if !t.write {
		return store.ErrReadOnly
	}
	return nil
}

func (t *tx) Run(id string) (store.Run, error) {
	d, ok := t.s.runs[id]
	if !ok {
		return store.Run{}, store.ErrNotFound
	}
	return *d.run, nil
}

func (t *tx) PutRun(r store.Run) error {
	if err := t.writable(); err != nil {
		return err
	}
	d, ok := t.s.runs[r.ID]
	if !ok {
		d = &runData{items: map[int][]*store.Step{}, attempts: map[attemptKey]store.Attempt{}, hooks: map[string]store.Webhook{}}
		t.s.runs[r.ID] = d
		t.log(func() { delete(t.s.runs, r.ID) })
	} else {
		old := d.run
		t.log(func() { d.run = old })
	}
	d.run = &r
	return nil
}

func (t *tx) Runs(q store.RunQuery) ([]store.Run, error) {
	var match []*store.Run
	for _, d := range t.s.runs {
		r := d.run
		switch {
		case q.State != "" && r.State != q.State,
			q.IDContains != "" && !strings.Contains(r.ID, q.IDContains),
			q.Parent != "" && r.Parent != q.Parent,
			!q.EndedBefore.IsZero() && (!r.State.Final() || !r.CompletedAt.Before(q.EndedBefore)),
			q.Before != nil && cmpListing(r.CreatedAt, r.ID, q.Before.CreatedAt, q.Before.ID) <= 0:
			continue
		}
		match = append(match, r)
	}
	slices.SortFunc(match, func(a, b *store.Run) int { return cmpListing(a.CreatedAt, a.ID, b.CreatedAt, b.ID) })
	if q.Limit > 0 && len(match) > q.Limit {
		match = match[:q.Limit]
	}
	out := make([]store.Run, len(match))
	for i, r := range match {
		out[i] = *r
	}
	return out, nil
}

// cmpListing orders runs newest first: by CreatedAt, then ID, descending.
func cmpListing(at time.Time, id string, bt time.Time, bid string) int {
	return cmp.Or(bt.Compare(at), strings.Compare(bid, id))
}

func (t *tx) DeleteRun(id string) error {
	if err := t.writable(); err != nil {
		return err
	}
	d, ok := t.s.runs[id]
	if !ok {
		return store.ErrNotFound
	}
	// Through the index-keeping writes, so that their undo restores them.
	for _, st := range d.steps {
		if st != nil {
			t.index(st, &store.Step{RunID: id, Index: st.Index, Item: st.Item})
		}
	}
	for _, items := range d.items {
		for _, st := range items {
			if st != nil {
				t.index(st, &store.Step{RunID: id, Index: st.Index, Item: st.Item})
			}
		}
	}
	for _, w := range d.hooks {
		t.indexHook(w, store.Webhook{RunID: id, ID: w.ID})
	}
	delete(t.s.runs, id)
	t.log(func() { t.s.runs[id] = d })
	return nil
}

func (t *tx) Spec(runID string) (json.RawMessage, error) {
	d, ok := t.s.runs[runID]
	if !ok || d.spec == nil {
		return nil, store.ErrNotFound
	}
	return d.spec, nil
}

func (t *tx) PutSpec(runID string, spec json.RawMessage) error {
	if err := t.writable(); err != nil {
		return err
	}
	d, ok := t.s.runs[runID]
	if !ok {
		return store.ErrNotFound
	}
	old := d.spec
	t.log(func() { d.spec = old })
	d.spec = spec
	return nil
}

// slot returns a step or item, or nil.
func (d *runData) slot(index, item int) *store.Step {
	list := d.steps
	if item > 0 {
		list = d.items[index]
		index = item - 1
	}
	if index < 0 || index >= len(list) {
		return nil
	}
	return list[index]
}

func (t *tx) Step(runID string, index, item int) (store.Step, error) {
	d, ok := t.s.runs[runID]
	if !ok {
		return store.Step{}, store.ErrNotFound
	}
	if p := d.slot(index, item); p != nil {
		return *p, nil
	}
	return store.Step{}, store.ErrNotFound
}

func (t *tx) PutStep(st store.Step) error {
	if err := t.writable(); err != nil {
		return err
	}
	d, ok := t.s.runs[st.RunID]
	if !ok {
		return store.ErrNotFound
	}
	old := d.slot(st.Index, st.Item)
	t.set(d, st.Index, st.Item, &st)
	index, item := st.Index, st.Item
	t.log(func() { t.set(d, index, item, old) })
	was := old
	if was == nil {
		was = &store.Step{RunID: st.RunID, Index: st.Index, Item: st.Item}
	}
	t.index(was, &st)
	return nil
}

// set keeps p (nil for none) as a step or item.
func (t *tx) set(d *runData, index, item int, p *store.Step) {
	list, i := &d.steps, index
	if item > 0 {
		l := d.items[index]
		list, i = &l, item-1
		defer func() { d.items[index] = *list }()
	}
	for len(*list) <= i {
		*list = append(*list, nil)
	}
	(*list)[i] = p
}

// index keeps the due and event indexes in step with a record that changes
// from old to st.
func (t *tx) index(old, st *store.Step) {
	s := t.s
	k := stepKey{st.RunID, st.Index, st.Item}
	if !old.DueAt.Equal(st.DueAt) {
		if !st.DueAt.IsZero() {
			s.due.push(dueEntry{at: st.DueAt, step: k})
		}
		if !old.DueAt.IsZero() {
			t.log(func() { s.due.push(dueEntry{at: old.DueAt, step: k}) })
		}
	}
	oldW, newW := waitKey(old), waitKey(st)
	if oldW != newW {
		if oldW != "" {
			t.setWaiting(oldW, k, false)
		}
		if newW != "" {
			t.setWaiting(newW, k, true)
		}
	}
}

// waitKey is the key of the event index a record belongs under, or "".
func waitKey(st *store.Step) string {
	if st.State != store.StepWaiting || st.Event == "" {
		return ""
	}
	return eventKey(st.Event, st.EventKey)
}

func eventKey(name, key string) string { return name + "\x00" + key }

func (t *tx) setWaiting(wk string, k stepKey, on bool) {
	s := t.s
	set := s.waiting[wk]
	if set == nil {
		set = map[stepKey]bool{}
		s.waiting[wk] = set
	}
	was := set[k]
	if on {
		set[k] = true
	} else {
		delete(set, k)
	}
	t.log(func() {
		if was {
			s.waiting[wk][k] = true
		} else {
			delete(s.waiting[wk], k)
		}
	})
}

func (t *tx) Steps(runID string) ([]store.Step, error) {
	d, ok := t.s.runs[runID]
	if !ok {
		return []store.Step{}, nil
	}
	return present(d.steps), nil
}

func (t *tx) Items(runID string, index int) ([]store.Step, error) {
	d, ok := t.s.runs[runID]
	if !ok {
		return []store.Step{}, nil
	}
	return present(d.items[index]), nil
}

// present copies the records of a list.
func present(list []*store.Step) []store.Step {
	out := make([]store.Step, 0, len(list))
	for _, st := range list {
		if st != nil {
			out = append(out, *st)
		}
	}
	return out
}

func (t *tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	var out []store.Step
	for _, e := range t.s.popDue(&t.s.due, now, max) {
		out = append(out, *t.s.runs[e.step.run].slot(e.step.index, e.step.item))
	}
	return out, nil
}

func (t *tx) DueWebhooks(now time.Time, max int) ([]store.Webhook, error) {
	var out []store.Webhook
	for _, e := range t.s.popDue(&t.s.hookDue, now, max) {
		out = append(out, t.s.runs[e.hook.run].hooks[e.hook.id])
	}
	return out, nil
}

// popDue returns up to max current entries of h due at or before now,
// earliest first. Stale entries are dropped; the current ones are put back,
// since reading changes nothing.
func (s *Store) popDue(h *dueHeap, now time.Time, max int) []dueEntry {
	var out []dueEntry
	seen := map[dueEntry]bool{}
	for len(out) < max && len(*h) > 0 && !(*h)[0].at.After(now) {
		e := h.pop()
		if !s.current(e) || seen[e] {
			continue // stale, or a copy of one already taken
		}
		seen[e] = true
		out = append(out, e)
	}
	for _, e := range out {
		h.push(e)
	}
	return out
}

// current reports whether a heap entry still says when its record is due.
func (s *Store) current(e dueEntry) bool {
	if e.step.run != "" {
		d, ok := s.runs[e.step.run]
		if !ok {
			return false
		}
		st := d.slot(e.step.index, e.step.item)
		return st != nil && !st.DueAt.IsZero() && st.DueAt.Equal(e.at)
	}
	d, ok := s.runs[e.hook.run]
	if !ok {
		return false
	}
	w, ok := d.hooks[e.hook.id]
	return ok && !w.DueAt.IsZero() && w.DueAt.Equal(e.at)
}

func (t *tx) NextDue() (time.Time, error) {
	a, b := t.s.first(&t.s.due), t.s.first(&t.s.hookDue)
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b, nil
	}
	return a, nil
}

// first returns the time of the earliest current entry of h, or zero.
func (s *Store) first(h *dueHeap) time.Time {
	for len(*h) > 0 {
		if e := (*h)[0]; s.current(e) {
			return e.at
		}
		h.pop() // stale, and stale for good: an undo pushes anew
	}
	return time.Time{}
}

func (t *tx) Waiting(event, key string) ([]store.Step, error) {
	var out []store.Step
	for k := range t.s.waiting[eventKey(event, key)] {
		out = append(out, *t.s.runs[k.run].slot(k.index, k.item))
	}
	return out, nil
}

func (t *tx) PutAttempt(a store.Attempt) error {
	if err := t.writable(); err != nil {
		return err
	}
	d, ok := t.s.runs[a.RunID]
	if !ok {
		return store.ErrNotFound
	}
	k := attemptKey{a.Index, a.Item, a.Compensation, a.Generation, a.Number}
	old, had := d.attempts[k]
	t.log(func() {
		if had {
			d.attempts[k] = old
		} else {
			delete(d.attempts, k)
		}
	})
	d.attempts[k] = a
	return nil
}

func (t *tx) Attempts(runID string, index int) ([]store.Attempt, error) {
	out := []store.Attempt{}
	d, ok := t.s.runs[runID]
	if !ok {
		return out, nil
	}
	for k, a := range d.attempts {
		if index < 0 || k.index == index {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b store.Attempt) int {
		return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Item, b.Item), cmpBool(a.Compensation, b.Compensation),
			cmp.Compare(a.Generation, b.Generation), cmp.Compare(a.Number, b.Number))
	})
	return out, nil
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func (t *tx) PutWebhook(w store.Webhook) error {
	if err := t.writable(); err != nil {
		return err
	}
	d, ok := t.s.runs[w.RunID]
	if !ok {
		return store.ErrNotFound
	}
	old, had := d.hooks[w.ID]
	t.log(func() {
		if had {
			d.hooks[w.ID] = old
		} else {
			delete(d.hooks, w.ID)
		}
	})
	t.indexHook(old, w)
	d.hooks[w.ID] = w
	return nil
}

// indexHook keeps the due index in step with a webhook that changes from
// old to w.
func (t *tx) indexHook(old, w store.Webhook) {
	s := t.s
	k := hookKey{w.RunID, w.ID}
	if old.DueAt.Equal(w.DueAt) {
		return
	}
	if !w.DueAt.IsZero() {
		s.hookDue.push(dueEntry{at: w.DueAt, hook: k})
	}
	if !old.DueAt.IsZero() {
		t.log(func() { s.hookDue.push(dueEntry{at: old.DueAt, hook: k}) })
	}
}

func (t *tx) Webhooks(runID string) ([]store.Webhook, error) {
	out := []store.Webhook{}
	if d, ok := t.s.runs[runID]; ok {
		for _, w := range d.hooks {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b store.Webhook) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (t *tx) PutEvent(ev store.Event) error {
	if err := t.writable(); err != nil {
		return err
	}
	k := eventKey(ev.Name, ev.Key)
	old := t.s.events[k]
	t.log(func() { t.s.events[k] = old })
	list := slices.DeleteFunc(slices.Clone(old), func(e store.Event) bool { return e.ID == ev.ID })
	i, _ := slices.BinarySearchFunc(list, ev, cmpEvent)
	t.s.events[k] = slices.Insert(list, i, ev)
	return nil
}

func cmpEvent(a, b store.Event) int {
	return cmp.Or(a.SentAt.Compare(b.SentAt), strings.Compare(a.ID, b.ID))
}

func (t *tx) Events(name, key string, since time.Time) ([]store.Event, error) {
	out := []store.Event{}
	for _, ev := range t.s.events[eventKey(name, key)] {
		if !ev.SentAt.Before(since) {
			out = append(out, ev)
		}
	}
	return out, nil
}

func (t *tx) DeleteEvents(before time.Time, max int) (int, error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	n := 0
	for k, list := range t.s.events {
		keep := list
		for len(keep) > 0 && keep[0].SentAt.Before(before) && n < max {
			keep = keep[1:]
			n++
		}
		if len(keep) != len(list) {
			t.log(func() { t.s.events[k] = list })
			if len(keep) == 0 {
				delete(t.s.events, k)
			} else {
				t.s.events[k] = keep
			}
		}
	}
	return n, nil
}

func (t *tx) Schedule(id string) (store.Schedule, error) {
	sc, ok := t.s.schedules[id]
	if !ok {
		return store.Schedule{}, store.ErrNotFound
	}
	return sc, nil
}

func (t *tx) PutSchedule(sc store.Schedule) error {
	if err := t.writable(); err != nil {
		return err
	}
	old, had := t.s.schedules[sc.ID]
	t.log(func() {
		if had {
			t.s.schedules[sc.ID] = old
		} else {
			delete(t.s.schedules, sc.ID)
		}
	})
	t.s.schedules[sc.ID] = sc
	return nil
}

func (t *tx) DeleteSchedule(id string) error {
	if err := t.writable(); err != nil {
		return err
	}
	old, ok := t.s.schedules[id]
	if !ok {
		return store.ErrNotFound
	}
	t.log(func() { t.s.schedules[id] = old })
	delete(t.s.schedules, id)
	return nil
}

func (t *tx) Schedules() ([]store.Schedule, error) {
	out := []store.Schedule{}
	for _, sc := range t.s.schedules {
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b store.Schedule) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

func (t *tx) Slots(key string) (store.Slots, error) {
	sl, ok := t.s.slots[key]
	if !ok {
		return store.Slots{}, store.ErrNotFound
	}
	return sl, nil
}

func (t *tx) PutSlots(sl store.Slots) error {
	if err := t.writable(); err != nil {
		return err
	}
	old, had := t.s.slots[sl.Key]
	t.log(func() {
		if had {
			t.s.slots[sl.Key] = old
		} else {
			delete(t.s.slots, sl.Key)
		}
	})
	if len(sl.Holders) == 0 && len(sl.Queue) == 0 {
		delete(t.s.slots, sl.Key)
	} else {
		t.s.slots[sl.Key] = sl
	}
	return nil
}

// dueEntry is a step, item or webhook due at a time (one of step and hook is
// set).
type dueEntry struct {
	at   time.Time
	step stepKey
	hook hookKey
}

// dueHeap is a min-heap of due entries, earliest first.
type dueHeap []dueEntry

func (h *dueHeap) push(e dueEntry) {
	*h = append(*h, e)
	a := *h
	for i := len(a) - 1; i > 0; {
		parent := (i - 1) / 2
		if !a[i].at.Before(a[parent].at) {
			break
		}
		a[i], a[parent] = a[parent], a[i]
		i = parent
	}
}

func (h *dueHeap) pop() dueEntry {
	a := *h
	top := a[0]
	n := len(a) - 1
	a[0] = a[n]
	a = a[:n]
	for i := 0; ; {
		l, small := 2*i+1, i
		if l < n && a[l].at.Before(a[small].at) {
			small = l
		}
		if r := l + 1; r < n && a[r].at.Before(a[small].at) {
			small = r
		}
		if small == i {
			break
		}
		a[i], a[small] = a[small], a[i]
		i = small
	}
	if n == 0 {
		a = nil // let an emptied heap's array go
	}
	*h = a
	return top
}
