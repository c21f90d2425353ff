package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/dagflow/dagflow/store"
)

// tx implements store.Tx on one connection.
//
// It saves round trips: BEGIN is not sent on its own but with the first
// statement, and writes are queued and sent, in one pipelined batch, with the
// next read or with COMMIT. So a transaction costs one round trip per read
// plus one. A write is queued only when it cannot fail for want of the run
// it belongs to: the transaction has read or written that run, or a record
// of it, and holds a lock on that row, so nobody can delete the run.
// Otherwise the write first checks (and locks) the run in a round trip of
// its own, so that it can return store.ErrNotFound itself.
//
// Once a statement has failed, the PostgreSQL transaction is aborted: err
// keeps the failure and every later call returns it.
type tx struct {
	s *Store
	// ctx is the context given to Update or View; a tx lives only while
	// their function runs, and store.Tx methods take no context.
	ctx   context.Context
	conn  *pgx.Conn
	mode  int // modeView or modeUpdate
	begun bool
	queue []queued
	err   error
	// last is set when err came from the last statement of a batch (or
	// after it): for COMMIT, the server may have run it.
	last bool

	// runs holds the runs that exist for the rest of the transaction
	// (true), and those an Update read as absent (false): a PutRun of an
	// absent run inserts it and fails, to be run again, when another
	// transaction created it in the meantime. slots does the same for the
	// concurrency slots of a key.
	runs  map[string]bool
	slots map[string]bool
}

type queued struct {
	sql  string
	args []any
	what string
}

// connLostError marks an error after which the transaction's connection is
// gone.
type connLostError struct{ err error }

func (e *connLostError) Error() string { return e.err.Error() }
func (e *connLostError) Unwrap() error { return e.err }

func (t *tx) fail(what string, err error) error {
	if t.err == nil {
		t.err = err
	}
	return fmt.Errorf("postgres: %s: %w", what, err)
}

// send sends the queued writes and then sql (a read, or COMMIT) in one
// batch, beginning the transaction first if it has not begun. It calls read
// with the rows of sql when read is not nil; otherwise it returns sql's
// command tag.
func (t *tx) send(what, sql string, args []any, read func(pgx.Rows) error) (pgconn.CommandTag, error) {
	if t.err != nil {
		return pgconn.CommandTag{}, fmt.Errorf("postgres: %s: the transaction failed earlier: %w", what, t.err)
	}
	var b pgx.Batch
	setTimeout := !t.begun && t.mode == modeUpdate && t.s.q.lockTimeout != ""
	if !t.begun {
		b.Queue(t.s.q.begin[t.mode])
		if setTimeout {
			b.Queue(t.s.q.lockTimeout)
		}
	}
	for _, w := range t.queue {
		b.Queue(w.sql, w.args...)
	}
	b.Queue(sql, args...)
	queue := t.queue
	t.queue = t.queue[:0]
	begin := !t.begun
	t.begun = true

	br := t.conn.SendBatch(t.ctx, &b)
	var tag pgconn.CommandTag
	last := false
	err := func() error {
		if begin {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("beginning a transaction: %w", err)
			}
		}
		if setTimeout {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("setting lock_timeout: %w", err)
			}
		}
		for _, w := range queue {
			if _, err := br.Exec(); err != nil {
				return fmt.Errorf("%s: %w", w.what, err)
			}
		}
		last = true
		if read == nil {
			var err error
			tag, err = br.Exec()
			return err
		}
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
		return tag, t.fail(what, err)
	}
	return tag, nil
}

// get runs a read that returns rows; each row goes to row.
func (t *tx) get(what, sql string, args []any, row func(pgx.Rows) error) error {
	_, err := t.send(what, sql, args, func(rows pgx.Rows) error {
		for rows.Next() {
			if err := row(rows); err != nil {
				return err
			}
		}
		return nil
	})
	return err
}

// put queues a write.
func (t *tx) put(what, sql string, args ...any) {
	t.queue = append(t.queue, queued{sql: sql, args: args, what: what})
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
// unknown).
func (t *tx) commit() (sent bool, err error) {
	if !t.begun && len(t.queue) == 0 {
		return false, nil // nothing read, nothing written
	}
	tag, err := t.send("committing", "COMMIT", nil, nil)
	if err != nil {
		// The server answers in order. An ERROR it reports means that
		// the statement failed and that it skipped the rest of the batch,
		// COMMIT included; a FATAL one before COMMIT's answer means that
		// it stopped before COMMIT. Anything else (the connection broke,
		// or the server stopped while answering COMMIT) leaves it unknown.
		var pe *pgconn.PgError
		switch {
		case pgconn.SafeToRetry(err):
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

func (t *tx) knowRun(id string) {
	if t.runs == nil {
		t.runs = make(map[string]bool)
	}
	t.runs[id] = true
}

// needRun makes sure that run id exists and stays so until the end of the
// transaction, reading it when the transaction does not know.
func (t *tx) needRun(id string) error {
	if t.runs[id] {
		return nil
	}
	found := false
	err := t.get(fmt.Sprintf("checking run %q", id), t.s.q.lockRun, []any{id}, func(pgx.Rows) error { found = true; return nil })
	if err != nil {
		return err
	}
	if !found {
		return store.ErrNotFound
	}
	t.knowRun(id)
	return nil
}

func (t *tx) Run(id string) (store.Run, error) {
	var r store.Run
	found := false
	err := t.get(fmt.Sprintf("reading run %q", id), t.s.q.run[t.mode], []any{id}, func(rows pgx.Rows) (err error) {
		r, err = scanRun(rows)
		found = err == nil
		return err
	})
	if err != nil {
		return store.Run{}, err
	}
	if !found {
		if t.mode == modeUpdate {
			if t.runs == nil {
				t.runs = make(map[string]bool)
			}
			if _, ok := t.runs[id]; !ok {
				t.runs[id] = false
			}
		}
		return store.Run{}, store.ErrNotFound
	}
	t.knowRun(id)
	return r, nil
}

func (t *tx) PutRun(r store.Run) error {
	if err := t.writable(); err != nil {
		return err
	}
	sql := t.s.q.putRun
	if known, ok := t.runs[r.ID]; ok && !known {
		// Read as absent: insert, and fail (to run again) if another
		// transaction created the run since.
		sql = t.s.q.insertRun
	}
	t.put(fmt.Sprintf("writing run %q", r.ID), sql, runArgs(&r)...)
	t.knowRun(r.ID)
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
	if t.mode == modeUpdate {
		for _, r := range out {
			t.knowRun(r.ID)
		}
	}
	return out, nil
}

func (t *tx) DeleteRun(id string) error {
	if err := t.writable(); err != nil {
		return err
	}
	tag, err := t.send(fmt.Sprintf("deleting run %q", id), t.s.q.deleteRun, []any{id}, nil)
	if err != nil {
		return err
	}
	delete(t.runs, id)
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
	var st store.Step
	found := false
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
	t.knowRun(runID)
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
	t.put(fmt.Sprintf("writing step %d item %d of run %q", st.Index, st.Item, st.RunID), t.s.q.putStep, stepArgs(&st)...)
	return nil
}

// readSteps runs a read of steps, whose runs the transaction then knows
// exist.
func (t *tx) readSteps(what, sql string, args ...any) ([]store.Step, error) {
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
	if t.mode == modeUpdate {
		for i := range out {
			t.knowRun(out[i].RunID)
		}
	}
	return out, nil
}

func (t *tx) Steps(runID string) ([]store.Step, error) {
	return t.readSteps(fmt.Sprintf("reading the steps of run %q", runID), t.s.q.steps[t.mode], runID)
}

func (t *tx) Items(runID string, index int) ([]store.Step, error) {
	return t.readSteps(fmt.Sprintf("reading the items of step %d of run %q", index, runID), t.s.q.items[t.mode], runID, index)
}

func (t *tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	if max <= 0 {
		return []store.Step{}, t.err
	}
	return t.readSteps("reading due steps", t.s.q.dueSteps[t.mode], now, max)
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
	return t.readSteps(fmt.Sprintf("reading the steps waiting for event %q key %q", event, key), t.s.q.waiting[t.mode], event, key)
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
			t.knowRun(out[i].RunID)
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
	tag, err := t.send("deleting old events", t.s.q.deleteEvents, []any{before, max}, nil)
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
	tag, err := t.send(fmt.Sprintf("deleting schedule %q", id), t.s.q.deleteSchedule, []any{id}, nil)
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
		if t.slots == nil {
			t.slots = make(map[string]bool)
		}
		if _, ok := t.slots[key]; found || !ok {
			t.slots[key] = found
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
	if t.slots == nil {
		t.slots = make(map[string]bool)
	}
	if len(sl.Holders) == 0 && len(sl.Queue) == 0 {
		t.put(fmt.Sprintf("deleting the slots of key %q", sl.Key), t.s.q.deleteSlots, sl.Key)
		t.slots[sl.Key] = false
		return nil
	}
	sql := t.s.q.putSlots
	if known, ok := t.slots[sl.Key]; ok && !known {
		// Read as absent: insert, and fail (to run again) if another
		// transaction created the row since.
		sql = t.s.q.insertSlots
	}
	t.put(fmt.Sprintf("writing the slots of key %q", sl.Key), sql, slotsArgs(&sl)...)
	t.slots[sl.Key] = true
	return nil
}
