// Package bolt is dagflow's default store: one bbolt file on local disk,
// durable (every commit is fsynced) and used by one engine process at a time.
//
// Concurrent Updates are committed in groups: one goroutine takes every
// transaction function waiting at that moment, runs them in one bbolt
// transaction and commits it with one fsync, then wakes all their callers.
// There is no timer: a lone caller commits at once, and callers that arrive
// while a commit is under way share the next one. When one function of a
// group fails, the group's transaction is rolled back and run again without
// it, so its error is returned and nothing it wrote is kept.
//
// On 64-bit systems other than Windows the store maps 1 GiB of address space
// for the file from the start, so that bbolt does not map it again each
// time it grows; bbolt then lengthens the file in steps of 16 MiB, which take
// no disk space until written on file systems with sparse files (ext4, XFS,
// tmpfs, APFS). A new file is 16 MiB long.
//
// The file records the version of its layout. Open brings a file written
// by an earlier dagflow up to date, in the transaction that opens it (after
// which earlier versions refuse it), and refuses a file of a later version.
package bolt

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/dagflow/dagflow/store"
)

// Options configure Open.
type Options struct {
	// Timeout is how long Open waits for a file that another process holds
	// before it fails. Zero means one second.
	Timeout time.Duration
	// NoSync skips fsync on commit. A crash can then lose or corrupt the
	// database; it is for tests and benchmarks that measure everything
	// but the disk.
	NoSync bool
	// ReadOnly opens the file to read it only: it is not changed (its
	// schema is not brought up to date either), Update returns an error
	// matching store.ErrReadOnly, and several processes may read the file
	// at once, though not while one holds it to write.
	ReadOnly bool
}

// initialMmapSize is how much of the file bbolt maps at first: 1 GiB of
// address space on 64-bit systems. Without it bbolt maps a small file small
// and maps it again each time the file outgrows the mapping, doubling, and
// each time it first copies every key and value the write transaction under
// way holds out of the old mapping, and waits for every read transaction to
// end. A mapping larger than the file costs address space, not memory, and
// does not grow the file; on Windows it would, so there bbolt keeps its
// default.
var initialMmapSize = func() int {
	if strconv.IntSize == 64 && runtime.GOOS != "windows" {
		return 1 << 30
	}
	return 0
}()

// ErrLocked is returned by Open, wrapped, when another process holds the
// file and Options.Timeout passed.
var ErrLocked = errors.New("the file is in use by another process (or by another Open of it in this one)")

// schemaVersion is the layout of the file; Open refuses newer versions and
// brings older ones up to date (see migrate).
//
//   - 1: as 2, and a bucket "stepdue" kept each due step's due time by step
//     key, a copy of what the step's record holds.
//   - 2: a step's due time is read from its record.
//   - 3: map items, events, schedules, concurrency slots and the index of
//     steps waiting for an event have buckets of their own; an attempt's key
//     has the item after the step; records have more fields at their end.
const schemaVersion = 3

var (
	bMeta      = []byte("meta")
	bRuns      = []byte("runs")
	bCreated   = []byte("created")
	bSpecs     = []byte("specs")
	bSteps     = []byte("steps")
	bDue       = []byte("due")
	bAttempts  = []byte("attempts")
	bHooks     = []byte("hooks")
	bHookDue   = []byte("hookdue")
	bItems     = []byte("items")
	bWaiting   = []byte("waiting")
	bEvents    = []byte("events")
	bSchedules = []byte("schedules")
	bSlots     = []byte("slots")
	allBuckets = [][]byte{bMeta, bRuns, bCreated, bSpecs, bSteps, bDue, bAttempts, bHooks, bHookDue,
		bItems, bWaiting, bEvents, bSchedules, bSlots}
	keyVersion = []byte("version")
)

// Store is a store.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	db       *bbolt.DB
	path     string
	readOnly bool

	mu      sync.Mutex
	pending []*request
	closed  bool
	kick    chan struct{}
	done    chan struct{}
	wg      sync.WaitGroup // transactions under way
}

type request struct {
	fn   func(store.Tx) error
	err  error
	done chan struct{}
}

// Open opens (creating it if needed) the database file at path.
func Open(path string, o Options) (s *Store, err error) {
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	defer func() {
		if p := recover(); p != nil {
			s, err = nil, fmt.Errorf("bolt: opening %s: the file is corrupt or not a database: %v", path, p)
		}
	}()
	if o.ReadOnly {
		// bbolt would try to initialize an empty file, and fail on the
		// descriptor it opened to read.
		if fi, err := os.Stat(path); err == nil && fi.Size() == 0 {
			return nil, fmt.Errorf("bolt: opening %s: not a dagflow database: the file is empty", path)
		}
	}
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		ReadOnly:        o.ReadOnly,
		Timeout:         o.Timeout,
		NoSync:          o.NoSync,
		NoFreelistSync:  true,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: initialMmapSize,
	})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("bolt: opening %s: %w (waited %v for its lock)", path, ErrLocked, o.Timeout)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			return nil, fmt.Errorf("bolt: opening %s: not a dagflow database, or corrupt: %w", path, err)
		}
		return nil, fmt.Errorf("bolt: opening %s: %w", path, err)
	}
	if err := initialize(db, path); err != nil {
		db.Close()
		return nil, err
	}
	s = &Store{db: db, path: path, readOnly: o.ReadOnly, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.commitLoop()
	return s, nil
}

// initialize creates the buckets of a new file, and checks that an existing
// one is a dagflow database of this version.
func initialize(db *bbolt.DB, path string) error {
	run := db.Update
	if db.IsReadOnly() {
		run = db.View
	}
	return run(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bMeta)
		if meta == nil && !tx.Writable() {
			return fmt.Errorf("bolt: %s: not a dagflow database (no schema version)", path)
		}
		if meta == nil {
			var names []string
			tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
				names = append(names, string(name))
				return nil
			})
			if len(names) > 0 {
				return fmt.Errorf("bolt: %s is a bbolt database of another program (its buckets: %v), not a dagflow database", path, names)
			}
			for _, b := range allBuckets {
				if _, err := tx.CreateBucket(b); err != nil {
					return fmt.Errorf("bolt: initializing %s: %w", path, err)
				}
			}
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], schemaVersion)
			return tx.Bucket(bMeta).Put(keyVersion, v[:])
		}
		v := meta.Get(keyVersion)
		if len(v) != 8 {
			return fmt.Errorf("bolt: %s: not a dagflow database (no schema version)", path)
		}
		got := binary.BigEndian.Uint64(v)
		if got > schemaVersion {
			return fmt.Errorf("bolt: %s was written by a newer dagflow (schema %d; this one reads %d)", path, got, schemaVersion)
		}
		if got < 1 {
			return fmt.Errorf("bolt: %s has schema %d, which this dagflow cannot read (it reads %d)", path, got, schemaVersion)
		}
		if got < schemaVersion && tx.Writable() { // read-only, it reads as it is
			if err := migrate(tx, got); err != nil {
				return fmt.Errorf("bolt: %s: bringing schema %d up to %d: %w", path, got, schemaVersion, err)
			}
		}
		for _, b := range allBuckets {
			if tx.Bucket(b) == nil {
				return fmt.Errorf("bolt: %s: not a dagflow database (bucket %q is missing)", path, b)
			}
		}
		return nil
	})
}

// migrate brings a file of schema from up to schemaVersion, in the
// transaction that opens it: a crash leaves it as it was.
func migrate(tx *bbolt.Tx, from uint64) error {
	if from < 2 {
		// The due times of steps are in the steps' records.
		if err := tx.DeleteBucket([]byte("stepdue")); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
			return err
		}
	}
	if from < 3 {
		for _, b := range [][]byte{bItems, bWaiting, bEvents, bSchedules, bSlots} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		// Attempt keys gain the item (0) after the step.
		atts := tx.Bucket(bAttempts)
		type kv struct{ k, v []byte }
		var all []kv
		c := atts.Cursor()
		for k, v := c.First(); k != nil; k, v = c.Next() {
			all = append(all, kv{append([]byte(nil), k...), append([]byte(nil), v...)})
		}
		for _, e := range all {
			a, err := decodeAttempt(e.v)
			if err != nil {
				return err
			}
			if err := atts.Delete(e.k); err != nil {
				return err
			}
			if err := atts.Put(attemptKey(&a), encodeAttempt(&a)); err != nil {
				return err
			}
		}
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], schemaVersion)
	return tx.Bucket(bMeta).Put(keyVersion, v[:])
}

// Exclusive reports true: the file is locked by the process that opened it.
func (s *Store) Exclusive() bool { return true }

// Path returns the file's path.
func (s *Store) Path() string { return s.path }

// Update runs fn in a read-write transaction, grouped with the other
// Updates waiting at the same moment into one bbolt commit.
func (s *Store) Update(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.readOnly {
		return fmt.Errorf("bolt: %s was opened read-only: %w", s.path, store.ErrReadOnly)
	}
	r := &request{fn: fn, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.wg.Add(1)
	s.pending = append(s.pending, r)
	s.mu.Unlock()
	select {
	case s.kick <- struct{}{}:
	default:
	}
	<-r.done
	s.wg.Done()
	return r.err
}

func (s *Store) commitLoop() {
	for {
		select {
		case <-s.kick:
		case <-s.done:
			return
		}
		// Let callers that are about to arrive join this group.
		runtime.Gosched()
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			s.commit(batch)
		}
	}
}

// errFnFailed rolls back a group in which one function failed.
var errFnFailed = errors.New("bolt: a transaction function failed")

func (s *Store) commit(batch []*request) {
	for len(batch) > 0 {
		failed := -1
		err := s.db.Update(func(btx *bbolt.Tx) error {
			t := newTx(btx, true)
			for i, r := range batch {
				if err := call(r.fn, t); err != nil {
					r.err, failed = err, i
					return errFnFailed
				}
			}
			return t.flushDue()
		})
		if err == errFnFailed {
			// Report the failed function's error and commit the others
			// without it: its writes are gone with the rollback.
			close(batch[failed].done)
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			continue
		}
		for _, r := range batch {
			r.err = err
			close(r.done)
		}
		return
	}
}

// call runs fn, turning a panic (a corrupt page deep in bbolt, say) into an
// error.
func call(fn func(store.Tx) error, t store.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("bolt: transaction panicked (is the file corrupt?): %v", p)
		}
	}()
	return fn(t)
}

// View runs fn in a read-only bbolt transaction.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	return s.db.View(func(btx *bbolt.Tx) error { return call(fn, newTx(btx, false)) })
}

// Close waits for transactions under way and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.wg.Wait()
	close(s.done)
	return s.db.Close()
}

// tx implements store.Tx over a bbolt transaction.
type tx struct {
	b     *bbolt.Tx
	write bool
	// open holds the buckets opened so far (see bucket).
	open [13]struct {
		name []byte
		b    *bbolt.Bucket
	}
	// known is the last run this transaction found or wrote, so that the
	// steps of one run put one after another check it exists once;
	// knownCreated is its creation time, so that putting it back need not
	// read it again to keep the index by creation time.
	known        string
	knownCreated time.Time
	// memo holds what the indexes know of the records this transaction
	// read or wrote last (their due time, their event), so that putting a
	// record back need not read it again to find the index entries it
	// replaces.
	memo [8]recordMemo
	next int // the entry of memo to fill next
	// pending holds the changes of the due index this transaction made
	// and has not written yet, by record key: a step made ready and
	// claimed in one transaction (a chain's next step, claimed by the
	// worker that completed the one before) then touches no page of the
	// index. Written before the index is read, and before the commit.
	pending map[string]duePending
}

// duePending is a record's due time as the index holds it (from) and as
// the transaction last wrote it (to).
type duePending struct{ from, to time.Time }

// flushDue writes the pending changes of the due index.
func (t *tx) flushDue() error {
	for k, p := range t.pending {
		if p.from.Equal(p.to) {
			continue
		}
		if !p.from.IsZero() {
			if err := t.bucket(bDue).Delete(timeKey(p.from, []byte(k))); err != nil {
				return err
			}
		}
		if !p.to.IsZero() {
			if err := t.bucket(bDue).Put(timeKey(p.to, []byte(k)), nil); err != nil {
				return err
			}
		}
	}
	clear(t.pending)
	return nil
}

// recordMemo is what the indexes hold of a step or item as stored.
type recordMemo struct {
	run         string
	index, item int
	due         time.Time
	wait        string // its key in the waiting index, or ""
}

func (t *tx) remember(st *store.Step) {
	m := recordMemo{st.RunID, st.Index, st.Item, st.DueAt, waitKey(st)}
	for i := range t.memo {
		if p := &t.memo[i]; p.run == st.RunID && p.index == st.Index && p.item == st.Item {
			*p = m
			return
		}
	}
	t.memo[t.next] = m
	t.next = (t.next + 1) % len(t.memo)
}

// stored returns what the indexes hold of the record at key k, and whether
// there is a record.
func (t *tx) stored(st *store.Step, k []byte) (recordMemo, bool, error) {
	for i := range t.memo {
		if m := &t.memo[i]; m.run == st.RunID && m.index == st.Index && m.item == st.Item && m.run != "" {
			return *m, true, nil
		}
	}
	data := t.bucketOf(st.Item).Get(k)
	if data == nil {
		return recordMemo{}, false, nil
	}
	old, err := wrapDecode(decodeStep(data))
	if err != nil {
		return recordMemo{}, false, err
	}
	return recordMemo{old.RunID, old.Index, old.Item, old.DueAt, waitKey(&old)}, true, nil
}

// waitKey is a record's key in the waiting index, or "".
func waitKey(st *store.Step) string {
	if st.State != store.StepWaiting || st.Event == "" {
		return ""
	}
	return eventPrefix(st.Event, st.EventKey)
}

// exists reports whether a run is stored.
func (t *tx) exists(runID string) bool {
	if runID == t.known && runID != "" {
		return true
	}
	if t.bucket(bRuns).Get(runKey(runID)) == nil {
		return false
	}
	t.known, t.knownCreated = runID, time.Time{}
	return true
}

func newTx(b *bbolt.Tx, write bool) *tx {
	return &tx{b: b, write: write}
}

// bucket returns the bucket named name, opened on its first use: a View that
// reads one run needs two of the thirteen.
func (t *tx) bucket(name []byte) *bbolt.Bucket {
	for i := range t.open {
		if o := &t.open[i]; o.b == nil {
			o.name, o.b = name, t.b.Bucket(name)
			return o.b
		} else if string(o.name) == string(name) {
			return o.b
		}
	}
	return t.b.Bucket(name)
}

var _ store.Exclusive = (*Store)(nil)

// Keys. A run's records share the prefix runKey(id): a two-byte length and
// the id, so that no id is a prefix of another's key. A step's key adds its
// index; an item's (in a bucket of its own) adds the item too. The index of
// runs by creation time is keyed by the time and the bare id, so that runs
// created at the same instant sort by id. The due index is keyed by the due
// time and the key of the step or item: their lengths tell them apart.

func runKey(id string) []byte {
	k := make([]byte, 2+len(id), 2+len(id)+16)
	binary.BigEndian.PutUint16(k, uint16(len(id)))
	copy(k[2:], id)
	return k
}

// recordKey is the key of a step (item 0) or of an item.
func recordKey(runID string, index, item int) []byte {
	k := binary.BigEndian.AppendUint32(runKey(runID), uint32(index))
	if item > 0 {
		k = binary.BigEndian.AppendUint32(k, uint32(item))
	}
	return k
}

// isItemKey tells an item's key from a step's.
func isItemKey(k []byte) bool {
	return len(k) >= 2 && len(k) == 2+int(binary.BigEndian.Uint16(k))+8
}

func (t *tx) bucketOf(item int) *bbolt.Bucket {
	if item > 0 {
		return t.bucket(bItems)
	}
	return t.bucket(bSteps)
}

func timeKey(t time.Time, rest []byte) []byte {
	k := make([]byte, 8, 8+len(rest))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63))
	return append(k, rest...)
}

func keyTime(k []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(k)^(1<<63))).UTC()
}

// eventPrefix is the prefix of the keys of an event name and key, in the
// events bucket and the waiting index.
func eventPrefix(name, key string) string {
	b := binary.BigEndian.AppendUint16(nil, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(key)))
	return string(append(b, key...))
}

// wrapDecode names the store in a decoding error.
func wrapDecode[T any](v T, err error) (T, error) {
	if err != nil {
		return v, fmt.Errorf("bolt: decoding a record: %w", err)
	}
	return v, nil
}

func (t *tx) Run(id string) (store.Run, error) {
	data := t.bucket(bRuns).Get(runKey(id))
	if data == nil {
		return store.Run{}, store.ErrNotFound
	}
	r, err := wrapDecode(decodeRun(data))
	if err == nil {
		t.known, t.knownCreated = id, r.CreatedAt
	}
	return r, err
}

func (t *tx) PutRun(r store.Run) error {
	if !t.write {
		return store.ErrReadOnly
	}
	k := runKey(r.ID)
	index := true // the run needs its entry in the index by creation time
	if r.ID == t.known && !t.knownCreated.IsZero() && t.knownCreated.Equal(r.CreatedAt) {
		index = false
	} else if old := t.bucket(bRuns).Get(k); old != nil {
		prev, err := wrapDecode(decodeRun(old))
		if err != nil {
			return err
		}
		if prev.CreatedAt.Equal(r.CreatedAt) {
			index = false
		} else if err := t.bucket(bCreated).Delete(timeKey(prev.CreatedAt, []byte(r.ID))); err != nil {
			return err
		}
	}
	if index {
		if err := t.bucket(bCreated).Put(timeKey(r.CreatedAt, []byte(r.ID)), nil); err != nil {
			return err
		}
	}
	t.known, t.knownCreated = r.ID, r.CreatedAt
	return t.bucket(bRuns).Put(k, encodeRun(&r))
}

func (t *tx) Runs(q store.RunQuery) ([]store.Run, error) {
	out := []store.Run{}
	c := t.bucket(bCreated).Cursor()
	var k []byte
	if q.Before != nil {
		seek := timeKey(q.Before.CreatedAt, []byte(q.Before.ID))
		k, _ = c.Seek(seek)
		if k == nil {
			k, _ = c.Last()
		}
		// Seek lands on the cursor's own key or the first after it;
		// both are excluded.
		for k != nil && string(k) >= string(seek) {
			k, _ = c.Prev()
		}
	} else {
		k, _ = c.Last()
	}
	for ; k != nil; k, _ = c.Prev() {
		if len(k) < 8 {
			continue
		}
		data := t.bucket(bRuns).Get(runKey(string(k[8:])))
		if data == nil {
			continue
		}
		r, err := wrapDecode(decodeRun(data))
		if err != nil {
			return nil, err
		}
		switch {
		case q.State != "" && r.State != q.State,
			q.IDContains != "" && !strings.Contains(r.ID, q.IDContains),
			q.Parent != "" && r.Parent != q.Parent,
			!q.EndedBefore.IsZero() && (!r.State.Final() || !r.CompletedAt.Before(q.EndedBefore)):
			continue
		}
		out = append(out, r)
		if q.Limit > 0 && len(out) == q.Limit {
			break
		}
	}
	return out, nil
}

// deletePrefix deletes every key of b that starts with prefix, and calls
// each with it first.
func deletePrefix(b *bbolt.Bucket, prefix []byte, each func(k, v []byte) error) error {
	var keys [][]byte
	c := b.Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		if each != nil {
			if err := each(k, v); err != nil {
				return err
			}
		}
		keys = append(keys, append([]byte(nil), k...))
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

func hasPrefix(k, prefix []byte) bool {
	return len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}

func (t *tx) DeleteRun(id string) error {
	if !t.write {
		return store.ErrReadOnly
	}
	r, err := t.Run(id)
	if err != nil {
		return err
	}
	if err := t.flushDue(); err != nil {
		return err
	}
	k := runKey(id)
	t.known, t.knownCreated = "", time.Time{}
	if err := t.bucket(bCreated).Delete(timeKey(r.CreatedAt, []byte(id))); err != nil {
		return err
	}
	if err := t.bucket(bRuns).Delete(k); err != nil {
		return err
	}
	if err := t.bucket(bSpecs).Delete(k); err != nil {
		return err
	}
	t.memo = [len(t.memo)]recordMemo{}
	unindex := func(sk, v []byte) error {
		st, err := wrapDecode(decodeStep(v))
		if err != nil {
			return err
		}
		if !st.DueAt.IsZero() {
			if err := t.bucket(bDue).Delete(timeKey(st.DueAt, sk)); err != nil {
				return err
			}
		}
		if w := waitKey(&st); w != "" {
			return t.bucket(bWaiting).Delete(append([]byte(w), sk...))
		}
		return nil
	}
	if err := deletePrefix(t.bucket(bSteps), k, unindex); err != nil {
		return err
	}
	if err := deletePrefix(t.bucket(bItems), k, unindex); err != nil {
		return err
	}
	if err := deletePrefix(t.bucket(bAttempts), k, nil); err != nil {
		return err
	}
	return deletePrefix(t.bucket(bHooks), k, func(hk, v []byte) error {
		w, err := wrapDecode(decodeWebhook(v))
		if err != nil {
			return err
		}
		if !w.DueAt.IsZero() {
			return t.bucket(bHookDue).Delete(timeKey(w.DueAt, hk))
		}
		return nil
	})
}

func (t *tx) Spec(runID string) (json.RawMessage, error) {
	data := t.bucket(bSpecs).Get(runKey(runID))
	if data == nil {
		return nil, store.ErrNotFound
	}
	return append(json.RawMessage(nil), data...), nil
}

func (t *tx) PutSpec(runID string, spec json.RawMessage) error {
	if !t.write {
		return store.ErrReadOnly
	}
	k := runKey(runID)
	if t.bucket(bRuns).Get(k) == nil {
		return store.ErrNotFound
	}
	return t.bucket(bSpecs).Put(k, spec)
}

func (t *tx) Step(runID string, index, item int) (store.Step, error) {
	data := t.bucketOf(item).Get(recordKey(runID, index, item))
	if data == nil {
		return store.Step{}, store.ErrNotFound
	}
	st, err := wrapDecode(decodeStep(data))
	if err == nil && t.write {
		t.remember(&st)
	}
	return st, err
}

func (t *tx) PutStep(st store.Step) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if st.Index < 0 || st.Item < 0 || !t.exists(st.RunID) {
		return store.ErrNotFound
	}
	k := recordKey(st.RunID, st.Index, st.Item)
	old, found, err := t.stored(&st, k)
	if err != nil {
		return err
	}
	if old.due.IsZero() != st.DueAt.IsZero() || (!old.due.IsZero() && old.due.UnixNano() != st.DueAt.UnixNano()) {
		if t.pending == nil {
			t.pending = map[string]duePending{}
		}
		p, ok := t.pending[string(k)]
		if !ok {
			p.from = old.due // as the index holds it (zero for a new record)
		}
		p.to = st.DueAt
		t.pending[string(k)] = p
	}
	if w := waitKey(&st); w != old.wait {
		if found && old.wait != "" {
			if err := t.bucket(bWaiting).Delete(append([]byte(old.wait), k...)); err != nil {
				return err
			}
		}
		if w != "" {
			if err := t.bucket(bWaiting).Put(append([]byte(w), k...), nil); err != nil {
				return err
			}
		}
	}
	t.remember(&st)
	return t.bucketOf(st.Item).Put(k, encodeStep(&st))
}

func (t *tx) Steps(runID string) ([]store.Step, error) {
	return t.scan(t.bucket(bSteps), runKey(runID))
}

func (t *tx) Items(runID string, index int) ([]store.Step, error) {
	return t.scan(t.bucket(bItems), recordKey(runID, index, 0))
}

func (t *tx) scan(b *bbolt.Bucket, prefix []byte) ([]store.Step, error) {
	// Count first, so that a run of many steps is not copied over and over
	// as the list grows.
	n := 0
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	out := make([]store.Step, 0, n)
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		st, err := wrapDecode(decodeStep(v))
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// record reads the step or item at key k.
func (t *tx) record(k []byte) (store.Step, bool, error) {
	b := t.bucket(bSteps)
	if isItemKey(k) {
		b = t.bucket(bItems)
	}
	data := b.Get(k)
	if data == nil {
		return store.Step{}, false, nil
	}
	st, err := wrapDecode(decodeStep(data))
	return st, err == nil, err
}

func (t *tx) DueSteps(now time.Time, max int) ([]store.Step, error) {
	out := []store.Step{}
	if max <= 0 {
		return out, nil
	}
	if err := t.flushDue(); err != nil {
		return nil, err
	}
	c := t.bucket(bDue).Cursor()
	for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
		if len(k) < 8 || keyTime(k).After(now) {
			break
		}
		st, ok, err := t.record(k[8:])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, st)
		}
	}
	return out, nil
}

func (t *tx) NextDue() (time.Time, error) {
	if err := t.flushDue(); err != nil {
		return time.Time{}, err
	}
	var next time.Time
	for _, b := range []*bbolt.Bucket{t.bucket(bDue), t.bucket(bHookDue)} {
		if k, _ := b.Cursor().First(); len(k) >= 8 {
			if at := keyTime(k); next.IsZero() || at.Before(next) {
				next = at
			}
		}
	}
	return next, nil
}

func (t *tx) Waiting(event, key string) ([]store.Step, error) {
	out := []store.Step{}
	prefix := []byte(eventPrefix(event, key))
	c := t.bucket(bWaiting).Cursor()
	for k, _ := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, _ = c.Next() {
		st, ok, err := t.record(k[len(prefix):])
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, st)
		}
	}
	return out, nil
}

func attemptKey(a *store.Attempt) []byte {
	k := binary.BigEndian.AppendUint32(recordKey(a.RunID, a.Index, 0), uint32(a.Item))
	comp := byte(0)
	if a.Compensation {
		comp = 1
	}
	k = append(k, comp)
	k = binary.BigEndian.AppendUint32(k, uint32(a.Generation))
	return binary.BigEndian.AppendUint32(k, uint32(a.Number))
}

func (t *tx) PutAttempt(a store.Attempt) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if !t.exists(a.RunID) {
		return store.ErrNotFound
	}
	return t.bucket(bAttempts).Put(attemptKey(&a), encodeAttempt(&a))
}

func (t *tx) Attempts(runID string, index int) ([]store.Attempt, error) {
	out := []store.Attempt{}
	prefix := runKey(runID)
	if index >= 0 {
		prefix = recordKey(runID, index, 0)
	}
	c := t.bucket(bAttempts).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		a, err := wrapDecode(decodeAttempt(v))
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, nil
}

func (t *tx) PutWebhook(w store.Webhook) error {
	if !t.write {
		return store.ErrReadOnly
	}
	rk := runKey(w.RunID)
	if t.bucket(bRuns).Get(rk) == nil {
		return store.ErrNotFound
	}
	k := append(rk, w.ID...)
	if old := t.bucket(bHooks).Get(k); old != nil {
		prev, err := wrapDecode(decodeWebhook(old))
		if err != nil {
			return err
		}
		if !prev.DueAt.IsZero() {
			if err := t.bucket(bHookDue).Delete(timeKey(prev.DueAt, k)); err != nil {
				return err
			}
		}
	}
	if !w.DueAt.IsZero() {
		if err := t.bucket(bHookDue).Put(timeKey(w.DueAt, k), nil); err != nil {
			return err
		}
	}
	return t.bucket(bHooks).Put(k, encodeWebhook(&w))
}

func (t *tx) Webhooks(runID string) ([]store.Webhook, error) {
	out := []store.Webhook{}
	prefix := runKey(runID)
	c := t.bucket(bHooks).Cursor()
	for k, v := c.Seek(prefix); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		w, err := wrapDecode(decodeWebhook(v))
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func (t *tx) DueWebhooks(now time.Time, max int) ([]store.Webhook, error) {
	out := []store.Webhook{}
	c := t.bucket(bHookDue).Cursor()
	for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
		if len(k) < 8 || keyTime(k).After(now) {
			break
		}
		data := t.bucket(bHooks).Get(k[8:])
		if data == nil {
			continue
		}
		w, err := wrapDecode(decodeWebhook(data))
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// Events are keyed by name and key (eventPrefix), then the time they were
// sent and their id, so that Events reads one range in order; the records
// are JSON, as are those of schedules and slots, which are written rarely.

func eventKey(ev *store.Event) []byte {
	k := append([]byte(eventPrefix(ev.Name, ev.Key)), timeKey(ev.SentAt, nil)...)
	return append(k, ev.ID...)
}

func (t *tx) PutEvent(ev store.Event) error {
	if !t.write {
		return store.ErrReadOnly
	}
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	return t.bucket(bEvents).Put(eventKey(&ev), data)
}

func (t *tx) Events(name, key string, since time.Time) ([]store.Event, error) {
	out := []store.Event{}
	prefix := []byte(eventPrefix(name, key))
	c := t.bucket(bEvents).Cursor()
	for k, v := c.Seek(append(append([]byte(nil), prefix...), timeKey(since, nil)...)); k != nil && hasPrefix(k, prefix); k, v = c.Next() {
		var ev store.Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return nil, fmt.Errorf("bolt: decoding an event: %w", err)
		}
		out = append(out, ev)
	}
	return out, nil
}

func (t *tx) DeleteEvents(before time.Time, max int) (int, error) {
	if !t.write {
		return 0, store.ErrReadOnly
	}
	var keys [][]byte
	c := t.bucket(bEvents).Cursor()
	for k, v := c.First(); k != nil && len(keys) < max; k, v = c.Next() {
		var ev store.Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return 0, fmt.Errorf("bolt: decoding an event: %w", err)
		}
		if ev.SentAt.Before(before) {
			keys = append(keys, append([]byte(nil), k...))
		}
	}
	for _, k := range keys {
		if err := t.bucket(bEvents).Delete(k); err != nil {
			return 0, err
		}
	}
	return len(keys), nil
}

func (t *tx) Schedule(id string) (store.Schedule, error) {
	var s store.Schedule
	data := t.bucket(bSchedules).Get([]byte(id))
	if data == nil {
		return s, store.ErrNotFound
	}
	err := json.Unmarshal(data, &s)
	return s, err
}

func (t *tx) PutSchedule(s store.Schedule) error {
	if !t.write {
		return store.ErrReadOnly
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.bucket(bSchedules).Put([]byte(s.ID), data)
}

func (t *tx) DeleteSchedule(id string) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if t.bucket(bSchedules).Get([]byte(id)) == nil {
		return store.ErrNotFound
	}
	return t.bucket(bSchedules).Delete([]byte(id))
}

func (t *tx) Schedules() ([]store.Schedule, error) {
	out := []store.Schedule{}
	err := t.bucket(bSchedules).ForEach(func(_, v []byte) error {
		var s store.Schedule
		if err := json.Unmarshal(v, &s); err != nil {
			return err
		}
		out = append(out, s)
		return nil
	})
	return out, err
}

func (t *tx) Slots(key string) (store.Slots, error) {
	var s store.Slots
	data := t.bucket(bSlots).Get([]byte(key))
	if data == nil {
		return s, store.ErrNotFound
	}
	err := json.Unmarshal(data, &s)
	return s, err
}

func (t *tx) PutSlots(s store.Slots) error {
	if !t.write {
		return store.ErrReadOnly
	}
	if len(s.Holders) == 0 && len(s.Queue) == 0 {
		return t.bucket(bSlots).Delete([]byte(s.Key))
	}
	data, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return t.bucket(bSlots).Put([]byte(s.Key), data)
}
