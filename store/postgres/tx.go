package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dagflow/dagflow/store"
)

// tx implements store.Tx on one connection. An Update's tx serves every
// function of a group (see group.go), one after the other; a View's serves
// one function.
//
// It saves round trips in three ways.
//
//   - BEGIN is not sent on its own but with the first statement, and writes
//     are queued and sent, in one pipelined batch, with the next read that
//     could see them or with COMMIT: reading another run's row does not
//     send them, so the writes of a group's functions on different runs go
//     together with COMMIT. A transaction costs at most one round trip per
//     read plus one.
//   - An Update remembers the runs, steps and items it holds locked (read
//     with FOR NO KEY UPDATE, or written) as they now are, and answers Run
//     and Step from that memory: no other transaction can change a row this
//     one holds. The functions of a group that finish steps of one run read
//     the run and its fan-in step once.
//   - A write is queued only when it cannot fail for want of the run it
//     belongs to: the transaction holds that run's row, or a row of one of
//     its records, so nobody can delete the run. Otherwise the write first
//     checks (and locks) the run in a round trip of its own, so that it can
//     return store.ErrNotFound itself.
//
// Every statement is tagged with the function of the group that caused it,
// so that a statement PostgreSQL refuses is blamed on its function. Once a
// statement has failed, the PostgreSQL transaction is aborted: err keeps the
// failure and every later call returns it.
type tx struct {
	s *Store
	// ctx is the context of the statements: a View's, or the group's; a
	// tx lives only while the functions run, and store.Tx methods take no
	// context.
	ctx   context.Context
	conn  *pgx.Conn
	mode  int // modeView or modeUpdate
	begun bool
	queue []queued
	err   error
	// errOwner is the function whose statement failed with err, or -1.
	errOwner int
	// last is set when err came from the last statement of a batch (or
	// after it): for COMMIT, the server may have run it.
	last bool
	// xid is the transaction's id (an Update's, read with its BEGIN), so
	// that the outcome of a COMMIT whose answer was lost can be looked up.
	xid int64

	// owner is the function of the group that runs now (its index), or
	// -1 for the store's own statements. mark is the length of the queue
	// when it began, dirty is set once a statement of its was sent, and
	// undo holds how to take back what its queued writes did to the
	// memory below: a function that fails before any of its writes reached
	// the server is taken back here, without touching the others.
	owner int
	mark  int
	dirty bool
	undo  []func()
	// extra is how many functions of the group are still to run: DueSteps
	// takes that many more due records than it is asked for (see
	// DueSteps).
	extra int

	// exists holds the runs that exist for the rest of the transaction
	// (true), and those an Update read as absent (false): a PutRun of an
	// absent run inserts it and fails, to be run again, when another
	// transaction created it in the meantime. slots does the same for the
	// concurrency slots of a key.
	exists map[string]bool
	slots  map[string]bool
	// runs and steps are the rows this Update holds, as they now are;
	// due is the set of steps among them that are due at some time and
	// that the Update read with DueSteps or wrote.
	runs  map[string]store.Run
	steps map[stepKey]store.Step
	due   map[stepKey]bool
	// lockingRun is the run whose row (or a record of which) the
	// statement under way may wait for.
	lockingRun string
	// claims records, for the store's claimed set, the steps this Update
	// wrote: true when written running (claimed by this process), false
	// otherwise; deleted the runs it deleted.
	claims  map[stepKey]bool
	deleted []string
	// queued maps the rows written whole by the queued writes to their
	// place in the queue.
	queued map[rowKey]int
	// noBulk sends the queued writes one statement per row (bulk.go).
	noBulk bool
	// fetched holds the runs whose steps in the claimed set were read.
	fetched map[string]bool
	// maxRun is the greatest id of the runs whose rows this Update holds
	// (or held, before a function was taken back).
	maxRun string
	// misses counts, by run (and by step of a run, for items), the steps
	// read one by one that the memory did not hold: past a few, Step reads
	// them all at once.
	misses map[stepKey]int
	// keep tells send to leave the queued writes queued: the statements
	// it sends read no row they write (see Run).
	keep bool
	// scanned is set once DueSteps has read steps by due time, with
	// locks (see DueSteps).
	scanned bool
	// hints holds, by run, the steps that the group's Updates said they
	// will read (store.ForRun): the first read of the run reads them too.
	hints map[string][]int
	// dueKeys is dueHeld's scratch space.
	dueKeys []dueKey

	// The row cache (cache.go): noCache keeps this transaction from
	// reading it; checkRuns and checkSteps are the reads answered from it
	// that the next batch checks; checkedXmin holds the rows of the checks
	// sent, with the xmin each was checked for; wroteRuns the runs this
	// Update wrote whole (the steps it wrote are the keys of claims).
	noCache     bool
	checkRuns   []checkRun
	checkSteps  []checkStep
	checkedXmin map[rowKey]uint32
	wroteRuns   map[string]bool
}

// bulkAfter is how many steps of one run (or items of one step) an Update
// reads one by one before Step reads the rest of them with the next: a
// step that completes reads each of its dependents, and a fan-out's root
// has thousands.
const bulkAfter = 3

// bulkShare: Step reads all the steps of a run (or items of a step) once the
// ones read one by one are a bulkShare-th of them. A row of a bulk read
// costs about a fortieth of a round trip here; a run of 10,000 steps whose
// completions each read two or three dependents must not be read whole for
// every group of them, while a fan-out's root, with thousands of
// dependents, is.
const bulkShare = 40

// smallRun is the most steps a run may have for Run, in an Update, to read
// them with it.
const smallRun = 16

// worthAll reports whether the n-th step (or item) of a run read one by one
// makes reading all of them cheaper than going on one by one: when the
// transaction does not know how many there are, or n is a bulkShare-th of
// them.
func (t *tx) worthAll(runID string, index, item, n int) bool {
	total := -1
	if item > 0 {
		if st, ok := t.steps[stepKey{runID, index, 0}]; ok {
			total = st.Items
		}
	} else if r, ok := t.runs[runID]; ok {
		total = r.Total
	}
	return total < 0 || n*bulkShare >= total
}

type queued struct {
	sql   string
	args  []any
	what  string
	row   rowKey // for a write of a whole run or step, what is ""
	owner int
}

// describe says what w writes, for an error.
func (w *queued) describe() string {
	switch {
	case w.what != "":
		return w.what
	case w.row.table == 'r':
		return fmt.Sprintf("writing run %q", w.row.step.run)
	}
	k := w.row.step
	return fmt.Sprintf("writing step %d item %d of run %q", k.index, k.item, k.run)
}

// rowKey names the row a queued write replaces whole (a run, a step or
// item), so that a later write of it replaces the queued one.
type rowKey struct {
	table byte // 'r' or 's'
	step  stepKey
}

type stepKey struct {
	run         string
	index, item int
}

// errLockOrder is the error of a read that would wait for a run's row
// while the transaction holds the row of a run with a greater id: two
// transactions doing that each way round deadlock. The group runs again at
// once, first locking, in order, the runs it held and this one.
var errLockOrder = errors.New("a run's row is held by another transaction, and waiting for it here could deadlock")

// connLostError marks an error after which the transaction's connection is
// gone.
type connLostError struct{ err error }

func (e *connLostError) Error() string { return e.err.Error() }
func (e *connLostError) Unwrap() error { return e.err }

func newTx(s *Store, ctx context.Context, conn *pgx.Conn, mode int) *tx {
	t := &tx{s: s, ctx: ctx, conn: conn, mode: mode, errOwner: -1, owner: -1}
	if mode == modeUpdate {
		t.exists, t.slots = map[string]bool{}, map[string]bool{}
		t.runs, t.steps, t.due = map[string]store.Run{}, map[stepKey]store.Step{}, map[stepKey]bool{}
		t.claims, t.misses, t.queued = map[stepKey]bool{}, map[stepKey]int{}, map[rowKey]int{}
		t.fetched, t.wroteRuns = map[string]bool{}, map[string]bool{}
	}
	return t
}

func (t *tx) fail(what string, err error, owner int) error {
	if t.err == nil {
		t.err, t.errOwner = err, owner
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// start makes function i of the group the one that runs now.
func (t *tx) start(i, extra int) {
	t.owner, t.mark, t.dirty, t.undo, t.extra = i, len(t.queue), false, t.undo[:0], extra
}

// discard takes back what the function running now did, when none of its
// statements reached the server: its queued writes are dropped and the
// memory is as it was before it ran. It reports false when it cannot.
func (t *tx) discard() bool {
	if t.dirty || t.err != nil {
		return false
	}
	for k, i := range t.queued {
		if i >= t.mark {
			delete(t.queued, k)
		}
	}
	clear(t.queue[t.mark:])
	t.queue = t.queue[:t.mark]
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	t.undo = t.undo[:0]
	return true
}

// logUndo records how to take back a change to the memory.
func (t *tx) logUndo(f func()) {
	if t.owner >= 0 {
		t.undo = append(t.undo, f)
	}
}

// stmt is a statement that send sends after the queued writes: a read
// (read is called with its rows), or a write whose outcome the caller
// needs (tag receives its command tag).
type stmt struct {
	sql  string
	args []any
	read func(pgx.Rows) error
	tag  *pgconn.CommandTag
	// after, when set, runs once the batch succeeded.
	after func()
}

// send sends the queued writes and then stmts in one batch, beginning the
// transaction first if it has not begun.
func (t *tx) send(what string, stmts ...stmt) error {
	if t.err != nil {
		return fmt.Errorf("postgres: %s: the transaction failed earlier: %w", what, t.err)
	}
	var b pgx.Batch
	begin := !t.begun
	readXID := begin && t.mode == modeUpdate
	if begin {
		b.Queue(t.s.q.begin[t.mode])
		if readXID {
			b.Queue(t.s.q.xid)
		}
	}
	// The reads answered from the cache are checked before anything that
	// may rely on them.
	checks := t.checks()
	for _, c := range checks {
		b.Queue(c.sql, c.args...)
	}
	// The queued writes go first, unless the statements cannot see them
	// (keep): then they wait for a later batch, and the writes of a group's
	// functions reach the server together, as bulk statements, with COMMIT.
	keep := t.keep
	t.keep = false
	var sent, queue []queued
	if !keep {
		for _, w := range t.queue {
			if w.owner == t.owner && t.owner >= 0 {
				t.dirty = true
			}
		}
		sent = t.bulk(t.queue)
		queue = t.queue
		t.queue = t.queue[:0]
		t.mark = 0
		clear(t.queued)
	}
	for _, w := range sent {
		b.Queue(w.sql, w.args...)
	}
	for _, st := range stmts {
		b.Queue(st.sql, st.args...)
	}
	t.begun = true

	if t.s.commitHook != nil && len(stmts) > 0 && stmts[len(stmts)-1].sql == "COMMIT" {
		t.s.commitHook(t) // tests: lose the batch, or its answer
	}
	br := t.conn.SendBatch(t.ctx, &b)
	last := false
	owner := -1
	err := func() error {
		if begin {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("beginning a transaction: %w", err)
			}
		}
		if readXID {
			if err := br.QueryRow().Scan(&t.xid); err != nil {
				return fmt.Errorf("reading the transaction's id: %w", err)
			}
		}
		for range checks {
			if _, err := br.Exec(); err != nil {
				if isStale(err) {
					owner = staleOwner
				}
				return fmt.Errorf("checking the rows read from the cache: %w", err)
			}
		}
		for _, w := range sent {
			owner = w.owner
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("%s: %w", w.describe(), err)
			}
		}
		owner = t.owner
		for i, st := range stmts {
			last = i == len(stmts)-1
			if st.read == nil {
				tag, err := br.Exec()
				if st.tag != nil {
					*st.tag = tag
				}
				if err != nil {
					return err
				}
				continue
			}
			if err := readRows(br, st.read); err != nil {
				return err
			}
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	clear(queue)
	if err != nil {
		if t.conn.IsClosed() {
			err = &connLostError{err}
		}
		if t.err == nil {
			t.last = last
		}
		return t.fail(what, err, owner)
	}
	for _, st := range stmts {
		if st.after != nil {
			st.after()
		}
	}
	return nil
}

func readRows(br pgx.BatchResults, read func(pgx.Rows) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := read(rows); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// eachRow makes a read function that calls row for each row.
func eachRow(row func(pgx.Rows) error) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return nil
	}
}

// get runs a read that returns rows; each row goes to row.
func (t *tx) get(what, sql string, args []any, row func(pgx.Rows) error) error {
	return t.send(what, stmt{sql: sql, args: args, read: eachRow(row)})
}

// exec runs a write at once (one whose outcome the caller needs).
func (t *tx) exec(what, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.owner >= 0 {
		t.dirty = true
	}
	var tag pgconn.CommandTag
	err := t.send(what, stmt{sql: sql, args: args, tag: &tag})
	return tag, err
}

// put queues a write.
func (t *tx) put(what, sql string, args ...any) {
	t.queue = append(t.queue, queued{sql: sql, args: args, what: what, owner: t.owner})
}

// putRow queues a write that replaces row k whole. When a write of the
// same row is queued already, it takes that one's place: the functions of
// a group that finish steps of one run write its record, and its fan-in
// step, once per COMMIT rather than once each. (The queued write keeps its
// statement, an INSERT of a run read as absent say, and its place, ahead of
// the writes of records that need the row.)
func (t *tx) putRow(k rowKey, sql string, args ...any) {
	if i, ok := t.queued[k]; ok && t.mode == modeUpdate {
		old := t.queue[i]
		t.queue[i].args, t.queue[i].owner = args, t.owner
		if i < t.mark {
			t.logUndo(func() { t.queue[i] = old })
		}
		return
	}
	if t.mode == modeUpdate {
		t.queued[k] = len(t.queue)
	}
	t.queue = append(t.queue, queued{sql: sql, args: args, row: k, owner: t.owner})
}

// writable returns why the transaction cannot take a write, if it cannot.
func (t *tx) writable() error {
	if t.mode != modeUpdate {
		return store.ErrReadOnly
	}
	if t.err != nil {
		return fmt.Errorf("postgres: the transaction failed earlier: %w", t.err)
	}
	return nil
}

// commit sends the queued writes and COMMIT. It reports whether COMMIT may
// have reached the server (then a lost connection leaves the outcome
// unknown, and xid says which transaction to look up).
func (t *tx) commit() (sent bool, err error) {
	if !t.begun && len(t.queue) == 0 && len(t.checkRuns)+len(t.checkSteps) == 0 {
		return false, nil // nothing read, nothing written
	}
	t.owner = -1
	var tag pgconn.CommandTag
	err = t.send("committing", stmt{sql: "COMMIT", tag: &tag})
	if err != nil {
		// The server answers in order. An ERROR it reports means that
		// the statement failed and that it skipped the rest of the batch,
		// COMMIT included; a FATAL one before COMMIT's answer means that
		// it stopped before COMMIT. Anything else (the connection broke,
		// or the server stopped while answering COMMIT) leaves it unknown.
		var pe *pgconn.PgError
		var pre pgx.ErrPreprocessingBatch
		switch {
		case pgconn.SafeToRetry(err), errors.As(err, &pre):
			// Nothing was sent (preparing a statement before the batch is
			// sent failed, say).
			return false, err
		case errors.As(err, &pe) && (pe.Severity == "ERROR" || !t.last):
			return false, err
		}
		return true, err
	}
	if tag.String() != "COMMIT" {
		return true, fmt.Errorf("postgres: committing: the server answered %q", tag.String())
	}
	return true, nil
}

// end finishes a transaction that is not committed: it rolls back what the
// server holds. A connection it cannot roll back is closed, and the pool
// drops it.
func (t *tx) end() {
	if t.conn.IsClosed() || t.conn.PgConn().TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), 5*time.Second)
	defer cancel()
	if _, err := t.conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.conn.Close(ctx)
	}
}

// The memory of an Update. Each setter records how to undo itself.

// setExists records whether run id exists; write says that a write of the
// function running now made it so (a read's findings need no undo: see
// discard).
func (t *tx) setExists(id string, v, write bool) {
	if t.mode != modeUpdate {
		return
	}
	old, had := t.exists[id]
	if had && old == v {
		return
	}
	t.exists[id] = v
	if write {
		t.logUndo(func() {
			if had {
				t.exists[id] = old
			} else {
				delete(t.exists, id)
			}
		})
	}
}

// setRun remembers a run this Update holds, read or written (write).
func (t *tx) setRun(r store.Run, write bool) {
	if t.mode != modeUpdate {
		return
	}
	t.maxRun = max(t.maxRun, r.ID)
	old, had := t.runs[r.ID]
	t.runs[r.ID] = r
	if write {
		t.logUndo(func() {
			if had {
				t.runs[r.ID] = old
			} else {
				delete(t.runs, r.ID)
			}
		})
	}
	t.setExists(r.ID, true, write)
}

// setStep remembers a step this Update holds, read or written (write);
// reserve adds it to the due set when it is due at some time (it was read
// by DueSteps, or written).
//
// Only writes record how to undo them. A read that reached the server
// either found rows that no queued write of the function running now had
// touched, which stay true when discard drops that function, or sent such
// writes, after which discard does nothing.
func (t *tx) setStep(st store.Step, reserve, write bool) {
	if t.mode != modeUpdate {
		return
	}
	k := stepKey{st.RunID, st.Index, st.Item}
	old, had := t.steps[k]
	wasDue := t.due[k]
	t.steps[k] = st
	switch {
	case st.DueAt.IsZero():
		delete(t.due, k)
	case reserve:
		t.due[k] = true
	}
	if write {
		t.logUndo(func() {
			if had {
				t.steps[k] = old
			} else {
				delete(t.steps, k)
			}
			if wasDue {
				t.due[k] = true
			} else {
				delete(t.due, k)
			}
		})
	}
	t.setExists(st.RunID, true, write)
}

// forgetRun drops a deleted run from the memory (DeleteRun is sent at once,
// so a function that deletes a run is never taken back by discard).
func (t *tx) forgetRun(id string) {
	delete(t.exists, id)
	delete(t.runs, id)
	for k := range t.steps {
		if k.run == id {
			delete(t.steps, k)
			delete(t.due, k)
		}
	}
}

// needRun makes sure that run id exists and stays so until the end of the
// transaction, reading it when the transaction does not know.
func (t *tx) needRun(id string) error {
	if t.exists[id] {
		return nil
	}
	found := false
	t.lockingRun = id
	err := t.get(fmt.Sprintf("checking run %q", id), t.s.q.lockRun, []any{id}, func(pgx.Rows) error { found = true; return nil })
	if err != nil {
		return err
	}
	if !found {
		return store.ErrNotFound
	}
	t.setExists(id, true, false)
	return nil
}

// held returns the runs this Update holds or waited for, sorted: the rows
// to lock first, in this order, when it runs again after a lock timeout.
func (t *tx) held() []string {
	var ids []string
	for id, ok := range t.exists {
		if ok {
			ids = append(ids, id)
		}
	}
	if t.lockingRun != "" && !t.exists[t.lockingRun] {
		ids = append(ids, t.lockingRun)
	}
	slices.Sort(ids)
	return ids
}

// lockRuns locks runs in the order of their ids and remembers them: the
// first statement of a group that runs again after a lock timeout.
func (t *tx) lockRuns(ids []string) error {
	return t.send("locking runs", t.lockRunsStmt(ids))
}

// lockRunsStmt locks runs in the order of their ids and remembers them.
func (t *tx) lockRunsStmt(ids []string) stmt {
	return stmt{sql: t.s.q.lockRuns, args: []any{ids}, read: eachRow(func(rows pgx.Rows) error {
		r, err := scanRun(rows)
		if err != nil {
			return err
		}
		t.setRun(r, false)
		return nil
	})}
}

// smallSteps reads and locks the steps of run id if it has at most
// smallRun of them, skipping those another transaction holds, and
// remembers those the transaction does not hold yet.
func (t *tx) smallSteps(id string) stmt {
	return stmt{sql: t.s.q.smallSteps, args: []any{id, smallRun}, read: eachRow(func(rows pgx.Rows) error {
		st, err := scanStep(rows)
		if err != nil {
			return err
		}
		if _, ok := t.steps[stepKey{st.RunID, st.Index, st.Item}]; !ok {
			t.setStep(st, false, false)
		}
		return nil
	})}
}

// claimedOf returns a read of the steps of run id in the store's claimed set
// (group.go), and, with named, of those the group's Updates name
// (store.ForRun), that this Update has not read yet, or nil. The read locks
// them and remembers them; the claimed ones not found running leave the
// set. Only a read that follows the run's row in its batch may lock the
// named steps: a fan-in step is named by the Updates of every process, and
// a transaction that held it without its run could wait for the run while
// the run's holder waits for it.
func (t *tx) claimedOf(id string, named bool) *stmt {
	return t.claimedOfRuns([]string{id}, named)
}

// claimedOfRuns is claimedOf for several runs at once, in one statement.
func (t *tx) claimedOfRuns(ids []string, named bool) *stmt {
	if t.mode != modeUpdate {
		return nil
	}
	var claimed, keys []stepKey
	for _, id := range ids {
		if t.fetched[id] {
			continue
		}
		c := t.s.claimedOf(id)
		n := len(keys)
		keys = append(keys, c...)
		if named {
			for _, i := range t.hints[id] {
				if _, held := t.steps[stepKey{id, i, 0}]; !held {
					keys = append(keys, stepKey{id, i, 0})
				}
			}
		}
		if len(keys) > n {
			t.fetched[id] = true
			claimed = append(claimed, c...)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	slices.SortFunc(keys, compareKeys)
	keys = slices.Compact(keys)
	runs, idx, items := make([]string, len(keys)), make([]int, len(keys)), make([]int, len(keys))
	for i, k := range keys {
		runs[i], idx[i], items[i] = k.run, k.index, k.item
	}
	found := map[stepKey]bool{}
	return &stmt{sql: t.s.q.lockSteps, args: []any{runs, idx, items}, read: eachRow(func(rows pgx.Rows) error {
		st, err := scanStep(rows)
		if err != nil {
			return err
		}
		k := stepKey{st.RunID, st.Index, st.Item}
		if _, ok := t.steps[k]; !ok {
			t.setStep(st, false, false)
		}
		if st.State == store.StepRunning || st.Comp == store.CompRunning {
			found[k] = true
		}
		return nil
	}), after: func() {
		var gone []stepKey
		for _, k := range claimed {
			if !found[k] {
				gone = append(gone, k) // ended, or taken over, since
			}
		}
		t.s.unclaim(gone)
	}}
}

// readAhead locks the runs that the group's Updates name (store.ForRun),
// in the order of their ids, and reads with them, in one round trip, their
// steps that the claimed set and the Updates name, or, for a run with none,
// its steps when it is small: the group's functions then find what they
// read first in memory, instead of each reading its run in a round trip of
// its own, one after the other.
func (t *tx) readAhead(ids []string) error {
	stmts := []stmt{t.lockRunsStmt(ids)}
	if c := t.claimedOfRuns(ids, true); c != nil {
		stmts = append(stmts, *c)
	}
	for _, id := range ids {
		if !t.fetched[id] {
			stmts = append(stmts, t.smallSteps(id))
		}
	}
	return t.send("reading the group's runs", stmts...)
}

// writesRun reports whether a queued write writes a row of run id.
func (t *tx) writesRun(id string) bool {
	for k := range t.queued {
		if k.step.run == id {
			return true
		}
	}
	return false // the other writes (attempts, specs, webhooks...) are of other tables
}

func (t *tx) Run(id string) (store.Run, error) {
	if t.err != nil {
		return store.Run{}, fmt.Errorf("postgres: reading run %q: the transaction failed earlier: %w", id, t.err)
	}
	if r, ok := t.runs[id]; ok {
		return r, nil
	}
	if r, ok := t.fromCache(id); ok {
		return r, nil
	}
	var r store.Run
	found, locked := false, true
	t.lockingRun = id
	stmts := []stmt{{sql: t.s.q.run[t.mode], args: []any{id}, read: eachRow(func(rows pgx.Rows) (err error) {
		r, err = scanRun(rows)
		found = err == nil
		return err
	})}}
	if t.mode == modeUpdate && (t.maxRun > id || t.scanned) {
		// Rows are waited for in the order of their runs' ids: holding a
		// greater one (or, after DueSteps, rows of any), take this one
		// only if it is free.
		stmts[0] = stmt{sql: t.s.q.tryRun, args: []any{id}, read: eachRow(func(rows pgx.Rows) error {
			var x runScan
			if err := rows.Scan(append(x.dests(), &locked)...); err != nil {
				return fmt.Errorf("decoding a run: %w", err)
			}
			var err error
			r, err = x.run()
			found = err == nil
			return err
		})}
	}
	c := t.claimedOf(id, true)
	if c != nil {
		stmts = append(stmts, *c) // after the run: runs are locked before their steps
	}
	if t.mode == modeUpdate && c == nil {
		// A small run's steps come with it, unless the steps to read are
		// known (claimed here, or named): a function that reads a run
		// reads some of its steps next, and this saves that round trip.
		// Rows another transaction holds are skipped (and read, waiting
		// for them, if they are asked for).
		stmts = append(stmts, t.smallSteps(id))
	}
	// The run's rows are not among those the queued writes write (those
	// this transaction holds, and answers from memory): the writes can
	// wait for COMMIT.
	t.keep = t.mode == modeUpdate && !t.writesRun(id)
	if err := t.send(fmt.Sprintf("reading run %q", id), stmts...); err != nil {
		return store.Run{}, err
	}
	if found && !locked {
		return store.Run{}, t.fail(fmt.Sprintf("reading run %q", id), errLockOrder, t.owner)
	}
	if !found {
		if t.mode == modeUpdate {
			if _, ok := t.exists[id]; !ok {
				t.setExists(id, false, false)
			}
		}
		return store.Run{}, store.ErrNotFound
	}
	t.setRun(r, false)
	return r, nil
}

func (t *tx) PutRun(r store.Run) error {
	if err := t.writable(); err != nil {
		return err
	}
	sql := t.s.q.putRun
	if known, ok := t.exists[r.ID]; ok && !known {
		// Read as absent: insert, and fail (to run again) if another
		// transaction created the run since.
		sql = t.s.q.insertRun
	}
	t.putRow(rowKey{table: 'r', step: stepKey{run: r.ID}}, sql, runArgs(&r)...)
	t.setRun(r, true)
	if !t.wroteRuns[r.ID] {
		t.wroteRuns[r.ID] = true
		t.logUndo(func() { delete(t.wroteRuns, r.ID) })
	}
	return nil
}

func (t *tx) Runs(q store.RunQuery) ([]store.Run, error) {
	flags := 0
	var args []any
	if q.State != "" {
		flags |= runsState
		args = append(args, string(q.State))
	}
	if q.IDContains != "" {
		flags |= runsContains
		args = append(args, q.IDContains)
	}
	if q.Parent != "" {
		flags |= runsParent
		args = append(args, q.Parent)
	}
	if !q.EndedBefore.IsZero() {
		flags |= runsEnded
		args = append(args, q.EndedBefore)
	}
	if q.Before != nil {
		flags |= runsBefore
		args = append(args, q.Before.CreatedAt, q.Before.ID)
	}
	if q.Limit > 0 {
		flags |= runsLimit
		args = append(args, q.Limit)
	}
	out := []store.Run{}
	err := t.get("listing runs", t.s.q.runs[t.mode][flags], args, func(rows pgx.Rows) error {
		r, err := scanRun(rows)
		if err != nil {
			return err
		}
		out = append(out, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, r := range out {
		t.setRun(r, false)
	}
	return out, nil
}

func (t *tx) DeleteRun(id string) error {
	if err := t.writable(); err != nil {
		return err
	}
	tag, err := t.exec(fmt.Sprintf("deleting run %q", id), t.s.q.deleteRun, id)
	if err != nil {
		return err
	}
	t.forgetRun(id)
	t.deleted = append(t.deleted, id)
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *tx) Spec(runID string) (json.RawMessage, error) {
	var spec []byte
	err := t.get(fmt.Sprintf("reading the spec of run %q", runID), t.s.q.spec[t.mode], []any{runID}, func(rows pgx.Rows) error {
		return rows.Scan(&spec)
	})
	if err != nil {
		return nil, err
	}
	if len(spec) == 0 {
		return nil, store.ErrNotFound
	}
	return spec, nil
}

func (t *tx) PutSpec(runID string, spec json.RawMessage) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := t.needRun(runID); err != nil {
		return err
	}
	t.put(fmt.Sprintf("writing the spec of run %q", runID), t.s.q.putSpec, runID, js(spec))
	return nil
}

func (t *tx) Step(runID string, index, item int) (store.Step, error) {
	if t.err != nil {
		return store.Step{}, fmt.Errorf("postgres: reading step %d item %d of run %q: the transaction failed earlier: %w", index, item, runID, t.err)
	}
	if st, ok := t.steps[stepKey{runID, index, item}]; ok {
		return st, nil
	}
	if st, ok := t.stepFromCache(stepKey{runID, index, item}); ok {
		return st, nil
	}
	if t.mode == modeUpdate && !t.fetched[runID] && t.s.isClaimed(stepKey{runID, index, item}) {
		// One of the steps this process claimed: read them all.
		if err := t.send(fmt.Sprintf("reading the steps of run %q claimed here", runID), *t.claimedOf(runID, false)); err != nil {
			return store.Step{}, err
		}
		if st, ok := t.steps[stepKey{runID, index, item}]; ok {
			return st, nil
		}
	}
	if t.mode == modeUpdate {
		// Many steps of one run read one by one: read them all, and
		// hold them, in one round trip.
		mk := stepKey{run: runID}
		if item > 0 {
			mk.index, mk.item = index, 1
		}
		if t.misses[mk]++; t.misses[mk] > bulkAfter && t.worthAll(runID, index, item, t.misses[mk]) {
			var err error
			if item > 0 {
				_, err = t.Items(runID, index)
			} else {
				_, err = t.Steps(runID)
			}
			if err != nil {
				return store.Step{}, err
			}
			if st, ok := t.steps[stepKey{runID, index, item}]; ok {
				return st, nil
			}
			return store.Step{}, store.ErrNotFound
		}
	}
	var st store.Step
	found := false
	t.lockingRun = runID
	// The row is not one the queued writes write (this transaction would
	// hold it): they can wait for COMMIT, unless they delete its run.
	t.keep = t.mode == modeUpdate && !slices.Contains(t.deleted, runID)
	err := t.get(fmt.Sprintf("reading step %d item %d of run %q", index, item, runID), t.s.q.step[t.mode], []any{runID, index, item}, func(rows pgx.Rows) (err error) {
		st, err = scanStep(rows)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Step{}, err
	}
	if !found {
		return store.Step{}, store.ErrNotFound
	}
	t.setStep(st, false, false)
	return st, nil
}

func (t *tx) PutStep(st store.Step) error {
	if err := t.writable(); err != nil {
		return err
	}
	if st.Index < 0 || st.Item < 0 {
		return store.ErrNotFound
	}
	if err := t.needRun(st.RunID); err != nil {
		return err
	}
	t.putRow(rowKey{table: 's', step: stepKey{st.RunID, st.Index, st.Item}}, t.s.q.putStep, stepArgs(&st)...)
	t.setStep(st, true, true)
	k := stepKey{st.RunID, st.Index, st.Item}
	old, had := t.claims[k]
	t.claims[k] = st.State == store.StepRunning || st.Comp == store.CompRunning
	t.logUndo(func() {
		if had {
			t.claims[k] = old
		} else {
			delete(t.claims, k)
		}
	})
	return nil
}

// readSteps runs a read of steps, which an Update then holds; reserve puts
// them in its due set.
func (t *tx) readSteps(what, sql string, reserve bool, args ...any) ([]store.Step, error) {
	out := []store.Step{}
	err := t.get(what, sql, args, func(rows pgx.Rows) error {
		st, err := scanStep(rows)
		if err != nil {
			return err
		}
		out = append(out, st)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		t.setStep(out[i], reserve, false)
	}
	return out, nil
}

func (t *tx) Steps(runID string) ([]store.Step, error) {
	t.lockingRun = runID
	return t.readSteps(fmt.Sprintf("reading the steps of run %q", runID), t.s.q.steps[t.mode], false, runID)
}

func (t *tx) Items(runID string, index int) ([]store.Step, error) {
	t.lockingRun = runID
	return t.readSteps(fmt.Sprintf("reading the items of step %d of run %q", index, runID), t.s.q.items[t.mode], false, runID, index)
}

// DueSteps in an Update takes, besides the max records it returns, one more
// for each function of the group still to run (each of which is likely to
// ask for one: a worker's outcome claims the next step), and keeps them
// locked in its due set. A later call answers from that set, without a
// round trip, when it holds enough records due at now: they are locked by
// this transaction, so they are as the set says. It misses records that
// other transactions made due since the set was read; the next transaction
// finds them.
func (t *tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	if max <= 0 {
		return []store.Step{}, t.err
	}
	if t.mode == modeUpdate && t.err == nil && len(t.due) >= max {
		if out := t.dueHeld(now, max); out != nil {
			return out, nil
		}
	}
	limit := max
	if t.mode == modeUpdate {
		limit += t.extra
	}
	var out []store.Step
	var err error
	if t.mode == modeUpdate && t.maxRun != "" {
		// Holding runs, take only steps whose runs are free too, and
		// lock those: the claim then waits for no run (see Run).
		out, err = t.dueWithRuns(now, limit)
	} else {
		out, err = t.readSteps("reading due steps", t.s.q.dueSteps[t.mode], true, now, limit)
	}
	// The transaction may now hold rows it does not know of: a row that
	// another transaction changed since is locked before PostgreSQL finds
	// it no longer due, and it stays locked. Whoever holds that row's run
	// may be waiting for it: this transaction waits for no run's row from
	// now on (see Run).
	t.scanned = t.scanned || t.mode == modeUpdate
	if err != nil {
		return nil, err
	}
	if len(out) > max {
		out = out[:max]
	}
	return out, nil
}

// dueWithRuns reads up to limit due steps with their runs, both locked,
// skipping those of which either is held by another transaction.
func (t *tx) dueWithRuns(now time.Time, limit int) ([]store.Step, error) {
	out := []store.Step{}
	var runs []store.Run
	err := t.get("reading due steps", t.s.q.dueStepsRuns, []any{now, limit}, func(rows pgx.Rows) error {
		var xs stepScan
		var xr runScan
		if err := rows.Scan(append(xs.dests(), xr.dests()...)...); err != nil {
			return fmt.Errorf("decoding a step and its run: %w", err)
		}
		r, err := xr.run()
		if err != nil {
			return err
		}
		out, runs = append(out, xs.step()), append(runs, r)
		return nil
	})
	if err != nil {
		return nil, err
	}
	for i := range out {
		if _, ok := t.runs[runs[i].ID]; !ok {
			t.setRun(runs[i], false)
		}
		if _, ok := t.steps[stepKey{out[i].RunID, out[i].Index, out[i].Item}]; !ok {
			t.setStep(out[i], true, false)
		} else {
			t.due[stepKey{out[i].RunID, out[i].Index, out[i].Item}] = true
		}
	}
	return out, nil
}

// dueHeld returns the max earliest records of the due set that are due at
// now, or nil when it holds fewer. A group's functions each call it (a
// worker's outcome claims the next step), so it works on the keys and due
// times, in a slice the transaction keeps, and copies out only the records
// it returns.
func (t *tx) dueHeld(now time.Time, max int) []store.Step {
	c := t.dueKeys[:0]
	for k := range t.due {
		if due := t.steps[k].DueAt; !due.After(now) {
			c = append(c, dueKey{due, k})
		}
	}
	t.dueKeys = c
	if len(c) < max {
		return nil
	}
	less := func(a, b *dueKey) int {
		return cmp.Or(a.due.Compare(b.due), strings.Compare(a.k.run, b.k.run), cmp.Compare(a.k.index, b.k.index), cmp.Compare(a.k.item, b.k.item))
	}
	if max > 4 {
		slices.SortFunc(c, func(a, b dueKey) int { return less(&a, &b) })
	} else {
		// A worker asks for one or a few: pick the earliest, without
		// sorting them all.
		for i := range max {
			m := i
			for j := i + 1; j < len(c); j++ {
				if less(&c[j], &c[m]) < 0 {
					m = j
				}
			}
			c[i], c[m] = c[m], c[i]
		}
	}
	out := make([]store.Step, max)
	for i := range out {
		out[i] = t.steps[c[i].k]
	}
	return out
}

// dueKey is a record of the due set and when it is due.
type dueKey struct {
	due time.Time
	k   stepKey
}

func (t *tx) NextDue() (time.Time, error) {
	var next pgtype.Timestamptz
	err := t.get("reading the next due time", t.s.q.nextDue, nil, func(rows pgx.Rows) error { return rows.Scan(&next) })
	if err != nil {
		return time.Time{}, err
	}
	return tm(next), nil
}

func (t *tx) Waiting(event, key string) ([]store.Step, error) {
	return t.readSteps(fmt.Sprintf("reading the steps waiting for event %q key %q", event, key), t.s.q.waiting[t.mode], false, event, key)
}

func (t *tx) PutAttempt(a store.Attempt) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := t.needRun(a.RunID); err != nil {
		return err
	}
	args, err := attemptArgs(&a)
	if err != nil {
		return err
	}
	t.put(fmt.Sprintf("writing attempt %d of step %d item %d of run %q", a.Number, a.Index, a.Item, a.RunID), t.s.q.putAttempt, args...)
	return nil
}

func (t *tx) Attempts(runID string, index int) ([]store.Attempt, error) {
	sql, args := t.s.q.attempts[t.mode], []any{runID}
	if index >= 0 {
		sql, args = t.s.q.stepAttempts[t.mode], []any{runID, index}
	}
	out := []store.Attempt{}
	err := t.get(fmt.Sprintf("reading the attempts of run %q", runID), sql, args, func(rows pgx.Rows) error {
		a, err := scanAttempt(rows)
		if err != nil {
			return err
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *tx) PutWebhook(w store.Webhook) error {
	if err := t.writable(); err != nil {
		return err
	}
	if err := t.needRun(w.RunID); err != nil {
		return err
	}
	t.put(fmt.Sprintf("writing webhook %q of run %q", w.ID, w.RunID), t.s.q.putHook, hookArgs(&w)...)
	return nil
}

func (t *tx) readHooks(what, sql string, args ...any) ([]store.Webhook, error) {
	out := []store.Webhook{}
	err := t.get(what, sql, args, func(rows pgx.Rows) error {
		w, err := scanHook(rows)
		if err != nil {
			return err
		}
		out = append(out, w)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if t.mode == modeUpdate {
		for i := range out {
			t.setExists(out[i].RunID, true, false)
		}
	}
	return out, nil
}

func (t *tx) Webhooks(runID string) ([]store.Webhook, error) {
	return t.readHooks(fmt.Sprintf("reading the webhooks of run %q", runID), t.s.q.hooks[t.mode], runID)
}

func (t *tx) DueWebhooks(now time.Time, max int) ([]store.Webhook, error) {
	if max <= 0 {
		return []store.Webhook{}, t.err
	}
	return t.readHooks("reading due webhooks", t.s.q.dueHooks[t.mode], now, max)
}

func (t *tx) PutEvent(ev store.Event) error {
	if err := t.writable(); err != nil {
		return err
	}
	t.put(fmt.Sprintf("writing event %q key %q id %q", ev.Name, ev.Key, ev.ID), t.s.q.putEvent, eventArgs(&ev)...)
	return nil
}

func (t *tx) Events(name, key string, since time.Time) ([]store.Event, error) {
	out := []store.Event{}
	err := t.get(fmt.Sprintf("reading events %q key %q", name, key), t.s.q.events[t.mode], []any{name, key, since}, func(rows pgx.Rows) error {
		ev, err := scanEvent(rows)
		if err != nil {
			return err
		}
		out = append(out, ev)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *tx) DeleteEvents(before time.Time, max int) (int, error) {
	if err := t.writable(); err != nil {
		return 0, err
	}
	if max <= 0 {
		return 0, nil
	}
	tag, err := t.exec("deleting old events", t.s.q.deleteEvents, before, max)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (t *tx) Schedule(id string) (store.Schedule, error) {
	var sc store.Schedule
	found := false
	err := t.get(fmt.Sprintf("reading schedule %q", id), t.s.q.schedule[t.mode], []any{id}, func(rows pgx.Rows) (err error) {
		sc, err = scanSchedule(rows)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Schedule{}, err
	}
	if !found {
		return store.Schedule{}, store.ErrNotFound
	}
	return sc, nil
}

func (t *tx) PutSchedule(sc store.Schedule) error {
	if err := t.writable(); err != nil {
		return err
	}
	t.put(fmt.Sprintf("writing schedule %q", sc.ID), t.s.q.putSchedule, scheduleArgs(&sc)...)
	return nil
}

func (t *tx) DeleteSchedule(id string) error {
	if err := t.writable(); err != nil {
		return err
	}
	tag, err := t.exec(fmt.Sprintf("deleting schedule %q", id), t.s.q.deleteSchedule, id)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return store.ErrNotFound
	}
	return nil
}

func (t *tx) Schedules() ([]store.Schedule, error) {
	out := []store.Schedule{}
	err := t.get("reading the schedules", t.s.q.schedules[t.mode], nil, func(rows pgx.Rows) error {
		sc, err := scanSchedule(rows)
		if err != nil {
			return err
		}
		out = append(out, sc)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (t *tx) Slots(key string) (store.Slots, error) {
	var sl store.Slots
	found := false
	err := t.get(fmt.Sprintf("reading the slots of key %q", key), t.s.q.slots[t.mode], []any{key}, func(rows pgx.Rows) (err error) {
		sl, err = scanSlots(rows)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Slots{}, err
	}
	if t.mode == modeUpdate {
		if _, ok := t.slots[key]; found || !ok {
			t.setSlots(key, found)
		}
	}
	if !found {
		return store.Slots{}, store.ErrNotFound
	}
	return sl, nil
}

func (t *tx) PutSlots(sl store.Slots) error {
	if err := t.writable(); err != nil {
		return err
	}
	if len(sl.Holders) == 0 && len(sl.Queue) == 0 {
		t.put(fmt.Sprintf("deleting the slots of key %q", sl.Key), t.s.q.deleteSlots, sl.Key)
		t.setSlots(sl.Key, false)
		return nil
	}
	sql := t.s.q.putSlots
	if known, ok := t.slots[sl.Key]; ok && !known {
		// Read as absent: insert, and fail (to run again) if another
		// transaction created the row since.
		sql = t.s.q.insertSlots
	}
	t.put(fmt.Sprintf("writing the slots of key %q", sl.Key), sql, slotsArgs(&sl)...)
	t.setSlots(sl.Key, true)
	return nil
}

// setSlots records whether the slots row of a key exists (true) or was read
// or made absent (false).
func (t *tx) setSlots(key string, v bool) {
	old, had := t.slots[key]
	t.slots[key] = v
	t.logUndo(func() {
		if had {
			t.slots[key] = old
		} else {
			delete(t.slots, key)
		}
	})
}
