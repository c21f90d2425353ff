// Package postgres is a store.Store on PostgreSQL, for several dagflow engine
// processes, on one machine or many, that share one database.
//
// It needs PostgreSQL 11 or later (it is tested on 15) and talks to it with
// github.com/jackc/pgx/v5 through a pgxpool.Pool.
//
//	pg, err := postgres.Open(ctx, "postgres://dagflow@db.internal/app", postgres.Options{})
//	...
//	eng, err := dagflow.Open(dagflow.WithStore(pg))
//
// # Schema
//
// The store keeps its tables in one PostgreSQL schema (Options.Schema,
// "dagflow" by default, so that its tables named runs or steps stay apart
// from the application's): runs, specs, steps (keyed by run, step index and
// item: the items of map steps share the table with the steps, item 0 being
// the step itself), attempts, webhooks, events, schedules, slots (the
// concurrency slots of a key), and schema_version, which records the
// migrations applied. Open creates the schema and applies the migrations
// embedded in this package that it lacks, in order, in one transaction that
// holds an advisory lock named after the schema, so that processes opening
// the store at the same moment do not trip over each other. Creating needs the CREATE
// privilege on the database; a role without it can open a schema that an
// administrator set up by opening it once. Open refuses a schema that a newer
// dagflow has migrated further than this one knows ("written by a newer
// dagflow"). Every statement names the schema: the store does not depend on
// search_path.
//
// # Transactions
//
// Update does not open a transaction per call: the functions of the Updates
// under way at the same moment in one process share one (group commit, see
// Update; at most Options.MaxBatch of them), run one after the other on one
// connection, and commit with one COMMIT. Options.Committers such groups run
// at once; the Updates of one run share a group. A function that fails keeps none
// of its changes and costs the others nothing; see Update.
//
// The transaction is READ COMMITTED, and every read locks the rows it
// returns (SELECT ... FOR NO KEY UPDATE) until it ends, so that concurrent
// Updates that read the same records run one after the other, as if
// serialized. (NextDue, an aggregate, locks nothing: the engine takes it as
// a hint of when to look again.) DueSteps and DueWebhooks skip rows that
// other transactions hold (FOR NO KEY UPDATE SKIP LOCKED), so that engines
// claiming work at the same moment get different steps and do not wait for
// each other. A function that reads a run (or the slots of a concurrency
// key) as missing and then writes it runs again if another transaction
// created it in the meantime.
//
// Row locks taken in different orders can deadlock. A transaction waits for
// the row of a run only when it holds no run with a greater id and has not
// read due steps: otherwise it takes the row only if it is free (SKIP
// LOCKED), and when it is not, the group runs again at once, first locking
// every run it needs in the order of their ids. (Reading due steps may leave
// a transaction holding rows it does not know of: PostgreSQL locks a row
// that another transaction changed before it finds the row no longer due,
// and keeps it locked; the holder of that row's run may be waiting for it.)
// A claim made while holding runs takes only due steps whose run is free
// too, and locks both. What is left (a step waited for
// while its run is held elsewhere, say) PostgreSQL would break after
// deadlock_timeout (one second by default); the store breaks it sooner with
// a lock timeout (Options.LockTimeout), and the group runs again after a
// backoff, first locking its runs in order.
//
// View runs its function in a READ ONLY, REPEATABLE READ transaction: one
// consistent snapshot, and no locks.
//
// Update and View run their functions again, with backoff, up to
// Options.MaxRetries times, when PostgreSQL aborts the transaction (a
// deadlock, a lock timeout, a serialization failure) and when the connection
// is lost before COMMIT was sent, or cannot be made: a database that
// restarts makes Updates wait and carry on, not fail. When the connection
// breaks while COMMIT is under way, Update asks PostgreSQL, on another
// connection, whether the transaction committed (txid_status of its id,
// read when it began): committed, its callers get nil; not committed, its
// functions run again. The store logs that once, with Options.Logger. Only
// when even that cannot be told does Update return an error saying the
// outcome is unknown.
//
// Round trips: BEGIN travels with the first statement, and writes are queued
// and sent in one pipelined batch with the next read that could see them
// (not with the read of another run's row, nor of a single step) or with
// COMMIT; the runs and steps written whole go in one multi-row statement
// each, when there are three or more. (An Update that reads and writes
// nothing costs none.) The transaction remembers the runs, steps and items
// it holds, as they now are, and answers reads of them without a round trip:
// the functions of a group that finish steps of one run read the run and its
// fan-in step once. When a run is first read, the steps of it that this
// process claimed, and those that the group's Updates name (store.ForRun:
// the engine names a completed step's dependents), are read with it, so
// that a worker's outcome finds its step and the steps it readies there; a
// run of at most 16 steps for which there are none is read whole instead.
// A transaction that reads more than a few steps of one run one by one
// reads the rest at once.
// A write of a record that belongs to a run (a step, an item, an attempt, a
// spec, a webhook) is queued only when the transaction holds that run or a
// record of it; otherwise it first checks the run, in a round trip of its
// own, so that it can return store.ErrNotFound itself. A write that
// PostgreSQL refuses (JSON that is not valid, say) fails the function that
// wrote it. The statements are prepared once per connection (pgx's
// statement cache), and Open's connections keep one plan for each
// (plan_cache_mode force_generic_plan) rather than planning it again on
// every execution, which cost a fifth of the server's time; the statements
// are written so that the one plan looks rows up by their keys.
//
// # Row cache
//
// A Store remembers the runs and steps its own Updates wrote (up to 16,384
// rows), with the id of the transaction that wrote each: PostgreSQL keeps it
// in the row, as xmin, until anyone writes the row again. An Update's first
// read of a run, with the steps read with it, and its reads of steps of a
// run it holds, are answered from that memory when it holds the rows: a
// worker's outcome then reads its run, its step and the steps that follow
// without a round trip, and its transaction costs one, with COMMIT. Before
// anything relies on such a read, the next batch the transaction sends (the
// one with COMMIT at the latest) first locks those rows, in the order reads
// lock them, and fails unless each still carries the id remembered
// (SQLSTATE DF001, from the function fresh the migrations create); nothing
// after it in the batch runs. The group then runs again at once, reading
// from the server, and the runs found changed are not remembered for two
// seconds, since another process writes them too. A function that fails
// for a reason of its own after such reads fails only once they are checked
// (a round trip of their own): an error that a stale row caused runs the
// group again instead. A read answered so is as good as the read with a
// lock it replaces. Stats counts the rows read from the cache and the groups
// run again for a stale one.
//
// A transaction whose reads the cache answered begins in the batch that
// commits it, so when that batch's answer is lost its id is unknown. Its
// rows then tell, read on another connection: a row it read from the cache
// and wrote that still has the xmin its check found was never written, so
// the transaction did not commit and its functions run again; one that holds
// what the transaction wrote, under a new xmin, says that it committed.
// Only when neither is found does Update return an error saying that the
// outcome is unknown.
//
// # Leases and fencing
//
// The engine records a claim on the step itself (owner, fencing token, lease
// expiry) and checks the token in the transaction that reports the outcome.
// That transaction reads the step with a row lock (or checks, with a lock,
// the step it remembered; see Row cache), so a claim taken over by
// another engine since (a new token) is seen and the outcome refused with
// store.ErrLeaseLost: PostgreSQL's row locks make the check and the write
// one atomic step. A Store is not store.Exclusive: an engine waits for
// leases of other processes to expire before it takes their steps over.
//
// # Watching
//
// A Store is a store.Watcher. Notify sends pg_notify on the channel
// "dagflow.<schema>" with a payload of "due", "schedules" or "run:<run id>".
// Watch holds a connection of its own (outside the pool) that LISTENs on
// that channel and delivers changes on a buffered channel, dropping them
// while the buffer is full (they are hints). When that connection breaks,
// Watch connects again with backoff and then delivers a ChangeDue and a
// ChangeSchedules, since notifications sent in between are lost. Close stops
// every Watch.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/dagflow/dagflow/store"
)

// DefaultSchema is the schema Open uses when Options.Schema is empty.
const DefaultSchema = "dagflow"

// DefaultMaxConns is the size of the pool Open creates when neither
// Options.MaxConns nor the DSN's pool_max_conns says otherwise.
const DefaultMaxConns = 16

// Options configure Open and New. The zero value is ready to use.
type Options struct {
	// Schema is the PostgreSQL schema that holds the store's tables; Open
	// creates it when it is missing. Empty means DefaultSchema ("dagflow").
	// Stores on different schemas of one database share nothing, not even
	// notifications.
	Schema string
	// MaxConns caps the connections of the pool that Open creates (New
	// uses the pool it is given as it is). Zero keeps the DSN's
	// pool_max_conns, or else DefaultMaxConns. Updates use one connection
	// at a time (their group's); each View under way holds one, and every
	// Watch holds one more, outside the pool.
	MaxConns int32
	// MaxRetries is how many times Update and View run their functions
	// again, after a backoff, after a deadlock, a lock timeout, a
	// serialization failure or a lost connection before they give up and
	// return the error. (Running a group again at once to take its rows
	// in order does not count.) Zero means
	// 10 (about six seconds of backoff, growing from 20 ms to 2 s); a
	// negative value means never.
	MaxRetries int
	// LockTimeout is how long a statement of an Update waits for a row
	// that another transaction holds before PostgreSQL gives up on the
	// transaction, which Update then runs again (as after a deadlock).
	// It breaks deadlocks well before PostgreSQL's deadlock detector
	// would (deadlock_timeout, one second by default). Zero means 250 ms;
	// a negative value leaves the server's lock_timeout as it is.
	LockTimeout time.Duration
	// MaxBatch bounds how many functions of concurrent Updates share one
	// transaction (see Update). Zero means DefaultMaxBatch; 1 gives each
	// Update a transaction of its own.
	MaxBatch int
	// Committers is how many groups of Updates run at once, each on a
	// connection of its own and fed by a queue of its own. Zero means
	// DefaultCommitters. An Update whose context names its run
	// (store.ForRun, as the engine's do) goes to the queue its run hashes
	// to, so that the Updates of one run share groups (a fan-out's
	// completions take its row once per group, not once per committer),
	// while those of other runs commit beside them; one that names no run
	// goes to the queues in turn. 1 puts every Update in one queue.
	Committers int
	// Logger receives what the store tells an operator: a COMMIT whose
	// outcome had to be looked up after the connection broke. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// DefaultMaxBatch is the most functions of concurrent Updates that share one
// transaction when Options.MaxBatch is zero.
const DefaultMaxBatch = 64

// DefaultCommitters is how many groups of Updates run at once when
// Options.Committers is zero. On a 2-core machine, 1,000 workflows of 5
// steps run 1.4x faster with four than with one, and a fan-out of one run
// as fast.
const DefaultCommitters = 4

func (o *Options) withDefaults() error {
	if o.Schema == "" {
		o.Schema = DefaultSchema
	}
	if len(o.Schema) > 63 || strings.IndexByte(o.Schema, 0) >= 0 {
		return fmt.Errorf("postgres: Options.Schema %q is not a PostgreSQL name (at most 63 bytes, no NUL)", o.Schema)
	}
	if o.MaxConns < 0 {
		return fmt.Errorf("postgres: Options.MaxConns is %d; want 0 (the default) or more", o.MaxConns)
	}
	if o.MaxBatch < 0 {
		return fmt.Errorf("postgres: Options.MaxBatch is %d; want 0 (the default) or more", o.MaxBatch)
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.Committers < 0 {
		return fmt.Errorf("postgres: Options.Committers is %d; want 0 (the default) or more", o.Committers)
	}
	if o.Committers == 0 {
		o.Committers = DefaultCommitters
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LockTimeout == 0 {
		o.LockTimeout = 250 * time.Millisecond
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = 10
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	return nil
}

// Store is a store.Store and store.Watcher on a PostgreSQL schema. It is
// safe for concurrent use; several Stores, in one process or many, may use
// the same schema at once.
type Store struct {
	pool     *pgxpool.Pool
	ownPool  bool
	schema   string
	channel  string
	q        *queries
	retries  int
	maxBatch int
	log      *slog.Logger

	closing context.Context // done when Close begins
	stop    context.CancelFunc
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup // transactions and watchers under way

	// The group committer (group.go): a queue of Updates waiting for
	// their group per commit loop, and which loop the next Update that
	// names no run goes to.
	queues []*queue
	next   atomic.Uint64
	stats  stats
	// The claimed set (group.go), by run.
	cmu      sync.Mutex
	claimed  map[string]map[stepKey]struct{}
	nclaimed int
	// cache is the row cache (cache.go).
	cache *rowCache
	// commitHook, when set (by tests), runs before the batch that ends
	// with COMMIT is sent.
	commitHook func(*tx)
	loopStop   chan struct{}
	loops      sync.WaitGroup
}

var _ store.Watcher = (*Store)(nil)

// Open connects to the database that dsn names (a postgres:// URL or a
// key=value string, as pgxpool.ParseConfig reads it), creates or migrates
// the schema, and returns a Store that owns its connection pool. It fails
// when the database cannot be reached.
func Open(ctx context.Context, dsn string, o Options) (*Store, error) {
	if err := o.withDefaults(); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: reading the DSN: %w", err)
	}
	if _, ok := cfg.ConnConfig.RuntimeParams[planCacheMode]; !ok {
		cfg.ConnConfig.RuntimeParams[planCacheMode] = "force_generic_plan"
	}
	switch {
	case o.MaxConns > 0:
		cfg.MaxConns = o.MaxConns
	case !strings.Contains(dsn, "pool_max_conns"):
		cfg.MaxConns = DefaultMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s, err := newStore(ctx, pool, o)
	if err != nil {
		pool.Close()
		return nil, err
	}
	s.ownPool = true
	return s, nil
}

// planCacheMode is the server setting that Open sets to force_generic_plan
// unless the DSN sets it.
const planCacheMode = "plan_cache_mode"

// New returns a Store on a pool the caller made, creating or migrating the
// schema first. Close leaves the pool open: it is the caller's. The pool's
// connections must not be left inside a transaction, and the store needs the
// pool's default query mode (statements cached per connection) to pipeline
// its batches well. For the speed of Open, set plan_cache_mode to
// force_generic_plan on the pool's connections (a DSN parameter
// plan_cache_mode=force_generic_plan does it).
func New(ctx context.Context, pool *pgxpool.Pool, o Options) (*Store, error) {
	if err := o.withDefaults(); err != nil {
		return nil, err
	}
	return newStore(ctx, pool, o)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, o Options) (*Store, error) {
	if err := migrate(ctx, pool, o.Schema); err != nil {
		return nil, err
	}
	s := &Store{pool: pool, schema: o.Schema, channel: channelName(o.Schema), q: newQueries(o.Schema, o.LockTimeout),
		retries: o.MaxRetries, maxBatch: o.MaxBatch, log: o.Logger,
		claimed: map[string]map[stepKey]struct{}{}, loopStop: make(chan struct{}),
		cache: newRowCache()}
	s.closing, s.stop = context.WithCancel(context.Background())
	for range o.Committers {
		q := &queue{kick: make(chan struct{}, 1)}
		s.queues = append(s.queues, q)
		s.loops.Add(1)
		go s.commitLoop(q)
	}
	return s, nil
}

// View runs fn in a read-only transaction that sees one snapshot of the
// database. The write methods of its Tx return store.ErrReadOnly.
func (s *Store) View(ctx context.Context, fn func(store.Tx) error) error {
	return s.do(ctx, fn)
}

// Close waits for the transactions under way, stops every Watch (closing
// their channels) and, when Open made the pool, closes it. Updates waiting
// to retry give up at once. Calls after the first return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	close(s.loopStop)
	s.loops.Wait()
	if s.ownPool {
		s.pool.Close()
	}
	return nil
}

// enter counts a transaction or watcher in, unless the store is closed.
func (s *Store) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

func (s *Store) do(ctx context.Context, fn func(store.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if !s.enter() {
		return store.ErrClosed
	}
	defer s.wg.Done()
	for try := 0; ; try++ {
		err, again := s.view(ctx, fn)
		if !again {
			return err
		}
		if try >= s.retries {
			return fmt.Errorf("postgres: giving up after %d tries: %w", try+1, err)
		}
		if !s.sleep(ctx, backoff(try)) {
			if ctx.Err() != nil {
				return fmt.Errorf("postgres: %w (while waiting to try again after: %v)", ctx.Err(), err)
			}
			return fmt.Errorf("postgres: %w (while waiting to try again after: %v)", store.ErrClosed, err)
		}
	}
}

// view runs fn once in a read-only transaction, and reports whether it is
// worth running again.
func (s *Store) view(ctx context.Context, fn func(store.Tx) error) (err error, again bool) {
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err(), false
		}
		return fmt.Errorf("postgres: connecting: %w", err), retryable(err)
	}
	defer c.Release()
	t := newTx(s, ctx, c.Conn(), modeView)
	defer t.end() // rolls back: there is nothing to commit
	ferr := fn(t)
	switch {
	case t.err != nil:
		if ctx.Err() == nil && retryable(t.err) {
			return t.err, true
		}
		if ferr != nil {
			return ferr, false
		}
		return fmt.Errorf("postgres: the transaction failed: %w", t.err), false
	}
	return ferr, false
}

// retryable reports whether a transaction that failed with err may succeed
// if it runs again.
func retryable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var lost *connLostError
	if errors.As(err, &lost) || pgconn.SafeToRetry(err) || errors.Is(err, errLockOrder) {
		return true
	}
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "40001", "40P01", "55P03": // serialization_failure, deadlock_detected, lock_not_available
			return true
		case "57P01", "57P02", "57P03": // admin_shutdown, crash_shutdown, cannot_connect_now
			return true
		case "23505": // unique_violation: a run or slots row created by another transaction since we read it absent
			return pe.ConstraintName == "runs_pkey" || pe.ConstraintName == "slots_pkey"
		case "0A000": // a prepared statement outlived a change of the table it reads
			return strings.Contains(pe.Message, "cached plan")
		}
		return strings.HasPrefix(pe.Code, "08") // connection_exception
	}
	return false
}

// backoff is the wait before try number try+1: from 20 ms doubling to 2 s,
// less up to half of it at random.
func backoff(try int) time.Duration {
	d := min(20*time.Millisecond<<min(try, 10), 2*time.Second)
	return d - rand.N(d/2)
}

// sleep waits for d, and reports false when ctx is done or the store is
// closing first.
func (s *Store) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.closing.Done():
		return false
	}
}
