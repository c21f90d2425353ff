// Package memory is an in-memory store.Store: fast, safe for concurrent use,
// and gone when the process ends. It suits tests and runs that need no
// durability, and it is the reference implementation that store/storetest
// checks other stores against.
package memory

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
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
	run       store.Run
	spec      json.RawMessage
	steps     []stepSlot
	hooks     map[string]*hookSlot
	deleted   bool
	grownIn   uint64 // the write transaction that last grew steps
	grownFrom int    // how many steps there were before it did
}

type stepSlot struct {
	step     mstep
	ok       bool
	dueSeq   uint64 // the heap entry that is current for this step
	attempts []store.Attempt
}

// mstep is a step as the store keeps it: store.Step without its run id
// (the entry has it) and with times as Unix nanoseconds. It is half the size
// of a store.Step, which halves what a write copies into the store and into
// the undo log, and what a large run keeps in memory.
type mstep struct {
	id, err, owner, compErr                                 string
	index, waiting, attempts, compAttempts                  int32
	state, comp                                             uint8 // codes in stepStates, compStates
	seq, token                                              int64
	due, started, completed, attemptAt, lease, cStart, cEnd int64
	result                                                  []byte
}

// noTime stands for the zero time.Time.
const noTime = math.MinInt64

func toNanos(t time.Time) int64 {
	if t.IsZero() {
		return noTime
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == noTime {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// The states a step record may hold, coded by their index. PutStep refuses
// any other.
var (
	stepStates = [...]store.StepState{"", store.StepPending, store.StepReady, store.StepRunning,
		store.StepCompleted, store.StepFailed, store.StepSkipped, store.StepCancelled}
	compStates = [...]store.CompState{store.CompNone, store.CompReady, store.CompRunning, store.CompDone, store.CompFailed}
)

// code returns the index of v in states, or 255 when it is not there.
func code[S ~string](states []S, v S) uint8 {
	for i, s := range states {
		if s == v {
			return uint8(i)
		}
	}
	return 255
}

func compact(s *store.Step, state, comp uint8) mstep {
	return mstep{
		id: s.ID, state: state, comp: comp, err: s.Error, owner: s.Owner, compErr: s.CompError,
		index: int32(s.Index), waiting: int32(s.Waiting), attempts: int32(s.Attempts), compAttempts: int32(s.CompAttempts),
		seq: s.Seq, token: s.Token,
		due: toNanos(s.DueAt), started: toNanos(s.StartedAt), completed: toNanos(s.CompletedAt), attemptAt: toNanos(s.AttemptAt),
		lease: toNanos(s.LeaseUntil), cStart: toNanos(s.CompStartedAt), cEnd: toNanos(s.CompEndedAt),
		result: s.Result,
	}
}

func (m *mstep) expand(runID string) store.Step {
	return store.Step{
		RunID: runID, Index: int(m.index), ID: m.id, State: stepStates[m.state], Waiting: int(m.waiting),
		Attempts: int(m.attempts), DueAt: fromNanos(m.due), StartedAt: fromNanos(m.started),
		CompletedAt: fromNanos(m.completed), AttemptAt: fromNanos(m.attemptAt), Result: m.result, Error: m.err,
		Seq: m.seq, Owner: m.owner, Token: m.token, LeaseUntil: fromNanos(m.lease), Comp: compStates[m.comp],
		CompAttempts: int(m.compAttempts), CompError: m.compErr, CompStartedAt: fromNanos(m.cStart), CompEndedAt: fromNanos(m.cEnd),
	}
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

// Serial implements store.Serial: Update runs one transaction at a time
// under the store's lock.
func (s *Store) Serial() bool { return true }

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
	t.n++
	err := fn(t)
	if err != nil {
		t.rollback()
	}
	t.reset()
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
	t := viewTxs.Get().(*tx)
	t.s = s
	err := fn(t)
	*t = tx{}
	viewTxs.Put(t)
	return err
}

// viewTxs are the read-only transactions of View, reused: a tx is large
// for what a read needs.
var viewTxs = sync.Pool{New: func() any { return new(tx) }}

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
	s.steps = dueHeap{}
	s.hooks = dueHeap{}
	return nil
}

// tx implements store.Tx. Writes go straight to the maps and are recorded in
// an undo log so that a failing transaction can be rolled back. The log of the
// writes a step makes many times a second (runs, steps, attempts, the due
// heap) is typed, so that recording them allocates nothing once the log's
// slices have grown; rarer writes log a closure.
type tx struct {
	s     *Store
	write bool
	n     uint64    // numbers write transactions, from 1
	last  *runEntry // the run entry found last

	ops    []undoOp
	runs   []runUndo
	steps  chunks[stepUndo]
	seqs   []seqUndo
	pushes []pushUndo
	atts   []attUndo
	ents   []entryUndo
	funcs  []func()

	due []store.Step // DueSteps' result, reused by the next write transaction

	// ranged is the step RangeSteps hands out, while ranging says it is in
	// use (by a RangeSteps that called another).
	ranged  store.Step
	ranging bool
}

// chunks is an append-only list kept in fixed-size chunks: it grows without
// copying what it holds, so that the undo log of one transaction that writes
// a hundred thousand steps never holds two copies of itself.
type chunks[T any] struct {
	c [][]T
	n int
}

const chunkSize = 1024

func (c *chunks[T]) add(v T) int {
	if c.n%chunkSize == 0 && c.n/chunkSize == len(c.c) {
		c.c = append(c.c, make([]T, 0, chunkSize))
	}
	k := c.n / chunkSize
	c.c[k] = append(c.c[k], v)
	c.n++
	return c.n - 1
}

func (c *chunks[T]) at(i int) *T { return &c.c[i/chunkSize][i%chunkSize] }

// reset empties the list, keeping its first chunk.
func (c *chunks[T]) reset() {
	if len(c.c) > 0 {
		clear(c.c[0])
		c.c = c.c[:1]
		c.c[0] = c.c[0][:0]
	}
	c.n = 0
}

type undoKind uint8

const (
	undoFunc undoKind = iota
	undoRun
	undoStep
	undoSeq
	undoPush
	undoAtt
	undoInsert
	undoSpec
)

type undoOp struct {
	kind undoKind
	i    int32 // index into the slice of its kind
}

type runUndo struct {
	e   *runEntry
	run store.Run
}

type stepUndo struct {
	e      *runEntry
	i      int
	step   mstep
	ok     bool
	dueSeq uint64
}

type seqUndo struct {
	e   *runEntry
	i   int
	seq uint64
}

type pushUndo struct {
	h *dueHeap
	d dueEntry
}

// entryUndo undoes the insertion of a run (undoInsert) or PutSpec
// (undoSpec: spec is the old one).
type entryUndo struct {
	e    *runEntry
	id   string
	spec json.RawMessage
}

// attUndo undoes PutAttempt: pos < 0 truncates the step's attempts to n;
// otherwise it puts old back at pos.
type attUndo struct {
	e   *runEntry
	i   int
	n   int
	pos int
	old store.Attempt
}

func (t *tx) reset() {
	t.last = nil
	t.ops = truncate(t.ops)
	t.runs = truncate(t.runs)
	t.steps.reset()
	t.seqs = truncate(t.seqs)
	t.pushes = truncate(t.pushes)
	t.atts = truncate(t.atts)
	t.ents = truncate(t.ents)
	t.funcs = truncate(t.funcs)
}

// truncate empties an undo slice for the next transaction, keeping its room
// unless one large transaction (a fan-out of many steps) grew it.
func truncate[T any](s []T) []T {
	if cap(s) > 4096 {
		return nil
	}
	clear(s)
	return s[:0]
}

func (t *tx) rollback() {
	for k := len(t.ops) - 1; k >= 0; k-- {
		op := t.ops[k]
		switch op.kind {
		case undoFunc:
			t.funcs[op.i]()
		case undoRun:
			u := &t.runs[op.i]
			u.e.run = u.run
		case undoStep:
			u := t.steps.at(int(op.i))
			sl := &u.e.steps[u.i]
			sl.step, sl.ok, sl.dueSeq = u.step, u.ok, u.dueSeq
		case undoSeq:
			u := &t.seqs[op.i]
			u.e.steps[u.i].dueSeq = u.seq
		case undoPush:
			u := &t.pushes[op.i]
			u.h.push(u.d)
		case undoAtt:
			u := &t.atts[op.i]
			sl := &u.e.steps[u.i]
			if u.pos < 0 {
				clear(sl.attempts[u.n:])
				sl.attempts = sl.attempts[:u.n]
			} else {
				sl.attempts[u.pos] = u.old
			}
		case undoInsert:
			u := &t.ents[op.i]
			t.s.removeOrder(u.e)
			delete(t.s.runs, u.id)
		case undoSpec:
			u := &t.ents[op.i]
			u.e.spec = u.spec
		}
	}
}

func (t *tx) log(f func()) {
	t.ops = append(t.ops, undoOp{undoFunc, int32(len(t.funcs))})
	t.funcs = append(t.funcs, f)
}

func (t *tx) logEntry(kind undoKind, u entryUndo) {
	t.ops = append(t.ops, undoOp{kind, int32(len(t.ents))})
	t.ents = append(t.ents, u)
}

func (t *tx) logRun(e *runEntry, old store.Run) {
	t.ops = append(t.ops, undoOp{undoRun, int32(len(t.runs))})
	t.runs = append(t.runs, runUndo{e, old})
}

func (t *tx) logStep(e *runEntry, i int, old *stepSlot) {
	k := t.steps.add(stepUndo{e, i, old.step, old.ok, old.dueSeq})
	t.ops = append(t.ops, undoOp{undoStep, int32(k)})
}

func (t *tx) logSeq(e *runEntry, i int, seq uint64) {
	t.ops = append(t.ops, undoOp{undoSeq, int32(len(t.seqs))})
	t.seqs = append(t.seqs, seqUndo{e, i, seq})
}

func (t *tx) logPop(h *dueHeap, d dueEntry) {
	t.ops = append(t.ops, undoOp{undoPush, int32(len(t.pushes))})
	t.pushes = append(t.pushes, pushUndo{h, d})
}

// entry finds a run; the last one found is kept, as a transaction reads and
// writes the steps of one run many times over.
func (t *tx) entry(id string) *runEntry {
	if e := t.last; e != nil && !e.deleted && e.run.ID == id {
		return e
	}
	e := t.s.runs[id]
	if e != nil {
		t.last = e
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
	e := t.s.runs[r.ID]
	switch {
	case e == nil:
		t.insertRun(&r)
	case !e.run.CreatedAt.Equal(r.CreatedAt):
		t.moveRun(e, &r)
	default:
		t.logRun(e, e.run)
		e.run = r
	}
	return nil
}

// insertRun and moveRun log closures; they are apart from PutRun so that
// its common case does not make r escape.
func (t *tx) insertRun(r *store.Run) {
	s := t.s
	e := &runEntry{run: *r}
	if r.Total > 0 && r.Total <= 1<<24 {
		e.steps = make([]stepSlot, 0, r.Total) // its steps come next
	}
	s.runs[r.ID] = e
	s.insertOrder(e)
	t.logEntry(undoInsert, entryUndo{e: e, id: r.ID})
}

func (t *tx) moveRun(e *runEntry, r *store.Run) {
	s := t.s
	old := e.run
	s.removeOrder(e)
	e.run = *r
	s.insertOrder(e)
	t.log(func() { s.removeOrder(e); e.run = old; s.insertOrder(e) })
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
	t.logEntry(undoSpec, entryUndo{e: e, spec: e.spec})
	e.spec = spec
	return nil
}

func (t *tx) Step(runID string, index int) (store.Step, error) {
	e := t.entry(runID)
	if e == nil || index < 0 || index >= len(e.steps) || !e.steps[index].ok {
		return store.Step{}, store.ErrNotFound
	}
	return e.steps[index].step.expand(runID), nil
}

func (t *tx) PutStep(st store.Step) error {
	if !t.write {
		return store.ErrReadOnly
	}
	e := t.entry(st.RunID)
	if e == nil || st.Index < 0 {
		return store.ErrNotFound
	}
	state, comp := code(stepStates[:], st.State), code(compStates[:], st.Comp)
	if state == 255 || comp == 255 {
		return fmt.Errorf("memory: step %d of run %q: unknown state %q or compensation state %q", st.Index, st.RunID, st.State, st.Comp)
	}
	if st.Index >= len(e.steps) {
		t.growSteps(e, st.Index+1)
	}
	i := st.Index
	sl := &e.steps[i]
	// Logged by index: the slice may be grown later in this transaction.
	if e.grownIn == t.n && i >= e.grownFrom {
		// A slot the growth of this transaction made: the rollback of the
		// growth removes it.
	} else {
		t.logStep(e, i, sl)
	}
	oldDue, oldOK, oldSeq := sl.step.due, sl.ok, sl.dueSeq
	sl.step, sl.ok = compact(&st, state, comp), true
	if !st.DueAt.IsZero() && (oldDue != sl.step.due || !oldOK || oldSeq == 0) {
		t.s.seq++
		sl.dueSeq = t.s.seq
		t.s.steps.push(dueEntry{at: st.DueAt.UnixNano(), seq: sl.dueSeq, run: e, index: st.Index})
	} else if st.DueAt.IsZero() {
		sl.dueSeq = 0
	}
	return nil
}

// growSteps makes room for n steps, logging the old slice once per
// transaction: rolling back to it drops every slot grown since.
func (t *tx) growSteps(e *runEntry, n int) {
	if e.grownIn != t.n {
		e.grownIn, e.grownFrom = t.n, len(e.steps)
		prev := e.steps
		t.log(func() { e.steps = prev; e.grownIn = 0 })
	}
	if n <= cap(e.steps) {
		e.steps = e.steps[:n]
		return
	}
	grown := make([]stepSlot, n, max(n, 2*cap(e.steps)))
	copy(grown, e.steps)
	e.steps = grown
}

func (t *tx) Steps(runID string) ([]store.Step, error) {
	e := t.entry(runID)
	if e == nil {
		return []store.Step{}, nil
	}
	out := make([]store.Step, 0, len(e.steps))
	for i := range e.steps {
		if e.steps[i].ok {
			out = append(out, e.steps[i].step.expand(runID))
		}
	}
	return out, nil
}

// RangeSteps implements store.StepRanger: fn sees the stored steps
// themselves.
func (t *tx) RangeSteps(runID string, fn func(*store.Step) bool) error {
	e := t.entry(runID)
	if e == nil {
		return nil
	}
	st := &t.ranged
	if t.ranging {
		st = new(store.Step)
	} else {
		t.ranging = true
		defer func() { t.ranging = false }()
	}
	for i := range e.steps {
		if e.steps[i].ok {
			*st = e.steps[i].step.expand(runID)
			if !fn(st) {
				return nil
			}
		}
	}
	return nil
}

func (t *tx) CompletedAfter(runID string, seq int64) ([]store.Step, error) {
	e := t.entry(runID)
	if e == nil {
		return []store.Step{}, nil
	}
	out := []store.Step{}
	for i := range e.steps {
		if e.steps[i].ok && e.steps[i].step.seq > seq {
			out = append(out, e.steps[i].step.expand(runID))
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
	h := d.hook
	return e.hooks[h.hook.ID] == h && h.dueSeq == d.seq
}

func (t *tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	var out []store.Step
	if t.write && cap(t.due) <= 1024 {
		out = t.due[:0] // the caller uses it within this transaction
	} else {
		out = make([]store.Step, 0, min(max, t.s.steps.Len()))
	}
	t.popDue(&t.s.steps, now, max, t.s.validStep, func(d dueEntry) {
		sl := &d.run.steps[d.index]
		out = append(out, sl.step.expand(d.run.run.ID))
		if t.write {
			// Popped: the caller's write-back pushes a fresh entry.
			sl.dueSeq = 0
			t.logSeq(d.run, d.index, d.seq)
		}
	})
	if t.write && cap(out) <= 1024 {
		t.due = out
	}
	return out, nil
}

func (t *tx) DueWebhooks(now time.Time, max int) ([]store.Webhook, error) {
	out := []store.Webhook{}
	t.popDue(&t.s.hooks, now, max, t.s.validHook, func(d dueEntry) {
		h := d.hook
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
	nowN := now.UnixNano()
	if !t.write {
		due := []dueEntry{}
		for _, d := range h.all() {
			if d.at <= nowN && valid(d) {
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
		d := h.peek()
		if d.at > nowN {
			break
		}
		h.pop()
		t.logPop(h, d)
		if !valid(d) {
			continue
		}
		emit(d)
		n++
	}
}

func (t *tx) NextDue() (time.Time, error) {
	next := t.first(&t.s.steps, t.s.validStep)
	if at := t.first(&t.s.hooks, t.s.validHook); !at.IsZero() && (next.IsZero() || at.Before(next)) {
		next = at
	}
	return next, nil
}

// first returns the earliest valid due time in h, pruning stale entries from
// the top in a write transaction.
func (t *tx) first(h *dueHeap, valid func(dueEntry) bool) time.Time {
	if t.write {
		for h.Len() > 0 {
			d := h.peek()
			if valid(d) {
				return time.Unix(0, d.at).UTC()
			}
			h.pop()
			t.logPop(h, d)
		}
		return time.Time{}
	}
	var at time.Time
	for _, d := range h.all() {
		if valid(d) && (at.IsZero() || d.at < at.UnixNano()) {
			at = time.Unix(0, d.at).UTC()
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
	pos, found := slices.BinarySearchFunc(sl.attempts, a, cmpAttempt)
	switch {
	case found:
		t.ops = append(t.ops, undoOp{undoAtt, int32(len(t.atts))})
		t.atts = append(t.atts, attUndo{e: e, i: i, pos: pos, old: sl.attempts[pos]})
		sl.attempts[pos] = a
	case pos == len(sl.attempts):
		t.ops = append(t.ops, undoOp{undoAtt, int32(len(t.atts))})
		t.atts = append(t.atts, attUndo{e: e, i: i, n: pos, pos: -1})
		sl.attempts = append(sl.attempts, a)
	default:
		old := sl.attempts
		sl.attempts = slices.Insert(slices.Clip(old), pos, a)
		t.log(func() { e.steps[i].attempts = old })
	}
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
		t.s.hooks.push(dueEntry{at: w.DueAt.UnixNano(), seq: h.dueSeq, run: e, hook: h})
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
	at    int64 // Unix nanoseconds
	seq   uint64
	run   *runEntry
	index int
	hook  *hookSlot
}

func cmpDue(a, b dueEntry) int {
	if c := cmp.Compare(a.at, b.at); c != 0 {
		return c
	}
	return cmp.Compare(a.seq, b.seq)
}

// dueHeap holds due entries by (at, seq). Nearly every entry is due "now",
// and now only grows from one transaction to the next, so entries that come
// in order go to a FIFO queue (O(1) each way); the few that do not (a retry
// due later, a clock that stepped back) go to a binary heap. It is written
// out rather than used through container/heap so that an entry is never
// boxed.
type dueHeap struct {
	fifo []dueEntry // in (at, seq) order, from head
	head int
	heap []dueEntry
}

func (h *dueHeap) Len() int { return len(h.fifo) - h.head + len(h.heap) }

// all yields every entry, in no order.
func (h *dueHeap) all() []dueEntry {
	return append(append([]dueEntry(nil), h.fifo[h.head:]...), h.heap...)
}

// peek returns the earliest entry; Len must not be 0.
func (h *dueHeap) peek() dueEntry {
	switch {
	case h.head == len(h.fifo):
		return h.heap[0]
	case len(h.heap) == 0 || cmpDue(h.fifo[h.head], h.heap[0]) <= 0:
		return h.fifo[h.head]
	}
	return h.heap[0]
}

func (h *dueHeap) push(d dueEntry) {
	if h.head == len(h.fifo) || cmpDue(h.fifo[len(h.fifo)-1], d) <= 0 {
		if h.head > 0 && h.head >= len(h.fifo)/2 {
			// Reclaim the popped half before growing.
			n := copy(h.fifo, h.fifo[h.head:])
			clear(h.fifo[n:])
			h.fifo, h.head = h.fifo[:n], 0
		}
		h.fifo = append(h.fifo, d)
		return
	}
	h.heapPush(d)
}

func (h *dueHeap) pop() dueEntry {
	if h.head < len(h.fifo) && (len(h.heap) == 0 || cmpDue(h.fifo[h.head], h.heap[0]) <= 0) {
		d := h.fifo[h.head]
		h.fifo[h.head] = dueEntry{}
		h.head++
		if h.head == len(h.fifo) {
			h.fifo, h.head = h.fifo[:0], 0
		}
		return d
	}
	return h.heapPop()
}

func (h *dueHeap) heapPush(d dueEntry) {
	h.heap = append(h.heap, d)
	a := h.heap
	for j := len(a) - 1; j > 0; {
		p := (j - 1) / 2
		if cmpDue(a[j], a[p]) >= 0 {
			break
		}
		a[j], a[p] = a[p], a[j]
		j = p
	}
}

func (h *dueHeap) heapPop() dueEntry {
	a := h.heap
	top := a[0]
	last := len(a) - 1
	a[0] = a[last]
	a[last] = dueEntry{}
	a = a[:last]
	for j := 0; ; {
		l := 2*j + 1
		if l >= len(a) {
			break
		}
		m := l
		if r := l + 1; r < len(a) && cmpDue(a[r], a[l]) < 0 {
			m = r
		}
		if cmpDue(a[m], a[j]) >= 0 {
			break
		}
		a[j], a[m] = a[m], a[j]
		j = m
	}
	h.heap = a
	return top
}
