package main

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dagflow/dagflow/store"
)

// FileStore is a small store.Store of our own: the whole state is a value
// that every Update copies (copy-on-write, per run), changes, and, when it
// commits, writes to one JSON file. It is not fast with many runs, but it is
// short, and it passes store/storetest like every store must.
type FileStore struct {
	path string // "" keeps the state in memory only

	mu     sync.Mutex // serializes Updates
	cur    *state     // the committed state; replaced, never changed
	closed bool
}

type state struct {
	Runs      map[string]store.Run                `json:"runs"`
	Specs     map[string]json.RawMessage          `json:"specs"`
	Steps     map[string]map[string]store.Step    `json:"steps"` // by run, then "<index>/<item>"
	Attempts  map[string][]store.Attempt          `json:"attempts"`
	Hooks     map[string]map[string]store.Webhook `json:"hooks"`
	Events    []store.Event                       `json:"events"`
	Schedules map[string]store.Schedule           `json:"schedules"`
	Slots     map[string]store.Slots              `json:"slots"`
}

func newState() *state {
	return &state{Runs: map[string]store.Run{}, Specs: map[string]json.RawMessage{}, Steps: map[string]map[string]store.Step{},
		Attempts: map[string][]store.Attempt{}, Hooks: map[string]map[string]store.Webhook{},
		Schedules: map[string]store.Schedule{}, Slots: map[string]store.Slots{}}
}

// stepKey is where a step or item is kept in a run's map.
func stepKey(index, item int) string { return fmt.Sprintf("%d/%d", index, item) }

// OpenFileStore opens the store kept in the file at path, creating it if
// needed; an empty path keeps everything in memory.
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, cur: newState()}
	if path != "" {
		data, err := os.ReadFile(path)
		if err == nil {
			if err := json.Unmarshal(data, s.cur); err != nil {
				return nil, fmt.Errorf("filestore: %s: %w", path, err)
			}
		} else if !os.IsNotExist(err) {
			return nil, err
		}
	}
	return s, nil
}

// Exclusive reports true: one process owns the file.
func (s *FileStore) Exclusive() bool { return true }

func (s *FileStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	next := &state{Runs: maps.Clone(s.cur.Runs), Specs: maps.Clone(s.cur.Specs), Steps: maps.Clone(s.cur.Steps),
		Attempts: maps.Clone(s.cur.Attempts), Hooks: maps.Clone(s.cur.Hooks), Events: slices.Clone(s.cur.Events),
		Schedules: maps.Clone(s.cur.Schedules), Slots: maps.Clone(s.cur.Slots)}
	t := &fileTx{st: next, write: true, owned: map[string]bool{}}
	if err := fn(t); err != nil {
		return err // next is dropped: nothing of fn's is kept
	}
	if s.path != "" {
		data, err := json.Marshal(next)
		if err != nil {
			return err
		}
		tmp := s.path + ".tmp"
		f, err := os.Create(tmp)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		if err := os.Rename(tmp, s.path); err != nil {
			return err
		}
	}
	s.cur = next
	return nil
}

func (s *FileStore) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	cur, closed := s.cur, s.closed
	s.mu.Unlock()
	if closed {
		return store.ErrClosed
	}
	return fn(&fileTx{st: cur})
}

func (s *FileStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	return nil
}

// fileTx reads and writes a state; in an Update it owns the state's outer
// maps and clones a run's inner maps before its first write to them.
type fileTx struct {
	st    *state
	write bool
	owned map[string]bool // runs whose inner maps this transaction copied
}

func (t *fileTx) own(runID string) {
	if !t.owned[runID] {
		t.owned[runID] = true
		t.st.Steps[runID] = maps.Clone(t.st.Steps[runID])
		t.st.Hooks[runID] = maps.Clone(t.st.Hooks[runID])
		t.st.Attempts[runID] = slices.Clone(t.st.Attempts[runID])
		if t.st.Steps[runID] == nil {
			t.st.Steps[runID] = map[string]store.Step{}
		}
		if t.st.Hooks[runID] == nil {
			t.st.Hooks[runID] = map[string]store.Webhook{}
		}
	}
}

func (t *fileTx) writable(runID string) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if _, ok := t.st.Runs[runID]; !ok {
		return store.ErrNotFound
	}
	t.own(runID)
	return nil
}

func (t *fileTx) Run(id string) (store.Run, error) {
	r, ok := t.st.Runs[id]
	if !ok {
		return r, store.ErrNotFound
	}
	return r, nil
}

func (t *fileTx) PutRun(r store.Run) error {
	if !t.write {
		return store.ErrReadOnly
	}
	t.st.Runs[r.ID] = r
	return nil
}

func (t *fileTx) Runs(q store.RunQuery) ([]store.Run, error) {
	all := slices.Collect(maps.Values(t.st.Runs))
	slices.SortFunc(all, func(a, b store.Run) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	out := []store.Run{}
	for _, r := range all {
		if q.Before != nil {
			if c := r.CreatedAt.Compare(q.Before.CreatedAt); c > 0 || c == 0 && r.ID >= q.Before.ID {
				continue
			}
		}
		if (q.State != "" && r.State != q.State) || !strings.Contains(r.ID, q.IDContains) || q.Parent != "" && r.Parent != q.Parent ||
			!q.EndedBefore.IsZero() && (!r.State.Final() || !r.CompletedAt.Before(q.EndedBefore)) {
			continue
		}
		if out = append(out, r); q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

func (t *fileTx) DeleteRun(id string) error {
	if err := t.writable(id); err != nil {
		return err
	}
	delete(t.st.Runs, id)
	delete(t.st.Specs, id)
	delete(t.st.Steps, id)
	delete(t.st.Attempts, id)
	delete(t.st.Hooks, id)
	return nil
}

func (t *fileTx) Spec(runID string) (json.RawMessage, error) {
	spec, ok := t.st.Specs[runID]
	if !ok {
		return nil, store.ErrNotFound
	}
	return spec, nil
}

func (t *fileTx) PutSpec(runID string, spec json.RawMessage) error {
	if err := t.writable(runID); err != nil {
		return err
	}
	t.st.Specs[runID] = spec
	return nil
}

func (t *fileTx) Step(runID string, index, item int) (store.Step, error) {
	st, ok := t.st.Steps[runID][stepKey(index, item)]
	if !ok {
		return st, store.ErrNotFound
	}
	return st, nil
}

func (t *fileTx) PutStep(st store.Step) error {
	if err := t.writable(st.RunID); err != nil {
		return err
	}
	t.st.Steps[st.RunID][stepKey(st.Index, st.Item)] = st
	return nil
}

// list returns the steps (item 0) or the items of one step of a run, in
// order.
func (t *fileTx) list(runID string, keep func(store.Step) bool) []store.Step {
	out := []store.Step{}
	for _, st := range t.st.Steps[runID] {
		if keep(st) {
			out = append(out, st)
		}
	}
	slices.SortFunc(out, func(a, b store.Step) int { return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Item, b.Item)) })
	return out
}

func (t *fileTx) Steps(runID string) ([]store.Step, error) {
	return t.list(runID, func(st store.Step) bool { return st.Item == 0 }), nil
}

func (t *fileTx) Items(runID string, index int) ([]store.Step, error) {
	return t.list(runID, func(st store.Step) bool { return st.Index == index && st.Item > 0 }), nil
}

// due collects every record due by now, earliest first: a scan, which is
// what "small" costs.
func due[T any](recs map[string]map[string]T, dueAt func(T) time.Time, now time.Time, limit int) []T {
	var out []T
	for _, m := range recs {
		for _, r := range m {
			if at := dueAt(r); !at.IsZero() && !at.After(now) {
				out = append(out, r)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b T) int { return dueAt(a).Compare(dueAt(b)) })
	return out[:min(len(out), max(limit, 0))]
}

func (t *fileTx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	return append([]store.Step{}, due(t.st.Steps, func(s store.Step) time.Time { return s.DueAt }, now, max)...), nil
}

func (t *fileTx) NextDue() (time.Time, error) {
	var next time.Time
	consider := func(at time.Time) {
		if !at.IsZero() && (next.IsZero() || at.Before(next)) {
			next = at
		}
	}
	for _, m := range t.st.Steps {
		for _, s := range m {
			consider(s.DueAt)
		}
	}
	for _, m := range t.st.Hooks {
		for _, w := range m {
			consider(w.DueAt)
		}
	}
	return next, nil
}

func (t *fileTx) Waiting(event, key string) ([]store.Step, error) {
	out := []store.Step{}
	for _, m := range t.st.Steps {
		for _, st := range m {
			if st.State == store.StepWaiting && st.Event == event && st.EventKey == key && event != "" {
				out = append(out, st)
			}
		}
	}
	return out, nil
}

func attemptOrder(a, b store.Attempt) int {
	return cmp.Or(cmp.Compare(a.Index, b.Index), cmp.Compare(a.Item, b.Item), compareBool(a.Compensation, b.Compensation),
		cmp.Compare(a.Generation, b.Generation), cmp.Compare(a.Number, b.Number))
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

func (t *fileTx) PutAttempt(a store.Attempt) error {
	if err := t.writable(a.RunID); err != nil {
		return err
	}
	list := t.st.Attempts[a.RunID]
	i, found := slices.BinarySearchFunc(list, a, attemptOrder)
	if found {
		list[i] = a
	} else {
		list = slices.Insert(list, i, a)
	}
	t.st.Attempts[a.RunID] = list
	return nil
}

func (t *fileTx) Attempts(runID string, index int) ([]store.Attempt, error) {
	out := []store.Attempt{}
	for _, a := range t.st.Attempts[runID] {
		if index < 0 || a.Index == index {
			out = append(out, a)
		}
	}
	return out, nil
}

func (t *fileTx) PutWebhook(w store.Webhook) error {
	if err := t.writable(w.RunID); err != nil {
		return err
	}
	t.st.Hooks[w.RunID][w.ID] = w
	return nil
}

func (t *fileTx) Webhooks(runID string) ([]store.Webhook, error) {
	out := slices.Collect(maps.Values(t.st.Hooks[runID]))
	slices.SortFunc(out, func(a, b store.Webhook) int { return strings.Compare(a.ID, b.ID) })
	return append([]store.Webhook{}, out...), nil
}

func (t *fileTx) DueWebhooks(now time.Time, max int) ([]store.Webhook, error) {
	return append([]store.Webhook{}, due(t.st.Hooks, func(w store.Webhook) time.Time { return w.DueAt }, now, max)...), nil
}

func (t *fileTx) PutEvent(ev store.Event) error {
	if !t.write {
		return store.ErrReadOnly
	}
	t.st.Events = slices.DeleteFunc(slices.Clone(t.st.Events), func(e store.Event) bool {
		return e.Name == ev.Name && e.Key == ev.Key && e.ID == ev.ID
	})
	t.st.Events = append(t.st.Events, ev)
	return nil
}

func (t *fileTx) Events(name, key string, since time.Time) ([]store.Event, error) {
	out := []store.Event{}
	for _, e := range t.st.Events {
		if e.Name == name && e.Key == key && !e.SentAt.Before(since) {
			out = append(out, e)
		}
	}
	slices.SortFunc(out, func(a, b store.Event) int { return cmp.Or(a.SentAt.Compare(b.SentAt), strings.Compare(a.ID, b.ID)) })
	return out, nil
}

func (t *fileTx) DeleteEvents(before time.Time, max int) (int, error) {
	if !t.write {
		return 0, store.ErrReadOnly
	}
	n := 0
	t.st.Events = slices.DeleteFunc(slices.Clone(t.st.Events), func(e store.Event) bool {
		if n < max && e.SentAt.Before(before) {
			n++
			return true
		}
		return false
	})
	return n, nil
}

func (t *fileTx) Schedule(id string) (store.Schedule, error) {
	sc, ok := t.st.Schedules[id]
	if !ok {
		return sc, store.ErrNotFound
	}
	return sc, nil
}

func (t *fileTx) PutSchedule(sc store.Schedule) error {
	if !t.write {
		return store.ErrReadOnly
	}
	t.st.Schedules[sc.ID] = sc
	return nil
}

func (t *fileTx) DeleteSchedule(id string) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if _, ok := t.st.Schedules[id]; !ok {
		return store.ErrNotFound
	}
	delete(t.st.Schedules, id)
	return nil
}

func (t *fileTx) Schedules() ([]store.Schedule, error) {
	out := slices.Collect(maps.Values(t.st.Schedules))
	slices.SortFunc(out, func(a, b store.Schedule) int { return strings.Compare(a.ID, b.ID) })
	return append([]store.Schedule{}, out...), nil
}

func (t *fileTx) Slots(key string) (store.Slots, error) {
	sl, ok := t.st.Slots[key]
	if !ok {
		return sl, store.ErrNotFound
	}
	return sl, nil
}

func (t *fileTx) PutSlots(sl store.Slots) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if len(sl.Holders) == 0 && len(sl.Queue) == 0 {
		delete(t.st.Slots, sl.Key)
	} else {
		t.st.Slots[sl.Key] = sl
	}
	return nil
}
