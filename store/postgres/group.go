package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"time"

	"github.com/dagflow/dagflow/store"
)

// The group committer. Update does not open a transaction of its own: it
// queues its function, and a goroutine (commitLoop) takes every function
// waiting in its queue at that moment, up to Options.MaxBatch, runs them one
// after the other in one PostgreSQL transaction on one connection, commits
// once, and wakes their callers. Options.Committers loops run, each with its
// queue; the Updates of one run (store.ForRun) go to one queue. There is no
// timer: a lone caller commits at once, and callers that arrive while a
// group commits form the next one. So a process whose workers finish many
// steps at once pays one COMMIT (one WAL flush) and one lock and one write of
// each run's row for all of them, and the functions after the first find the
// rows the first read (the run, a fan-in step) in the transaction's memory,
// without a round trip. When the group's Updates name several runs
// (store.ForRun, as the engine's outcomes do), the group first locks those
// runs, in the order of their ids, and reads the steps the Updates name and
// those this process claimed, all in one round trip with BEGIN: a group of
// outcomes of many small runs then reads them in one round trip, not one per
// run.
//
// A group is all or nothing for PostgreSQL, not for its callers:
//
//   - A function that returns an error before any of its writes reached the
//     server is taken back in place (its queued writes dropped) and the
//     others go on. One that fails later, or whose statement PostgreSQL
//     refuses, gets its error, and the group's transaction is rolled back
//     and run again without it: nothing is half applied.
//   - A deadlock, a lock timeout, a serialization failure or a lost
//     connection rolls the whole group back and runs it again, with backoff.
//     After a lock timeout the new try first locks, in the order of their
//     ids, the runs the failed try held or waited for: two groups that
//     collide once then take the rows they share in one order and cannot
//     deadlock on them again.
//   - When the connection breaks while COMMIT is under way, the outcome is
//     looked up by the transaction's id (txid_status, on another
//     connection): committed, the callers get nil; aborted, the group runs
//     again. It is logged once per group.

// Stats counts what the group committer did since Open. Its fields only
// grow; take the difference of two readings to see an interval.
type Stats struct {
	// Groups counts the transactions committed for Updates; Functions the
	// Updates' functions they held (Functions/Groups is the mean size of a
	// group).
	Groups, Functions int64
	// Retries counts the groups run again after a deadlock, a lock
	// timeout, a serialization failure or a lost connection; LockTimeouts
	// counts those of them that a lock timeout or a deadlock caused.
	Retries, LockTimeouts int64
	// Reordered counts the groups run again at once, with their runs
	// locked in order, because a read would have waited out of order.
	Reordered int64
	// Dropped counts functions that failed on their own in a group of
	// several after some of their writes had reached the server, so that
	// the others ran again without them.
	Dropped int64
	// CommitsLost counts COMMITs whose answer was lost with the
	// connection, and CommitsResolved those whose outcome txid_status told.
	CommitsLost, CommitsResolved int64
	// Cached counts the rows that Updates read from the row cache (the
	// runs and steps this process wrote) rather than from the server;
	// Stale the groups run again because one of those rows had changed
	// since (another process wrote it).
	Cached, Stale int64
}

type stats struct {
	groups, functions, retries, lockTimeouts, reordered, dropped, commitsLost, commitsResolved atomic.Int64
	cached, stale                                                                              atomic.Int64
}

// Stats returns what the group committer did since Open. It is safe for
// concurrent use.
func (s *Store) Stats() Stats {
	return Stats{Groups: s.stats.groups.Load(), Functions: s.stats.functions.Load(), Retries: s.stats.retries.Load(),
		LockTimeouts: s.stats.lockTimeouts.Load(), Reordered: s.stats.reordered.Load(), Dropped: s.stats.dropped.Load(),
		CommitsLost: s.stats.commitsLost.Load(), CommitsResolved: s.stats.commitsResolved.Load(),
		Cached: s.stats.cached.Load(), Stale: s.stats.stale.Load()}
}

// request is one Update waiting for its group.
type request struct {
	ctx  context.Context
	fn   func(store.Tx) error
	err  error
	pv   any // a panic of fn, raised again in the caller
	done chan struct{}
}

func (r *request) finish(err error) {
	r.err = err
	close(r.done)
}

// Update runs fn in a read-write transaction, which it shares with the
// functions of other Updates of this Store under way at the same moment,
// and returns when that transaction has committed (or fn failed). See the
// package documentation for how reads lock, and when fn runs again. It
// returns fn's error unchanged when fn fails for a reason of its own,
// ctx.Err() when ctx is done before fn runs, and store.ErrClosed after
// Close. fn must not call Update of the same Store: it would wait for
// itself.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, fn: fn, done: make(chan struct{})}
	q := s.queueFor(store.RunOf(ctx))
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.wg.Add(1)
	q.pending = append(q.pending, r)
	s.mu.Unlock()
	q.wake()
	<-r.done
	s.wg.Done()
	if r.pv != nil {
		panic(r.pv)
	}
	return r.err
}

// A queue holds the Updates waiting for the groups of one commit loop.
// Its pending list is guarded by Store.mu.
type queue struct {
	pending []*request
	kick    chan struct{} // Updates wait
}

// queueFor returns the queue of the commit loop an Update goes to: the one
// its run hashes to, so that one run's Updates share groups instead of
// queueing on the run's row from several connections (a fan-out's
// completions), or, for an Update that names no run, the loops in turn.
func (s *Store) queueFor(run string) *queue {
	if len(s.queues) == 1 {
		return s.queues[0]
	}
	var i uint64
	if run == "" {
		i = s.next.Add(1)
	} else {
		h := fnv.New64a()
		h.Write([]byte(run))
		i = h.Sum64()
	}
	return s.queues[i%uint64(len(s.queues))]
}

// commitLoop runs the groups of q, until Close. Options.Committers loops
// run at once, each on a connection of its own: while one group waits for
// a row or a COMMIT, another can run.
func (s *Store) commitLoop(q *queue) {
	defer s.loops.Done()
	for {
		select {
		case <-q.kick:
		case <-s.loopStop:
			return
		}
		for {
			s.mu.Lock()
			n := min(len(q.pending), s.maxBatch)
			batch := make([]*request, n)
			copy(batch, q.pending)
			q.pending = append(q.pending[:0], q.pending[n:]...)
			s.mu.Unlock()
			if n == 0 {
				break
			}
			s.runGroup(batch)
		}
	}
}

// wake tells q's commit loop that Updates wait.
func (q *queue) wake() {
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

// groupOutcome is how one try of a group ended.
type groupOutcome int

const (
	groupCommitted groupOutcome = iota
	groupDropOne                // one function failed: run the others again at once
	groupRetry                  // run the whole group again, after a backoff
	groupFailed                 // every caller gets err
	groupUnbulk                 // a bulk statement failed: run again with a statement per row
	groupStale                  // a row read from the cache had changed: run again at once, without it
)

// runGroup runs batch to the end: committed, or failed for each caller.
func (s *Store) runGroup(batch []*request) {
	var lock []string // runs to lock first, after a lock timeout
	var lastErr error
	noBulk, noCache := false, false
	orderTries := 0
	for try := 0; ; {
		// A caller whose context ended while its group waited to run again
		// leaves: nothing of its function was committed.
		live := batch[:0]
		for _, r := range batch {
			if err := r.ctx.Err(); err != nil {
				if lastErr != nil {
					err = fmt.Errorf("postgres: %w (while waiting to try again after: %v)", err, lastErr)
				}
				r.finish(err)
				continue
			}
			live = append(live, r)
		}
		clear(batch[len(live):])
		batch = live
		if len(batch) == 0 {
			return
		}
		out, who, err, held := s.tryGroup(batch, lock, noBulk, noCache)
		if out == groupDropOne {
			batch[who].finish(err)
			batch[who] = nil
		}
		batch = compact(batch) // without the functions that failed on their own
		switch out {
		case groupCommitted:
			s.stats.groups.Add(1)
			s.stats.functions.Add(int64(len(batch)))
			for _, r := range batch {
				r.finish(nil)
			}
			return
		case groupDropOne:
			s.stats.dropped.Add(1)
			continue
		case groupUnbulk:
			noBulk = true
			continue
		case groupStale:
			noCache = true
			continue
		case groupFailed:
			for _, r := range batch {
				r.finish(err)
			}
			return
		}
		lastErr = err
		if errors.Is(err, errLockOrder) && orderTries < maxOrderTries {
			// Run again at once, taking the rows in order: the locks
			// wanted grow with each try, so this ends.
			orderTries++
			s.stats.reordered.Add(1)
			lock = held
			continue
		}
		s.stats.retries.Add(1)
		s.log.Debug("postgres: running a group of Updates again", "functions", len(batch), "try", try+1, "error", err)
		if isLockTimeout(err) || errors.Is(err, errLockOrder) {
			s.stats.lockTimeouts.Add(1)
			lock = held
		}
		if try >= s.retries {
			for _, r := range batch {
				r.finish(fmt.Errorf("postgres: giving up after %d tries: %w", try+1, err))
			}
			return
		}
		ctx, release := groupContext(batch)
		slept := s.sleep(ctx, backoff(try))
		release()
		if !slept && s.closing.Err() != nil {
			for _, r := range batch {
				r.finish(fmt.Errorf("postgres: %w (while waiting to try again after: %v)", store.ErrClosed, err))
			}
			return
		}
		try++
	}
}

// maxOrderTries bounds how often a group runs again at once because a read
// would have waited out of order (errLockOrder); then it backs off as after a
// lock timeout.
const maxOrderTries = 16

func isLockTimeout(err error) bool {
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		switch pe.SQLState() {
		case "55P03", "40P01": // lock_not_available, deadlock_detected
			return true
		}
	}
	return false
}

// groupContext returns a context that is done when the contexts of every
// caller of batch are: the statements of a group stop when nobody waits
// for them any more, and not before. release frees it.
func groupContext(batch []*request) (ctx context.Context, release func()) {
	if len(batch) == 1 {
		return batch[0].ctx, func() {}
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(batch[0].ctx))
	var left atomic.Int64
	left.Store(int64(len(batch)))
	stops := make([]func() bool, len(batch))
	for i, r := range batch {
		stops[i] = context.AfterFunc(r.ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// tryGroup runs the functions of batch in one transaction and commits it.
// who names the function that failed on its own (groupDropOne); held lists
// the runs the transaction held or waited for. A function that failed and
// was taken back in place is finished here, and its entry of batch set to
// nil.
func (s *Store) tryGroup(batch []*request, lock []string, noBulk, noCache bool) (out groupOutcome, who int, err error, held []string) {
	ctx, release := groupContext(batch)
	defer release()
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return groupFailed, -1, ctx.Err(), nil
		}
		err = fmt.Errorf("postgres: connecting: %w", err)
		if retryable(err) {
			return groupRetry, -1, err, nil
		}
		return groupFailed, -1, err, nil
	}
	defer c.Release()
	t := newTx(s, ctx, c.Conn(), modeUpdate)
	t.noBulk, t.noCache = noBulk, noCache
	for _, r := range batch {
		if steps := store.StepsOf(r.ctx); len(steps) > 0 {
			run := store.RunOf(r.ctx)
			if t.hints == nil {
				t.hints = map[string][]int{}
			}
			t.hints[run] = append(t.hints[run], steps...)
		}
	}
	defer t.end()
	// failed turns the transaction's failed statement into an outcome.
	failed := func(ferr error) (groupOutcome, int, error, []string) {
		if t.errOwner == staleOwner {
			s.stats.stale.Add(1)
			s.cache.stale(t.checkedRuns())
			return groupStale, -1, t.err, nil
		}
		if ctx.Err() == nil && retryable(t.err) {
			return groupRetry, -1, t.err, t.held()
		}
		if t.errOwner == bulkOwner {
			return groupUnbulk, -1, t.err, nil
		}
		if t.errOwner < 0 {
			return groupFailed, -1, fmt.Errorf("postgres: the transaction failed: %w", t.err), nil
		}
		if ferr == nil || t.errOwner != t.owner {
			ferr = fmt.Errorf("postgres: the transaction failed: %w", t.err)
		}
		return groupDropOne, t.errOwner, ferr, nil
	}
	if len(lock) > 0 {
		if err := t.lockRuns(lock); err != nil {
			return failed(nil)
		}
	} else if runs := namedRuns(batch); len(runs) > 1 && !t.allFromCache(runs) {
		if err := t.readAhead(runs); err != nil {
			return failed(nil)
		}
	}
	for i, r := range batch {
		t.start(i, len(batch)-1-i)
		ferr := call(r, t)
		if ferr != nil && r.pv == nil && t.err == nil {
			// fn's error may come of a read from the row cache: it
			// stands only once those reads are checked.
			t.verify()
		}
		switch {
		case r.pv != nil:
			// fn panicked: its caller panics; the others run again.
			t.discard()
			return groupDropOne, i, nil, nil
		case t.err != nil:
			return failed(ferr)
		case ferr != nil && t.discard():
			r.finish(ferr) // taken back in place
			batch[i] = nil
		case ferr != nil:
			return groupDropOne, i, ferr, nil
		}
	}
	if !slices.ContainsFunc(batch, func(r *request) bool { return r != nil }) {
		return groupCommitted, -1, nil, nil
	}
	sent, err := t.commit()
	switch {
	case err == nil:
		s.noteClaims(t)
		s.cacheWrites(t)
		return groupCommitted, -1, nil, nil
	case !sent && t.errOwner != -1:
		// A queued write of one function (or a bulk one) failed, and the
		// server skipped COMMIT.
		return failed(nil)
	case !sent:
		if ctx.Err() == nil && retryable(err) {
			return groupRetry, -1, err, t.held()
		}
		return groupFailed, -1, err, nil
	}
	// The connection broke while COMMIT was under way.
	return s.resolve(t, len(batch), err)
}

// namedRuns returns the runs that the Updates of batch name
// (store.ForRun), sorted.
func namedRuns(batch []*request) []string {
	var ids []string
	for _, r := range batch {
		if id := store.RunOf(r.ctx); id != "" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// The claimed set: the steps and items this process's engine claimed (wrote
// running) and has not yet written otherwise, by run, as far as the groups
// that committed tell. When an Update first reads a run (or one of those
// steps), it reads and locks that run's claimed steps with it, in the same
// round trip: the functions of a group that record workers' outcomes then
// find their steps in the transaction's memory. It is a guess: a step
// another process took over, or that ended, is dropped when a read finds it
// so. Nothing outside the runs a function reads is locked for it.

// maxClaimed bounds the claimed set.
const maxClaimed = 4096

// noteClaims brings the claimed set up to date with a group that
// committed.
func (s *Store) noteClaims(t *tx) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, id := range t.deleted {
		s.nclaimed -= len(s.claimed[id])
		delete(s.claimed, id)
	}
	for k, running := range t.claims {
		set := s.claimed[k.run]
		switch {
		case running && s.nclaimed < maxClaimed:
			if set == nil {
				set = map[stepKey]struct{}{}
				s.claimed[k.run] = set
			}
			if _, ok := set[k]; !ok {
				set[k] = struct{}{}
				s.nclaimed++
			}
		case !running && set != nil:
			s.unclaimLocked(k)
		}
	}
}

// unclaim drops keys from the claimed set.
func (s *Store) unclaim(keys []stepKey) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	for _, k := range keys {
		s.unclaimLocked(k)
	}
}

func (s *Store) unclaimLocked(k stepKey) {
	set := s.claimed[k.run]
	if _, ok := set[k]; !ok {
		return
	}
	delete(set, k)
	s.nclaimed--
	if len(set) == 0 {
		delete(s.claimed, k.run)
	}
}

// claimedOf returns the claimed steps of run id.
func (s *Store) claimedOf(id string) []stepKey {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	set := s.claimed[id]
	if len(set) == 0 {
		return nil
	}
	keys := make([]stepKey, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	return keys
}

// isClaimed reports whether k is in the claimed set.
func (s *Store) isClaimed(k stepKey) bool {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	_, ok := s.claimed[k.run][k]
	return ok
}

// compact returns batch without its nil entries.
func compact(batch []*request) []*request {
	live := batch[:0]
	for _, r := range batch {
		if r != nil {
			live = append(live, r)
		}
	}
	clear(batch[len(live):])
	return live
}

// call runs r's function on t, catching a panic for its caller.
func call(r *request, t *tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.pv = p
		}
	}()
	return r.fn(t)
}

// resolve finds out, after the connection broke while COMMIT was under way,
// whether transaction xid committed, by asking PostgreSQL on another
// connection (txid_status), and logs what happened.
func (s *Store) resolve(t *tx, n int, cause error) (groupOutcome, int, error, []string) {
	xid := t.xid
	unknown := fmt.Errorf("postgres: the connection broke while committing; the transaction may or may not have been committed: %w", cause)
	s.stats.commitsLost.Add(1)
	if xid == 0 {
		// The transaction began in the batch that was lost (every read
		// was answered from the row cache): its rows tell.
		return s.resolveByRows(t, n, cause, unknown)
	}
	ctx, cancel := context.WithTimeout(s.closing, 30*time.Second)
	defer cancel()
	for try := 0; ; try++ {
		var status *string
		err := s.pool.QueryRow(ctx, "SELECT txid_status($1)", xid).Scan(&status)
		switch {
		case err != nil:
		case status == nil:
			err = errors.New("txid_status knows the transaction no more")
		case *status == "committed":
			s.stats.commitsResolved.Add(1)
			s.noteClaims(t)
			s.cacheWrites(t)
			s.log.Warn("postgres: the connection broke while committing; the transaction had committed",
				"xid", xid, "functions", n, "error", cause)
			return groupCommitted, -1, nil, nil
		case *status == "aborted":
			s.stats.commitsResolved.Add(1)
			s.log.Warn("postgres: the connection broke while committing; the transaction had not committed, so its functions run again",
				"xid", xid, "functions", n, "error", cause)
			return groupRetry, -1, cause, nil
		default: // in progress: its backend has not finished yet
			err = fmt.Errorf("the transaction is %s", *status)
		}
		if !s.sleep(ctx, backoff(min(try, 4))) {
			s.log.Error("postgres: the connection broke while committing, and the transaction's outcome could not be read",
				"xid", xid, "functions", n, "error", cause, "lookup", err)
			return groupFailed, -1, unknown, nil
		}
	}
}
