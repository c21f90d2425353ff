package dagflow

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/internal/txcache"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
)

// Engine runs workflows. Open one per store; it is safe for concurrent use by
// multiple goroutines. An engine starts goroutines: call Close (or Shutdown)
// to stop them.
type Engine struct {
	cfg      config
	store    store.Store
	ownStore bool
	owner    string
	lease    time.Duration // 0: an exclusive store, claims never expire
	http     *httpstep.Client
	log      *slog.Logger

	ctx      context.Context // cancelled by Close
	cancel   context.CancelCauseFunc
	bgCtx    context.Context // ctx without its cancellation, for writes that must finish
	closed   atomic.Bool
	draining atomic.Bool // set by Shutdown: no attempt starts any more
	once     sync.Once

	hmu      sync.Mutex                             // serializes Handle
	handlers atomic.Pointer[map[string]HandlerFunc] // replaced whole by Handle

	runs    runCache   // plans, contexts and results of runs under way
	sched   *scheduler // the loop that claims due work
	workers errgroup.Group
	bg      sync.WaitGroup // the engine's own goroutines
	leases  leases         // attempts under lease, on a shared store
	waits   waiters        // Wait calls
	parked  parking        // steps waiting for a handler
	notes   notifier       // changes to tell other engines

	pruneFrom *store.Cursor // owned by the scheduler's loop: where prune goes on
}

// errClosing is the cause of the engine context's cancellation.
var errClosing = errors.New("dagflow: engine closing")

// Open opens an engine on a store: the bbolt file of WithPath, or the store
// of WithStore (one of the two is needed). Runs left unfinished in the store
// resume at once: handlers given with WithHandler are there for them; steps
// whose handler is registered later with Handle wait for it.
func Open(opts ...Option) (*Engine, error) {
	cfg := config{
		concurrency: DefaultConcurrency, lease: DefaultLease, poll: DefaultPollInterval,
		openTimeout: DefaultOpenTimeout, hookTries: DefaultWebhookAttempts, logLimit: DefaultLogLines,
		maxInterruptions: DefaultMaxInterruptions, maxMapItems: DefaultMaxMapItems, maxDepth: DefaultMaxDepth,
		eventRetention: DefaultEventRetention, maxPayload: DefaultMaxPayload,
		clock: systemClock{}, jitter: fullJitter,
	}
	var errs []error
	for _, o := range opts {
		if o == nil {
			continue
		}
		if err := o(&cfg); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case cfg.store != nil && cfg.path != "":
		errs = append(errs, errors.New("WithPath and WithStore: give one or the other"))
	case cfg.store == nil && cfg.path == "":
		errs = append(errs, errors.New("no store: give WithPath(file) for a bbolt file, or WithStore(s)"))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("dagflow: Open: %w", errors.Join(errs...))
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	var hopts httpstep.Options
	if cfg.httpOpts != nil {
		hopts = *cfg.httpOpts
	}
	for _, h := range cfg.hooks {
		if h.HTTPHeader == nil {
			continue
		}
		if prev, add := hopts.Header, h.HTTPHeader; prev != nil {
			hopts.Header = func(ctx context.Context, hd http.Header) { prev(ctx, hd); add(ctx, hd) }
		} else {
			hopts.Header = add
		}
	}
	hc, err := httpstep.New(hopts)
	if err != nil {
		return nil, fmt.Errorf("dagflow: Open: WithHTTP: %w", err)
	}
	e := &Engine{cfg: cfg, store: cfg.store, http: hc, log: cfg.logger, lease: cfg.lease}
	handlers := make(map[string]HandlerFunc, len(cfg.handlers))
	for name, h := range cfg.handlers {
		handlers[name] = h
	}
	e.handlers.Store(&handlers)
	if e.store == nil {
		s, err := bolt.Open(cfg.path, bolt.Options{Timeout: cfg.openTimeout})
		if err != nil {
			return nil, fmt.Errorf("dagflow: Open: %w", err)
		}
		e.store, e.ownStore = s, true
	}
	if ex, ok := e.store.(store.Exclusive); ok && ex.Exclusive() {
		e.lease = 0
	}
	e.owner = newOwner()
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	e.bgCtx = context.WithoutCancel(e.ctx)
	e.runs.init()
	e.waits.init()
	e.sched = newScheduler(e)

	if e.lease == 0 {
		// An exclusive store: whatever an earlier process was running is
		// over now.
		err := e.update(e.ctx, func(_ store.Tx, x *flow.Txn) error { return x.Recover() })
		if err != nil {
			e.shutdown()
			return nil, fmt.Errorf("dagflow: Open: resuming unfinished runs: %w", err)
		}
	}
	if w, ok := e.store.(store.Watcher); ok && e.lease > 0 {
		ch, err := w.Watch(e.ctx)
		if err != nil {
			e.shutdown()
			return nil, fmt.Errorf("dagflow: Open: watching the store: %w", err)
		}
		e.notes.start(e, w)
		e.goBackground(func() { e.watchLoop(ch) })
	}
	if e.lease > 0 {
		e.goBackground(e.renewLoop)
	}
	e.goBackground(e.sched.loop)
	e.sched.poke()
	return e, nil
}

func newOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	rand.Read(b[:])
	return fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func fullJitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return time.Duration(mrand.Int64N(int64(d) + 1))
}

// now is the engine's clock, in UTC and cut to microseconds (what every
// store keeps).
func (e *Engine) now() time.Time { return e.cfg.clock.Now().UTC().Truncate(time.Microsecond) }

func (e *Engine) goBackground(f func()) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		f()
	}()
}

// update runs fn in a store transaction, with the state machine over it,
// and acts on its effects once it has committed.
func (e *Engine) update(ctx context.Context, fn func(tx store.Tx, x *flow.Txn) error) error {
	var ts txState
	err := e.store.Update(ctx, func(tx store.Tx) error { return e.inTx(tx, &ts, fn) })
	if err != nil {
		return err
	}
	e.apply(&ts.eff) // claims nothing: only the scheduler and workers claim
	return nil
}

// txState is what a transaction of the state machine works with: a
// write-back cache of its step records (each is then read and written once),
// the state machine, and the effects it collects. A worker keeps one from a
// transaction to the next.
type txState struct {
	cache txcache.Tx
	x     flow.Txn
	eff   flow.Effects
}

// inTx runs fn in tx with the state machine over it and writes what it
// changed.
func (e *Engine) inTx(tx store.Tx, ts *txState, fn func(tx store.Tx, x *flow.Txn) error) error {
	ts.cache.Reset(tx)
	ts.x.Reset(&ts.cache, e.env(), e.now(), &ts.eff)
	if err := fn(&ts.cache, &ts.x); err != nil {
		return err
	}
	if err := ts.x.Flush(); err != nil {
		return err
	}
	return ts.cache.Flush()
}

// handler returns the handler registered under name, or nil.
func (e *Engine) handler(name string) HandlerFunc {
	return (*e.handlers.Load())[name]
}

func (e *Engine) hasHandler(name string) bool { return e.handler(name) != nil }

// Handle registers the Go handler h under name, replacing any handler of
// that name. Steps name it in their "handler" field (or, for compensations,
// "compensation"). Steps of resumed runs that were waiting for it start at
// once. Handle is safe to call at any time; it returns an error for an empty
// name, a nil handler, or a closed engine.
func (e *Engine) Handle(name string, h HandlerFunc) error {
	if name == "" || h == nil {
		return errors.New("dagflow: Handle: empty name or nil handler")
	}
	if e.closed.Load() {
		return ErrClosed
	}
	e.hmu.Lock()
	old := *e.handlers.Load()
	handlers := make(map[string]HandlerFunc, len(old)+1)
	for n, f := range old {
		handlers[n] = f
	}
	handlers[name] = h
	e.handlers.Store(&handlers)
	e.hmu.Unlock()
	e.unpark(name)
	return nil
}

// parking holds, by handler name, the steps this engine put off because it
// has no handler of that name, so that Handle can make them due at once.
type parking struct {
	mu    sync.Mutex
	steps map[string][]flow.Parked
}

func (e *Engine) park(ps []flow.Parked) {
	e.parked.mu.Lock()
	defer e.parked.mu.Unlock()
	if e.parked.steps == nil {
		e.parked.steps = map[string][]flow.Parked{}
	}
	for _, p := range ps {
		if e.hasHandler(p.Handler) {
			go e.unpark(p.Handler) // registered in the meantime
		} else if len(e.parked.steps[p.Handler]) == 0 {
			e.log.Warn("dagflow: steps wait for a Go handler that is not registered", "handler", p.Handler, "run", p.RunID, "step", p.StepID)
		}
		e.parked.steps[p.Handler] = append(e.parked.steps[p.Handler], p)
	}
}

// unpark makes the steps put off for want of handler name due now.
func (e *Engine) unpark(name string) {
	e.parked.mu.Lock()
	refs := e.parked.steps[name]
	delete(e.parked.steps, name)
	e.parked.mu.Unlock()
	if len(refs) == 0 {
		return
	}
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		now := e.now()
		for _, p := range refs {
			steps := []int{0}
			if st, err := tx.Step(p.RunID, p.Index, 0); err == nil && st.Items > 0 {
				for i := 1; i <= st.Items; i++ {
					steps = append(steps, i)
				}
			}
			for _, item := range steps {
				st, err := tx.Step(p.RunID, p.Index, item)
				if err != nil {
					continue
				}
				if (st.State == store.StepReady || st.Comp == store.CompReady) && st.DueAt.After(now) {
					st.DueAt = now
					if err := tx.PutStep(st); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil && e.ctx.Err() == nil {
		e.log.Warn("dagflow: waking steps waiting for a handler", "handler", name, "error", err)
	}
	e.sched.poke()
}

// waitingFor returns the names of the handlers a run's steps wait for on
// this engine.
func (e *Engine) waitingFor(runID string) []string {
	e.parked.mu.Lock()
	defer e.parked.mu.Unlock()
	var names []string
	for name, ps := range e.parked.steps {
		for _, p := range ps {
			if p.RunID == runID {
				names = append(names, name)
				break
			}
		}
	}
	return names
}

// Shutdown stops the engine gracefully: it starts no new attempt and waits
// for the attempts under way to end and for their outcomes to be recorded,
// then closes the engine as Close does. Steps made ready meanwhile wait in
// the store for the next engine; Create still stores new runs without
// starting them. When ctx ends first, Shutdown closes the engine at once,
// cancelling the attempts still under way as Close does, and returns ctx's
// error.
func (e *Engine) Shutdown(ctx context.Context) error {
	if e.closed.Load() {
		return ErrClosed
	}
	e.draining.Store(true)
	if err := e.sched.drain(ctx); err != nil {
		return errors.Join(err, e.Close())
	}
	return e.Close()
}

// Close stops the engine: it starts no new attempt, cancels the contexts of
// the attempts under way and waits for their handlers to return. An attempt
// that completed is recorded; one that failed because of the shutdown is
// not counted, and runs again (as the same attempt) when an engine next
// opens the store. It closes the store when the engine opened it (WithPath),
// not one given with WithStore. Calls on the engine after Close return
// ErrClosed.
func (e *Engine) Close() error {
	var err error
	e.once.Do(func() { err = e.shutdown() })
	return err
}

func (e *Engine) shutdown() error {
	e.closed.Store(true)
	e.cancel(errClosing)
	e.bg.Wait()
	e.workers.Wait()
	e.sched.wait() // webhook deliveries
	e.notes.stop()
	e.runs.clear()
	e.http.CloseIdleConnections()
	if e.ownStore {
		return e.store.Close()
	}
	return nil
}
