package postgres

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/dagflow/dagflow/store"
)

// The row cache: the runs and steps that this process's Updates wrote, as
// they wrote them, each with the id of the transaction that wrote it, which
// PostgreSQL keeps in the row as xmin until the row is written again, by
// any transaction of any process.
//
// An Update's first read of a run, or of a step of a run it holds, is
// answered from the cache when it holds the row, without a round trip: a
// worker's outcome reads its run, its step and the steps that follow, which
// the Update that claimed the step wrote. Such a read is checked before
// anything of the transaction relies on it: the next batch the transaction
// sends, its COMMIT at the latest, first locks those rows, in the order
// reads lock them (runs in the order of their ids, then steps), and fails
// with ErrCodeStale unless every one of them still carries the xmin the
// cache knows. Nothing after that statement in the batch runs, so a stale
// read never reaches a write; the group then runs again at once, with the
// run's rows read from the server, and the run is not cached for a while
// (another process writes it too). A read checked so is as good as the read
// with a lock it replaces: the row is locked, and is the one the cache held.
//
// The cache is bounded (maxCachedRows) and is only an optimisation: a row
// it lacks is read from the server, as before. A nil *rowCache holds
// nothing (tests use it to take the server's path).
type rowCache struct {
	mu sync.Mutex
	// runs holds the cached rows by run; n counts them.
	runs map[string]*cachedRun
	n    int
	// cold holds the runs found stale lately, and until when they are not
	// cached.
	cold map[string]time.Time
}

// cachedRun holds the cached rows of one run: its own (when has) and those
// of its steps and items.
type cachedRun struct {
	has   bool
	run   store.Run
	xmin  uint32
	steps map[stepKey]cachedStep
}

type cachedStep struct {
	st   store.Step
	xmin uint32
}

// maxCachedRows bounds the rows the cache holds: past it, the rows of runs
// taken at random make room.
const maxCachedRows = 1 << 14

// coldFor is how long a run found stale is not cached.
const coldFor = 2 * time.Second

func newRowCache() *rowCache {
	return &rowCache{runs: map[string]*cachedRun{}, cold: map[string]time.Time{}}
}

// runWith returns run id and the steps keys of it, as cached, when the
// cache holds every one of them.
func (c *rowCache) runWith(id string, keys []stepKey) (cachedRun, []cachedStep, bool) {
	if c == nil {
		return cachedRun{}, nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cr := c.runs[id]
	if cr == nil || !cr.has {
		return cachedRun{}, nil, false
	}
	steps := make([]cachedStep, 0, len(keys))
	for _, k := range keys {
		cs, ok := cr.steps[k]
		if !ok {
			return cachedRun{}, nil, false
		}
		steps = append(steps, cs)
	}
	return cachedRun{has: true, run: cr.run, xmin: cr.xmin}, steps, true
}

// step returns step k as cached.
func (c *rowCache) step(k stepKey) (cachedStep, bool) {
	if c == nil {
		return cachedStep{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cr := c.runs[k.run]
	if cr == nil {
		return cachedStep{}, false
	}
	cs, ok := cr.steps[k]
	return cs, ok
}

// wrote records the rows a committed transaction wrote, and forgets the
// runs it deleted.
func (c *rowCache) wrote(xid int64, runs []store.Run, steps []store.Step, deleted []string) {
	if c == nil {
		return
	}
	xmin := uint32(xid) // xmin is the low 32 bits of txid_current()
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range deleted {
		c.forget(id)
	}
	for _, r := range runs {
		cr := c.entry(r.ID, now)
		if cr == nil {
			continue
		}
		if !cr.has {
			c.n++
		}
		cr.has, cr.run, cr.xmin = true, r, xmin
	}
	for _, st := range steps {
		cr := c.entry(st.RunID, now)
		if cr == nil {
			continue
		}
		k := stepKey{st.RunID, st.Index, st.Item}
		if _, ok := cr.steps[k]; !ok {
			c.n++
		}
		cr.steps[k] = cachedStep{st: st, xmin: xmin}
	}
	for id := range c.runs {
		if c.n <= maxCachedRows {
			break
		}
		c.forget(id)
	}
}

// entry returns the cached rows of run id, making room for them, or nil
// when the run is cold.
func (c *rowCache) entry(id string, now time.Time) *cachedRun {
	if until, ok := c.cold[id]; ok {
		if now.Before(until) {
			return nil
		}
		delete(c.cold, id)
	}
	cr := c.runs[id]
	if cr == nil {
		cr = &cachedRun{steps: map[stepKey]cachedStep{}}
		c.runs[id] = cr
	}
	return cr
}

// stale forgets runs a check found stale, and keeps them out of the cache
// for coldFor.
func (c *rowCache) stale(ids []string) {
	if c == nil {
		return
	}
	until := time.Now().Add(coldFor)
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, t := range c.cold {
		if t.Before(until.Add(-coldFor)) {
			delete(c.cold, id) // expired
		}
	}
	for _, id := range ids {
		c.forget(id)
		c.cold[id] = until
	}
}

func (c *rowCache) forget(id string) {
	cr := c.runs[id]
	if cr == nil {
		return
	}
	c.n -= len(cr.steps)
	if cr.has {
		c.n--
	}
	delete(c.runs, id)
}

// A read answered from the cache waits to be checked (see rowCache).
type checkRun struct {
	id   string
	xmin uint32
}

type checkStep struct {
	k    stepKey
	xmin uint32
}

// staleOwner is the owner of the checks of rows read from the cache, when
// one failed because a row had changed.
const staleOwner = -3

// isStale reports whether err is the failure of such a check.
func isStale(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == ErrCodeStale
}

// ErrCodeStale is the SQLSTATE with which the check of rows read from the
// cache fails when one of them changed since (migration 3, function
// fresh).
const ErrCodeStale = "DF001"

// fromCache answers the first read of run id in an Update from the cache,
// with the steps of it that the transaction would read with it (the claimed
// set's and the named ones), when the cache holds them all and the
// transaction may lock the run now (it holds no run with a greater id and
// has not read due steps).
func (t *tx) fromCache(id string) (store.Run, bool) {
	cr, steps, ok := t.lookup(id)
	if !ok {
		return store.Run{}, false
	}
	t.useCached(cr, steps)
	return cr.run, true
}

// allFromCache answers the first reads of runs (sorted) from the cache when
// it can answer every one, and reports whether it did.
func (t *tx) allFromCache(ids []string) bool {
	type found struct {
		cr    cachedRun
		steps []cachedStep
	}
	all := make([]found, len(ids))
	for i, id := range ids {
		cr, steps, ok := t.lookup(id)
		if !ok {
			return false
		}
		all[i] = found{cr, steps}
	}
	for _, f := range all {
		t.useCached(f.cr, f.steps)
	}
	return true
}

// lookup finds run id and its steps to read with it in the cache.
func (t *tx) lookup(id string) (cachedRun, []cachedStep, bool) {
	if t.mode != modeUpdate || t.noCache || t.scanned || t.maxRun > id || slices.Contains(t.deleted, id) {
		return cachedRun{}, nil, false
	}
	var keys []stepKey
	if !t.fetched[id] {
		keys = t.s.claimedOf(id)
		for _, i := range t.hints[id] {
			keys = append(keys, stepKey{id, i, 0})
		}
		keys = slices.DeleteFunc(keys, func(k stepKey) bool { _, held := t.steps[k]; return held })
	}
	return t.s.cache.runWith(id, keys)
}

// useCached makes a run and its steps found in the cache read, to be
// checked by the next batch.
func (t *tx) useCached(cr cachedRun, steps []cachedStep) {
	t.setRun(cr.run, false)
	t.checkRuns = append(t.checkRuns, checkRun{cr.run.ID, cr.xmin})
	n := 1
	for _, cs := range steps {
		k := stepKey{cs.st.RunID, cs.st.Index, cs.st.Item}
		if _, held := t.steps[k]; !held {
			t.setStep(cs.st, false, false)
			t.checkSteps = append(t.checkSteps, checkStep{k, cs.xmin})
			n++
		}
	}
	t.fetched[cr.run.ID] = true
	t.s.stats.cached.Add(int64(n))
}

// stepFromCache answers a read of step k of a run the transaction holds (or
// read from the cache) from the cache.
func (t *tx) stepFromCache(k stepKey) (store.Step, bool) {
	if t.mode != modeUpdate || t.noCache || !t.exists[k.run] || slices.Contains(t.deleted, k.run) {
		return store.Step{}, false
	}
	cs, ok := t.s.cache.step(k)
	if !ok {
		return store.Step{}, false
	}
	t.setStep(cs.st, false, false)
	t.checkSteps = append(t.checkSteps, checkStep{k, cs.xmin})
	t.s.stats.cached.Add(1)
	return cs.st, true
}

// checks returns the statements that check the reads answered from the
// cache since the last batch, and forgets them: the runs in the order of
// their ids, then the steps in the order of their keys.
func (t *tx) checks() []stmt {
	var out []stmt
	if len(t.checkRuns) > 0 {
		slices.SortFunc(t.checkRuns, func(a, b checkRun) int { return cmp.Compare(a.id, b.id) })
		ids, xmins := make([]string, len(t.checkRuns)), make([]int64, len(t.checkRuns))
		for i, c := range t.checkRuns {
			ids[i], xmins[i] = c.id, int64(c.xmin)
		}
		out = append(out, stmt{sql: t.s.q.checkRuns, args: []any{ids, xmins}})
	}
	if len(t.checkSteps) > 0 {
		slices.SortFunc(t.checkSteps, func(a, b checkStep) int { return compareKeys(a.k, b.k) })
		n := len(t.checkSteps)
		runs, idx, items, xmins := make([]string, n), make([]int, n), make([]int, n), make([]int64, n)
		for i, c := range t.checkSteps {
			runs[i], idx[i], items[i], xmins[i] = c.k.run, c.k.index, c.k.item, int64(c.xmin)
		}
		out = append(out, stmt{sql: t.s.q.checkSteps, args: []any{runs, idx, items, xmins}})
	}
	if len(out) == 0 {
		return nil
	}
	if t.checkedXmin == nil {
		t.checkedXmin = map[rowKey]uint32{}
	}
	for _, c := range t.checkRuns {
		t.checkedXmin[rowKey{table: 'r', step: stepKey{run: c.id}}] = c.xmin
	}
	for _, c := range t.checkSteps {
		t.checkedXmin[rowKey{table: 's', step: c.k}] = c.xmin
	}
	t.checkRuns, t.checkSteps = t.checkRuns[:0], t.checkSteps[:0]
	return out
}

// verify sends the checks of the reads answered from the cache, if any
// wait, and nothing else: the queued writes stay queued. A failed check
// leaves t.err set.
func (t *tx) verify() {
	if len(t.checkRuns)+len(t.checkSteps) == 0 {
		return
	}
	t.keep = true
	t.send("checking the rows read from the cache")
}

// checkedRuns returns the runs of the rows that the checks sent checked.
func (t *tx) checkedRuns() []string {
	var ids []string
	for k := range t.checkedXmin {
		ids = append(ids, k.step.run)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func compareKeys(a, b stepKey) int {
	return cmp.Or(cmp.Compare(a.run, b.run), cmp.Compare(a.index, b.index), cmp.Compare(a.item, b.item))
}

// cacheWrites records in the cache the runs and steps a committed
// transaction wrote.
func (s *Store) cacheWrites(t *tx) {
	if t.xid == 0 {
		return
	}
	runs := make([]store.Run, 0, len(t.wroteRuns))
	for id := range t.wroteRuns {
		if r, ok := t.runs[id]; ok {
			runs = append(runs, storedRun(r))
		}
	}
	steps := make([]store.Step, 0, len(t.claims))
	for k := range t.claims {
		if st, ok := t.steps[k]; ok {
			steps = append(steps, storedStep(st))
		}
	}
	s.cache.wrote(t.xid, runs, steps, t.deleted)
}

// storedRun returns r as a read of the row written from it returns it (see
// records.go): times to the microsecond in UTC, empty lists nil, error
// text cleaned.
func storedRun(r store.Run) store.Run {
	r.Error = clean(r.Error)
	r.CreatedAt = storedTime(r.CreatedAt)
	r.StartedAt, r.CompletedAt, r.Deadline, r.UpdatedAt = storedTime(r.StartedAt), storedTime(r.CompletedAt), storedTime(r.Deadline), storedTime(r.UpdatedAt)
	if len(r.SerialQueue) == 0 {
		r.SerialQueue = nil
	}
	if len(r.CompQueue) == 0 {
		r.CompQueue = nil
	}
	return r
}

// storedStep is storedRun for a step: besides, empty JSON is nil.
func storedStep(s store.Step) store.Step {
	s.Error, s.CompError = clean(s.Error), clean(s.CompError)
	s.DueAt, s.StartedAt, s.CompletedAt, s.LeaseUntil, s.AttemptAt = storedTime(s.DueAt), storedTime(s.StartedAt), storedTime(s.CompletedAt), storedTime(s.LeaseUntil), storedTime(s.AttemptAt)
	s.CompStartedAt, s.CompEndedAt = storedTime(s.CompStartedAt), storedTime(s.CompEndedAt)
	if len(s.Result) == 0 {
		s.Result = nil
	}
	if len(s.Input) == 0 {
		s.Input = nil
	}
	return s
}

// storedTime is t as a timestamptz column keeps it (pgx sends microseconds,
// dropping the rest) and scans it back.
func storedTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Microsecond).UTC()
}

// resolveByRows finds out whether a transaction whose COMMIT's answer was
// lost, and whose id is unknown (it began in that batch), committed, from
// the rows it read from the cache and wrote. Such a row that still has the
// xmin the check found was not written: the transaction did not commit. One
// that holds what the transaction wrote, under another xmin, was: it did.
// (A later writer would have left its own content.) Otherwise the outcome
// cannot be told.
func (s *Store) resolveByRows(t *tx, n int, cause, unknown error) (groupOutcome, int, error, []string) {
	var runIDs []string
	var sruns []string
	var sidx, sitems []int
	for id := range t.wroteRuns {
		if _, ok := t.checkedXmin[rowKey{table: 'r', step: stepKey{run: id}}]; ok {
			runIDs = append(runIDs, id)
		}
	}
	for k := range t.claims {
		if _, ok := t.checkedXmin[rowKey{table: 's', step: k}]; ok {
			sruns, sidx, sitems = append(sruns, k.run), append(sidx, k.index), append(sitems, k.item)
		}
	}
	ctx, cancel := context.WithTimeout(s.closing, 30*time.Second)
	defer cancel()
	committed, aborted := false, false
	judge := func(k rowKey, xmin uint32, got, ours any) {
		switch {
		case xmin == t.checkedXmin[k]:
			aborted = true
		case sameRow(got, ours):
			committed = true
		}
	}
	var err error
	for try := 0; len(runIDs)+len(sruns) > 0; try++ {
		committed, aborted = false, false
		err = func() error {
			var b pgx.Batch
			b.Queue(s.q.runsXmin, runIDs).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var x runScan
					var xmin int64
					if err := rows.Scan(append(x.dests(), &xmin)...); err != nil {
						return err
					}
					r, err := x.run()
					if err != nil {
						return err
					}
					judge(rowKey{table: 'r', step: stepKey{run: r.ID}}, uint32(xmin), r, storedRun(t.runs[r.ID]))
				}
				return rows.Err()
			})
			b.Queue(s.q.stepsXmin, sruns, sidx, sitems).Query(func(rows pgx.Rows) error {
				for rows.Next() {
					var x stepScan
					var xmin int64
					if err := rows.Scan(append(x.dests(), &xmin)...); err != nil {
						return err
					}
					st := x.step()
					k := stepKey{st.RunID, st.Index, st.Item}
					judge(rowKey{table: 's', step: k}, uint32(xmin), st, storedStep(t.steps[k]))
				}
				return rows.Err()
			})
			return s.pool.SendBatch(ctx, &b).Close()
		}()
		if err == nil || !s.sleep(ctx, backoff(min(try, 4))) {
			break
		}
	}
	switch {
	case err == nil && committed && !aborted:
		s.stats.commitsResolved.Add(1)
		s.noteClaims(t)
		s.log.Warn("postgres: the connection broke while committing; the transaction had committed (its rows say so)",
			"functions", n, "error", cause)
		return groupCommitted, -1, nil, nil
	case err == nil && aborted && !committed:
		s.stats.commitsResolved.Add(1)
		s.log.Warn("postgres: the connection broke while committing; the transaction had not committed (its rows say so), so its functions run again",
			"functions", n, "error", cause)
		return groupRetry, -1, cause, nil
	}
	s.log.Error("postgres: the connection broke while committing, and the transaction's id is unknown: its outcome cannot be told",
		"functions", n, "error", cause, "lookup", err)
	return groupFailed, -1, unknown, nil
}

// sameRow reports whether two records hold the same values.
func sameRow(a, b any) bool {
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}
