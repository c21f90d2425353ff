package dagflow

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/internal/flow"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
)

// Engine runs workflows. Open one per store; it is safe for concurrent use by
// multiple goroutines. An engine starts goroutines: call Close to stop them.
type Engine struct {
	cfg      config
	store    store.Store
	ownStore bool
	owner    string
	lease    time.Duration // 0: exclusive store, claims never expire
	// createGate, on a serial store, holds the Create calls that wait for
	// the store or write to it, a few at a time (see store.Serial).
	createGate chan struct{}
	creating   sync.RWMutex // read-held by each Create, taken by Close
	http       *httpstep.Client
	log        *slog.Logger

	ctx    context.Context // cancelled by Close
	cancel context.CancelCauseFunc
	bgCtx  context.Context // ctx without its cancellation, for writes that must finish
	closed atomic.Bool
	// draining is set by Shutdown: no attempt starts any more.
	draining atomic.Bool
	once     sync.Once

	hmu      sync.Mutex                             // serializes Handle
	handlers atomic.Pointer[map[string]HandlerFunc] // replaced whole by Handle, under hmu

	cmu   sync.Mutex
	cache map[string]*runCache

	// The worker pool: free counts claim slots not held by a claim; queue
	// holds claimed tasks waiting for a worker.
	free    atomic.Int64
	workers errgroup.Group
	qmu     sync.Mutex
	queue   []*task
	active  int
	idle    []*workerState // of the workers that ended, for the next ones

	bg       sync.WaitGroup
	wake     chan struct{} // claim loop
	hookWake chan struct{} // webhook loop
	starved  atomic.Bool   // the claim loop waits for a free slot

	wmu     sync.Mutex
	waiters map[string][]chan struct{}

	pmu    sync.Mutex
	parked map[string][]flow.Parked // by handler name

	lmu  sync.Mutex
	live map[*task]struct{} // claims to renew (shared stores)

	notes notifier // notifications to other engines (shared stores)
}

// errClosing is the cause of the engine context's cancellation.
var errClosing = errors.New("dagflow: engine closing")

// Open opens an engine on a store: the bbolt file of WithPath (DefaultPath
// when neither WithPath nor WithStore is given), or the store of WithStore.
// Runs left unfinished in the store resume at once: handlers given with
// WithHandler are there for them; steps whose handler is registered later
// with Handle wait for it.
func Open(opts ...Option) (*Engine, error) {
	cfg := config{
		concurrency: DefaultConcurrency, lease: DefaultLease, poll: DefaultPollInterval,
		openTimeout: DefaultOpenTimeout, hookTries: DefaultWebhookAttempts, logLimit: DefaultLogLines,
		now: time.Now, jitter: fullJitter,
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
	if cfg.store != nil && cfg.path != "" {
		errs = append(errs, errors.New("WithPath and WithStore: give one or the other"))
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
	hc, err := httpstep.New(hopts)
	if err != nil {
		return nil, fmt.Errorf("dagflow: Open: WithHTTP: %w", err)
	}
	e := &Engine{
		cfg: cfg, store: cfg.store, http: hc, log: cfg.logger, lease: cfg.lease,
		cache: make(map[string]*runCache),
		wake:  make(chan struct{}, 1), hookWake: make(chan struct{}, 1),
		waiters: make(map[string][]chan struct{}), parked: make(map[string][]flow.Parked),
		live: make(map[*task]struct{}),
	}
	handlers := make(map[string]HandlerFunc, len(cfg.handlers))
	for name, h := range cfg.handlers {
		handlers[name] = h
	}
	e.handlers.Store(&handlers)
	if e.store == nil {
		path := cfg.path
		if path == "" {
			path = DefaultPath
		}
		s, err := bolt.Open(path, bolt.Options{Timeout: cfg.openTimeout})
		if err != nil {
			return nil, fmt.Errorf("dagflow: Open: %w", err)
		}
		e.store, e.ownStore = s, true
	}
	if ex, ok := e.store.(store.Exclusive); ok && ex.Exclusive() {
		e.lease = 0
	}
	if se, ok := e.store.(store.Serial); ok && se.Serial() {
		e.createGate = make(chan struct{}, runtime.GOMAXPROCS(0))
	}
	e.owner = newOwner()
	e.ctx, e.cancel = context.WithCancelCause(context.Background())
	e.bgCtx = context.WithoutCancel(e.ctx)
	e.free.Store(int64(cfg.concurrency))
	e.workers.SetLimit(cfg.concurrency)

	var next time.Time // the store's next due step, on an exclusive store
	if e.lease == 0 {
		// An exclusive store: whatever an earlier process was running is
		// over now.
		var eff flow.Effects
		err := e.store.Update(e.ctx, func(tx store.Tx) error {
			if err := flow.Begin(tx, e.env(), e.now(), &eff).Recover(); err != nil {
				return err
			}
			var err error
			next, err = tx.NextDue()
			return err
		})
		if err != nil {
			e.shutdown()
			return nil, fmt.Errorf("dagflow: Open: resuming unfinished runs: %w", err)
		}
	}
	e.goBackground(e.claimLoop)
	e.goBackground(e.hookLoop)
	if e.lease > 0 {
		e.goBackground(e.renewLoop)
		if w, ok := e.store.(store.Watcher); ok {
			ch, err := w.Watch(e.ctx)
			if err != nil {
				e.shutdown()
				return nil, fmt.Errorf("dagflow: Open: watching the store: %w", err)
			}
			e.goBackground(func() { e.watchLoop(ch) })
			e.notes.mu.Lock()
			e.notes.wake = make(chan struct{}, 1)
			e.notes.mu.Unlock()
			e.goBackground(func() { e.notifyLoop(w) })
		}
	}
	if e.lease > 0 || !next.IsZero() {
		// Steps are due, now or later: the claim loop claims them or sets
		// its timer. (Nothing else is due until a transaction says so.)
		e.signal()
	}
	e.signalHooks()
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

// now is the engine's clock, cut to microseconds (what every store keeps).
func (e *Engine) now() time.Time { return e.cfg.now().UTC().Truncate(time.Microsecond) }

func (e *Engine) goBackground(f func()) {
	e.bg.Add(1)
	go func() {
		defer e.bg.Done()
		f()
	}()
}

// flowEnv is the engine as the state machine sees it (flow.Env), kept off
// the Engine's exported methods.
type flowEnv Engine

func (e *Engine) env() flow.Env { return (*flowEnv)(e) }

// Owner implements flow.Env: the engine's name in leases.
func (v *flowEnv) Owner() string { return v.owner }

// Lease implements flow.Env.
func (v *flowEnv) Lease() time.Duration { return v.lease }

// Jitter implements flow.Env.
func (v *flowEnv) Jitter(d time.Duration) time.Duration { return v.cfg.jitter(d) }

// CanRun implements flow.Env: whether this engine has the step's handler.
func (v *flowEnv) CanRun(runID string, p *flow.Plan, index int, comp bool) bool {
	name := p.Steps[index].Handler
	if comp {
		name = p.Steps[index].CompHandler
	}
	return name == "" || (*Engine)(v).handler(name) != nil // "": an HTTP step
}

// handler returns the handler registered under name, or nil. It takes no
// lock: every claim and every attempt looks a handler up.
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

// unpark makes the steps put off for want of handler name due now.
func (e *Engine) unpark(name string) {
	e.pmu.Lock()
	refs := e.parked[name]
	delete(e.parked, name)
	e.pmu.Unlock()
	if len(refs) == 0 {
		return
	}
	err := e.store.Update(e.ctx, func(tx store.Tx) error {
		now := e.now()
		for _, p := range refs {
			st, err := tx.Step(p.RunID, p.Index)
			if errors.Is(err, store.ErrNotFound) {
				continue
			} else if err != nil {
				return err
			}
			waiting := (p.Handler && st.State == store.StepReady) || (!p.Handler && st.Comp == store.CompReady)
			if waiting && st.DueAt.After(now) {
				st.DueAt = now
				if err := tx.PutStep(st); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil && e.ctx.Err() == nil {
		e.log.Warn("dagflow: waking steps waiting for a handler", "handler", name, "error", err)
	}
	e.signal()
}

// parallelCreate is the number of steps from which Create encodes a
// workflow and compiles it at the same time.
const parallelCreate = 2048

// Create validates a workflow and starts a run of it. It returns the run's
// status as the transaction that created it stored it: when worker slots
// are free, that transaction also claims the first ready steps, which the
// status then shows running; otherwise every step is pending. Creating a
// workflow whose id is taken returns the existing run's status when the spec
// is the same (Create is idempotent) and an error matching ErrConflict when
// it differs. Invalid workflows get a *ValidationError listing every
// problem. Create is safe for concurrent use; it returns once the run is in
// the store.
func (e *Engine) Create(ctx context.Context, w Workflow) (*Status, error) {
	// Close waits for the Creates under way: the steps one claims must be
	// handed to a worker before Close waits for the workers.
	e.creating.RLock()
	defer e.creating.RUnlock()
	if e.closed.Load() {
		return nil, ErrClosed
	}
	check := &engineCheck{hasHandler: e.hasHandler, hasBaseURL: e.http.HasBaseURL()}
	ps, deps := w.check(check)
	if len(ps) > 0 {
		if st := e.existing(ctx, &w); st != nil {
			return st, nil
		}
		sortProblems(ps)
		return nil, &ValidationError{WorkflowID: w.ID, Problems: ps}
	}
	c := creations.Get().(*creation)
	defer c.free()
	c.e, c.n, c.deps, c.want = e, w.withDefaults(), deps, -1
	c.prepare()
	if e.createGate != nil {
		select {
		case e.createGate <- struct{}{}:
		case <-ctx.Done():
			return nil, fmt.Errorf("dagflow: Create %q: %w", w.ID, ctx.Err())
		}
	}
	err := e.store.Update(ctx, c.write)
	if e.createGate != nil {
		<-e.createGate
	}
	if err != nil {
		e.release(c.want)
		if c.cached != nil {
			e.cmu.Lock()
			if e.cache[c.n.ID] == c.cached {
				delete(e.cache, c.n.ID)
			}
			e.cmu.Unlock()
			c.cached.gone.Store(true)
			c.cached.cancel()
		}
		if errors.Is(err, ErrConflict) {
			return nil, err
		}
		return nil, fmt.Errorf("dagflow: Create %q: %w", w.ID, err)
	}
	if c.created.ID == "" {
		return e.Status(ctx, c.n.ID) // the run existed; nothing was written
	}
	st := newStatus(&c.created, &c.n, c.steps)
	if e.log.Enabled(ctx, slog.LevelDebug) {
		e.log.Debug("dagflow: run created", "run", st.ID, "steps", len(st.Steps))
	}
	if c.want <= 0 {
		// No slot was free (or the store is shared): the claim loop starts
		// the first steps when one is.
		e.notify(store.Event{Kind: store.EventDue})
		e.signal()
		return st, nil
	}
	tasks := e.apply(&c.eff, c.want, nil, c.cached)
	e.release(c.want - len(tasks))
	cur := -1
	for _, t := range tasks {
		if t.c.RunID == st.ID && !t.c.Comp {
			// Claimed by Create's own transaction: the status says so.
			ss := &st.Steps[t.c.Index]
			ss.State, ss.StartedAt, ss.Attempts = StateRunning, t.c.StartedAt, t.c.Attempt
			if cur < 0 || t.c.Index < cur {
				st.State, st.CurrentStep, cur = StateRunning, ss.ID, t.c.Index
			}
		}
		e.submit(t)
	}
	return st, nil
}

// existing returns the status of the run w names when one with the same
// spec exists, for a workflow that is valid but for what depends on the
// engine (a handler not registered yet, a relative URL and no base URL):
// Create is idempotent on a run created earlier, by an engine that had
// them, even before this one registers its handlers. Otherwise it returns
// nil.
func (e *Engine) existing(ctx context.Context, w *Workflow) *Status {
	if ps, _ := w.check(nil); len(ps) > 0 {
		return nil
	}
	n := w.withDefaults()
	spec := appendSpec(nil, &n, true)
	var same bool
	err := e.store.View(ctx, func(tx store.Tx) error {
		old, err := tx.Spec(n.ID)
		if err != nil {
			return err
		}
		same = bytes.Equal(old, spec) || sameSpec(old, spec)
		return nil
	})
	if err != nil || !same {
		return nil
	}
	st, err := e.Status(ctx, n.ID)
	if err != nil {
		return nil
	}
	return st
}

// creation is what Create makes of a valid workflow, in one value rather
// than locals that its closures would each move to the heap.
type creation struct {
	e    *Engine
	n    Workflow // its steps are normalized as they are read
	deps *depGraph
	// Made from n alone by prepare.
	spec  json.RawMessage
	steps []StepStatus // of the status Create returns
	plan  *flow.Plan
	// Set by write.
	// want is how many worker slots write reserved to claim due steps
	// with (the new run's first ones, unless something due earlier
	// waits), or -1 before it reserves.
	want    int
	txn     flow.Txn // write's, here so that it needs no allocation of its own
	eff     flow.Effects
	created store.Run // the run written, or zero when one existed
	cached  *runCache // put in the engine's cache by the transaction
}

// creations keep, from one Create to the next, what the transactions of
// Create allocate (its flow.Txn and Effects).
var creations = sync.Pool{New: func() any { return new(creation) }}

// free puts c back in creations, without what it made for its run: the
// spec, the status and the plan live on in the store, the status returned
// and the engine's cache.
func (c *creation) free() {
	c.e, c.n, c.deps, c.spec, c.steps, c.plan = nil, Workflow{}, nil, nil, nil, nil
	c.created, c.cached = store.Run{}, nil
	creations.Put(c)
}

// prepare encodes the spec, the pending steps and the plan; for a large
// workflow, the first two while the plan is compiled.
func (c *creation) prepare() {
	if len(c.n.Steps) < parallelCreate {
		c.encode()
		c.plan = compile(&c.n, c.deps)
		return
	}
	var wg sync.WaitGroup
	wg.Go(c.encode)
	c.plan = compile(&c.n, c.deps)
	wg.Wait()
}

func (c *creation) encode() {
	c.spec = appendSpec(make([]byte, 0, specSize(&c.n, true)), &c.n, true)
	c.steps = pendingSteps(&c.n)
}

// write writes the run, or checks that the one stored has the same spec.
func (c *creation) write(tx store.Tx) error {
	e, n := c.e, &c.n
	c.created = store.Run{}
	if _, err := tx.Run(n.ID); err == nil {
		old, err := tx.Spec(n.ID)
		if err != nil {
			return err
		}
		if !bytes.Equal(old, c.spec) && !sameSpec(old, c.spec) {
			return fmt.Errorf("dagflow: Create: %w: a run with id %q exists with a different workflow", ErrConflict, n.ID)
		}
		c.eff = flow.Effects{}
		return nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return err
	}
	now := e.now()
	x := c.txn.Reset(tx, e.env(), now, &c.eff)
	r := store.Run{ID: n.ID, CreatedAt: now, StartedAt: now, Deadline: now.Add(c.plan.Timeout)}
	if err := x.Create(r, c.spec, c.plan); err != nil {
		return err
	}
	c.created = r
	if c.want < 0 {
		// Reserved once, even if the store runs write again.
		c.want = 0
		if e.lease == 0 && e.ctx.Err() == nil && !e.draining.Load() {
			c.want = e.reserve()
		}
	}
	if c.want > 0 {
		if err := x.Claim(c.want); err != nil {
			return err
		}
	}
	if err := x.Flush(); err != nil {
		return err
	}
	// Cached before the commit: a worker may claim the first steps as soon
	// as it lands, and must find the plan compiled here rather than decode
	// the spec again. Create takes it back if the commit fails.
	e.cmu.Lock()
	if e.cache[n.ID] == nil {
		c.cached = newRunCache(e.ctx, n.ID, n.Context, c.plan)
		if e.lease > 0 {
			c.cached.fill = e.fill // results of other engines come from the store
		}
		e.cache[n.ID] = c.cached
	}
	e.cmu.Unlock()
	return nil
}

// Status returns the status of a run, read from the store, or an error
// matching ErrNotFound.
func (e *Engine) Status(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var st *Status
	err := e.store.View(ctx, func(tx store.Tx) error {
		r, err := tx.Run(id)
		if err != nil {
			return err
		}
		wctx, err := e.runContext(tx, id)
		if err != nil {
			return err
		}
		st, err = statusOf(tx, &r, wctx)
		return err
	})
	if err != nil {
		return nil, runErr("Status", id, err)
	}
	return st, nil
}

// runContext returns a run's workflow context, from the cache or the spec.
func (e *Engine) runContext(tx store.Tx, id string) (json.RawMessage, error) {
	if rc := e.cachedRun(id); rc != nil {
		return rc.context, nil
	}
	spec, err := tx.Spec(id)
	if err != nil {
		return nil, err
	}
	c, err := specContext(spec)
	if err != nil {
		return nil, fmt.Errorf("decoding the stored spec: %w", err)
	}
	return c, nil
}

// specContext reads the context of a stored spec. A spec in the engine's
// own layout, "context" before "steps", is read by scanning its head (Wait
// and Status read the context of every run that has ended, however many
// steps it has); a spec a store gave back otherwise laid out (keys
// reordered, spacing) goes through encoding/json.
func specContext(spec []byte) (json.RawMessage, error) {
	if c, ok := scanSpecContext(spec); ok {
		return c, nil
	}
	dec := json.NewDecoder(bytes.NewReader(spec))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, fmt.Errorf("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if tok == "context" {
			return v, nil
		}
	}
	return json.RawMessage(`{}`), nil
}

// scanSpecContext reads the context of a spec laid out as appendSpec writes
// it: {"id":"…" then ,"saga":true if set, then ,"context":{…} if the
// context is not empty. It reports false for any other layout.
func scanSpecContext(spec []byte) (json.RawMessage, bool) {
	const head = `{"id":"`
	if !bytes.HasPrefix(spec, []byte(head)) {
		return nil, false
	}
	i := len(head)
	for ; i < len(spec) && spec[i] != '"'; i++ {
		if spec[i] == '\\' {
			i++
		}
	}
	if i >= len(spec) {
		return nil, false
	}
	rest := spec[i+1:]
	rest, _ = bytes.CutPrefix(rest, []byte(`,"saga":true`))
	rest, ok := bytes.CutPrefix(rest, []byte(`,"context":{`))
	if !ok {
		if bytes.HasPrefix(rest, []byte(`,"onComplete":`)) || bytes.HasPrefix(rest, []byte(`,"onError":`)) ||
			bytes.HasPrefix(rest, []byte(`,"timeout":`)) || bytes.HasPrefix(rest, []byte(`,"onStepFailure":`)) ||
			bytes.HasPrefix(rest, []byte(`,"steps":`)) {
			if bytes.Contains(rest, []byte(`"context"`)) {
				return nil, false // perhaps a context after all, keys reordered
			}
			return json.RawMessage(`{}`), true
		}
		return nil, false
	}
	// The object's end: count braces outside strings.
	start := len(spec) - len(rest) - 1
	depth, str := 1, false
	for j := start + 1; j < len(spec); j++ {
		switch c := spec[j]; {
		case str && c == '\\':
			j++
		case c == '"':
			str = !str
		case str:
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			if depth--; depth == 0 {
				end := j + 1
				if end < len(spec) && spec[end] != ',' && spec[end] != '}' {
					return nil, false
				}
				return bytes.Clone(spec[start:end]), true // not the store's bytes
			}
		}
	}
	return nil, false
}

// Workflow returns the workflow of a run as the engine stored it, with every
// default filled in, or an error matching ErrNotFound.
func (e *Engine) Workflow(ctx context.Context, id string) (*Workflow, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var w Workflow
	err := e.store.View(ctx, func(tx store.Tx) error {
		spec, err := tx.Spec(id)
		if err != nil {
			return err
		}
		w, err = decodeSpec(spec)
		return err
	})
	if err != nil {
		return nil, runErr("Workflow", id, err)
	}
	// Every step its own retry policy: the caller may change them.
	for i := range w.Steps {
		if r := w.Steps[i].Retries; r != nil {
			c := *r
			w.Steps[i].Retries = &c
		}
	}
	return &w, nil
}

// decodeSpec reads a stored spec (canonical, or written out in full by
// earlier versions) as a normalized workflow.
func decodeSpec(spec []byte) (Workflow, error) {
	var w Workflow
	if err := json.Unmarshal(spec, &w); err != nil {
		return Workflow{}, err
	}
	return w.normalized(), nil
}

// sameSpec reports whether two stored specs describe the same workflow,
// for specs whose bytes differ: one written by an earlier version (every
// default written out), or reformatted by the store.
func sameSpec(a, b []byte) bool {
	wa, err := decodeSpec(a)
	if err != nil {
		return false
	}
	wb, err := decodeSpec(b)
	if err != nil {
		return false
	}
	// Contexts that are the same JSON value ({"a":1,"b":2} and
	// {"b":2,"a":1}, 1 and 1.0) make the same workflow.
	if !bytes.Equal(wa.Context, wb.Context) {
		if !sameJSON(wa.Context, wb.Context) {
			return false
		}
		wb.Context = wa.Context
	}
	return bytes.Equal(appendSpec(nil, &wa, true), appendSpec(nil, &wb, true))
}

// sameJSON reports whether a and b encode the same JSON value: objects
// with the same members in any order, numbers of the same value however
// written.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if unmarshalNumbers(a, &va) != nil || unmarshalNumbers(b, &vb) != nil {
		return false
	}
	return sameValue(va, vb)
}

// smallExponent reports whether a JSON number's exponent, if it has one,
// is within a range whose exact value is cheap to compute.
func smallExponent(n json.Number) bool {
	i := strings.IndexAny(string(n), "eE")
	if i < 0 {
		return len(n) <= 1000
	}
	e, err := strconv.Atoi(string(n[i+1:]))
	return err == nil && e > -1000 && e < 1000 && i <= 1000
}

func unmarshalNumbers(data []byte, v *any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}") // no context is the empty one
	}
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	return d.Decode(v)
}

func sameValue(a, b any) bool {
	switch a := a.(type) {
	case map[string]any:
		b, ok := b.(map[string]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for k, va := range a {
			vb, ok := b[k]
			if !ok || !sameValue(va, vb) {
				return false
			}
		}
		return true
	case []any:
		b, ok := b.([]any)
		if !ok || len(a) != len(b) {
			return false
		}
		for i := range a {
			if !sameValue(a[i], b[i]) {
				return false
			}
		}
		return true
	case json.Number:
		b, ok := b.(json.Number)
		if !ok {
			return false
		}
		if a == b {
			return true
		}
		if !smallExponent(a) || !smallExponent(b) {
			return false // 1e999999999: not worth the work
		}
		ra, oka := new(big.Rat).SetString(string(a))
		rb, okb := new(big.Rat).SetString(string(b))
		return oka && okb && ra.Cmp(rb) == 0
	default: // string, bool, nil
		return a == b
	}
}

// Wait blocks until the run is completed, failed or cancelled (after its
// compensations, for a saga) and returns its final status. It returns early
// with ctx's error when ctx is done, ErrClosed when the engine closes, and
// an error matching ErrNotFound for an unknown id.
func (e *Engine) Wait(ctx context.Context, id string) (*Status, error) {
	for {
		ch := e.addWaiter(id)
		// The run's record says whether it ended; the whole status, which
		// reads every step, is built once it has.
		final, err := e.runEnded(ctx, id)
		if err == nil && final {
			st, err := e.Status(ctx, id)
			if err != nil || st.State.Final() { // else retried meanwhile
				e.removeWaiter(id, ch)
				return st, err
			}
		}
		if err != nil {
			e.removeWaiter(id, ch)
			return nil, runErr("Wait", id, err)
		}
		var poll <-chan time.Time
		var timer *time.Timer
		if e.lease > 0 {
			// Another engine may end the run, and its notification may
			// be lost: look again now and then.
			timer = time.NewTimer(e.cfg.poll)
			poll = timer.C
		}
		select {
		case <-ch:
			// The run ended (wakeWaiters took ch out): its status is
			// final unless it was retried since.
			if timer != nil {
				timer.Stop()
			}
			st, err := e.Status(ctx, id)
			if err != nil || st.State.Final() {
				return st, err
			}
			continue
		case <-poll:
			e.removeWaiter(id, ch)
		case <-ctx.Done():
			e.removeWaiter(id, ch)
			err = ctx.Err()
		case <-e.ctx.Done():
			e.removeWaiter(id, ch)
			err = ErrClosed
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return nil, err
		}
	}
}

// runEnded reports whether a run is completed, failed or cancelled.
func (e *Engine) runEnded(ctx context.Context, id string) (bool, error) {
	if e.closed.Load() {
		return false, ErrClosed
	}
	var final bool
	err := e.store.View(ctx, func(tx store.Tx) error {
		r, err := tx.Run(id)
		final = r.State.Final()
		return err
	})
	return final, err
}

func (e *Engine) addWaiter(id string) chan struct{} {
	ch := make(chan struct{})
	e.wmu.Lock()
	e.waiters[id] = append(e.waiters[id], ch)
	e.wmu.Unlock()
	return ch
}

func (e *Engine) removeWaiter(id string, ch chan struct{}) {
	e.wmu.Lock()
	defer e.wmu.Unlock()
	list := e.waiters[id]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(e.waiters, id)
	} else {
		e.waiters[id] = list
	}
}

func (e *Engine) wakeWaiters(id string) {
	e.wmu.Lock()
	list := e.waiters[id]
	delete(e.waiters, id)
	e.wmu.Unlock()
	for _, ch := range list {
		close(ch)
	}
}

// runErr wraps the error of a call on run id: a missing run as
// ErrNotFound, a *StateError as it is, anything else with the call's name.
func runErr(op, id string, err error) error {
	var se *StateError
	switch {
	case errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("dagflow: run %q: %w", id, ErrNotFound)
	case errors.As(err, &se):
		return err
	}
	return fmt.Errorf("dagflow: %s %q: %w", op, id, err)
}

// ListOptions selects runs for List.
type ListOptions struct {
	// State keeps only runs in this state. A run is pending, as its
	// status says, until one of its steps starts.
	State State
	// IDContains keeps only runs whose id contains it.
	IDContains string
	// After is the Next of the previous page; "" starts at the newest run.
	After string
	// Limit is the page size; 0 means 100. A negative one is an error.
	Limit int
}

// RunList is a page of runs, newest first.
type RunList struct {
	// Runs are the runs of the page.
	Runs []RunSummary `json:"runs"`
	// Next is the ListOptions.After of the next page, "" on the last page.
	Next string `json:"next,omitempty"`
}

// RunSummary is a run as List shows it.
type RunSummary struct {
	// ID is the run's id.
	ID string `json:"id"`
	// State is the run's state, as its Status says.
	State State `json:"state"`
	// CreatedAt is when the run was created (the list's order), StartedAt
	// when it started, CompletedAt when it ended, zero until then (and
	// again while a retry of it runs).
	CreatedAt   time.Time `json:"createdAt"`
	StartedAt   time.Time `json:"startedAt,omitzero"`
	CompletedAt time.Time `json:"completedAt,omitzero"`
	// Steps is the number of steps; Done counts those in a final state,
	// Failed those that failed.
	Steps  int `json:"steps"`
	Done   int `json:"done"`
	Failed int `json:"failed"`
	// Error says why the run failed or was cancelled.
	Error string `json:"error,omitempty"`
}

// runPending reports whether a run is pending as its status says: running,
// and not one of its steps started yet. Only a run whose record shows no
// step running or done needs its steps read.
func runPending(tx store.Tx, r *store.Run) (bool, error) {
	if r.State != store.RunRunning || r.Running > 0 || r.Done > 0 || r.Phase != store.PhaseActive || r.Generation > 0 {
		return false, nil
	}
	started := false
	see := func(st *store.Step) bool {
		started = !st.StartedAt.IsZero()
		return !started
	}
	if rg, ok := tx.(store.StepRanger); ok {
		err := rg.RangeSteps(r.ID, see)
		return !started, err
	}
	steps, err := tx.Steps(r.ID)
	for i := range steps {
		if !see(&steps[i]) {
			break
		}
	}
	return !started, err
}

// List returns a page of runs, newest first.
func (e *Engine) List(ctx context.Context, o ListOptions) (*RunList, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	limit := o.Limit
	switch {
	case limit < 0:
		return nil, fmt.Errorf("dagflow: List: Limit %d is negative", limit)
	case limit == 0:
		limit = 100
	}
	q := store.RunQuery{IDContains: o.IDContains, Limit: limit + 1}
	switch o.State {
	case "":
	case StatePending, StateRunning:
		q.State = store.RunRunning
	case StateCompleted, StateFailed, StateCancelled:
		q.State = store.RunState(o.State)
	default:
		return nil, fmt.Errorf("dagflow: List: unknown state %q", o.State)
	}
	if o.After != "" {
		c, err := decodeCursor(o.After)
		if err != nil {
			return nil, fmt.Errorf("dagflow: List: bad After: %w", err)
		}
		q.Before = c
	}
	out := &RunList{Runs: []RunSummary{}}
	var runs []store.Run
	var pending []bool // of runs, as Status says
	for {
		err := e.store.View(ctx, func(tx store.Tx) (err error) {
			runs, err = tx.Runs(q)
			if err != nil {
				return err
			}
			pending = pending[:0]
			for i := range runs {
				p, err := runPending(tx, &runs[i])
				if err != nil {
					return err
				}
				pending = append(pending, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("dagflow: List: %w", err)
		}
		for i, r := range runs {
			if o.State == StatePending && !pending[i] || o.State == StateRunning && pending[i] {
				continue
			}
			if len(out.Runs) == limit {
				last := out.Runs[len(out.Runs)-1]
				out.Next = encodeCursor(last.CreatedAt, last.ID)
				return out, nil
			}
			state := State(r.State)
			if r.State == store.RunRunning {
				state = StateRunning
				if pending[i] {
					state = StatePending
				}
			}
			out.Runs = append(out.Runs, RunSummary{ID: r.ID, State: state, CreatedAt: r.CreatedAt, StartedAt: r.StartedAt,
				CompletedAt: r.CompletedAt, Steps: r.Total, Done: r.Done, Failed: r.Failed, Error: r.Error})
		}
		if len(runs) < q.Limit {
			return out, nil // no more
		}
		// Runs left out as pending or running: read on.
		last := runs[len(runs)-1]
		q.Before = &store.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
	}
}

func encodeCursor(t time.Time, id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.UnixNano(), 10) + "/" + id))
}

func decodeCursor(s string) (*store.Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	ts, id, ok := strings.Cut(string(b), "/")
	if !ok {
		return nil, errors.New("malformed cursor")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, errors.New("malformed cursor")
	}
	return &store.Cursor{CreatedAt: time.Unix(0, n).UTC(), ID: id}, nil
}

// Cancel cancels a running run: its running attempts' contexts are
// cancelled (HTTP requests aborted; context.Cause says the run was
// cancelled, where Close's says the engine is closing), no step starts any
// more, a saga is
// compensated, and the run ends cancelled, calling onError. Cancel returns
// once the cancellation is in the store, not when the run has ended (use
// Wait). Cancelling a run that has ended returns a *StateError matching
// ErrConflict; cancelling one that is already stopping or compensating
// changes nothing.
func (e *Engine) Cancel(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	var eff flow.Effects
	err := e.store.Update(ctx, func(tx store.Tx) error {
		x := flow.Begin(tx, e.env(), e.now(), &eff)
		before, err := x.Stop(id, store.RunCancelled, "cancelled")
		if err != nil {
			return err
		}
		if before.State.Final() {
			return &StateError{Op: "cancel", RunID: id, State: string(before.State)}
		}
		return x.Flush()
	})
	if err != nil {
		return nil, runErr("Cancel", id, err)
	}
	e.apply(&eff, 0, nil, nil)
	return e.Status(ctx, id)
}

// Retry runs a failed or cancelled run again: its failed, skipped and
// cancelled steps start afresh with a new attempt budget, every completed
// step keeps its result, and the workflow timeout starts again. A run may be
// retried each time it fails. Retry returns once the retry is in the store.
// It returns a *StateError matching ErrConflict for a run that is running or
// completed, or a saga that was compensated.
func (e *Engine) Retry(ctx context.Context, id string) (*Status, error) {
	if e.closed.Load() {
		return nil, ErrClosed
	}
	e.forget(id)
	var eff flow.Effects
	err := e.store.Update(ctx, func(tx store.Tx) error {
		r, err := tx.Run(id)
		if err != nil {
			return err
		}
		if r.State != store.RunFailed && r.State != store.RunCancelled {
			return &StateError{Op: "retry", RunID: id, State: string(r.State)}
		}
		steps, err := tx.Steps(id)
		if err != nil {
			return err
		}
		for _, st := range steps {
			if st.Comp != store.CompNone {
				return &StateError{Op: "retry", RunID: id, State: string(r.State),
					Reason: "its saga rolled back its completed steps; create a new run instead"}
			}
		}
		x := flow.Begin(tx, e.env(), e.now(), &eff)
		if err := x.Retry(id); err != nil {
			return err
		}
		return x.Flush()
	})
	if err != nil {
		return nil, runErr("Retry", id, err)
	}
	e.apply(&eff, 0, nil, nil)
	e.notify(store.Event{Kind: store.EventRun, RunID: id}) // engines that cached the run drop it
	e.notify(store.Event{Kind: store.EventDue})
	e.signal()
	return e.Status(ctx, id)
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
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !e.quiet() {
		select {
		case <-ctx.Done():
			return errors.Join(ctx.Err(), e.Close())
		case <-tick.C:
		}
	}
	return e.Close()
}

// quiet reports whether no attempt is queued or under way.
func (e *Engine) quiet() bool {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	return e.active == 0 && len(e.queue) == 0
}

// Close stops the engine: it starts no new attempt, cancels the contexts of
// the attempts under way and waits for their handlers to return. An attempt
// that completed is recorded; one that failed because of the shutdown is
// not, and runs again when an engine next opens the store. Close first waits
// for the Create calls under way to return. It closes the store when the
// engine opened it (WithPath or the default), not one given with WithStore.
// Calls on the engine after Close return ErrClosed.
func (e *Engine) Close() error {
	var err error
	e.once.Do(func() { err = e.shutdown() })
	return err
}

func (e *Engine) shutdown() error {
	e.closed.Store(true)
	e.cancel(errClosing)
	e.creating.Lock() // the Creates under way are over; later ones see closed
	e.creating.Unlock()
	e.bg.Wait()
	e.workers.Wait()
	e.cmu.Lock()
	for _, rc := range e.cache {
		rc.cancel()
	}
	e.cache = map[string]*runCache{}
	e.cmu.Unlock()
	e.http.CloseIdleConnections()
	if e.ownStore {
		return e.store.Close()
	}
	return nil
}
