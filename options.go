package dagflow

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/store"
)

// An Option configures an Engine at Open. Options are checked at Open, which
// names the one that is wrong.
type Option func(*config) error

// config holds an engine's settings; Open fills in the defaults.
type config struct {
	path             string
	store            store.Store
	concurrency      int
	httpOpts         *httpstep.Options
	logger           *slog.Logger
	handlers         map[string]HandlerFunc
	lease            time.Duration
	poll             time.Duration
	openTimeout      time.Duration
	clock            Clock
	jitter           func(time.Duration) time.Duration
	hookTries        int
	logLimit         int
	maxInterruptions int
	maxMapItems      int
	maxDepth         int
	eventRetention   time.Duration
	retention        time.Duration
	maxPayload       int
	hooks            []Hooks
}

// Defaults of the engine's options.
const (
	// DefaultConcurrency is the number of attempts an engine runs at once.
	DefaultConcurrency = 64
	// DefaultLease is how long a claim on a step lasts in a store shared by
	// several engines before another engine may take the step over; the
	// engine renews it every third of that while the step runs.
	DefaultLease = 30 * time.Second
	// DefaultPollInterval is how often an engine on a shared store looks
	// for work that no notification told it about.
	DefaultPollInterval = 2 * time.Second
	// DefaultOpenTimeout is how long Open waits for a database file held
	// by another process.
	DefaultOpenTimeout = time.Second
	// DefaultWebhookAttempts is how many times a webhook is sent before it
	// is given up (it stays in the store, marked undelivered).
	DefaultWebhookAttempts = 10
	// DefaultLogLines is how many log lines are kept per attempt.
	DefaultLogLines = 1000
	// DefaultMaxInterruptions is how many times the attempts of one step
	// may be cut short by their engine stopping: the step fails at the
	// fifth.
	DefaultMaxInterruptions = 5
	// DefaultMaxMapItems is the most items a map step may have.
	DefaultMaxMapItems = 10_000
	// DefaultMaxDepth is how deep sub-workflows may nest.
	DefaultMaxDepth = 8
	// DefaultEventRetention is how long sent events are kept.
	DefaultEventRetention = 7 * 24 * time.Hour
	// DefaultMaxPayload is the largest step result or event payload, in
	// bytes.
	DefaultMaxPayload = 1 << 20
)

// WithPath stores runs in the bbolt file at path, creating it if needed.
// Open needs WithPath or WithStore.
func WithPath(path string) Option {
	return func(c *config) error {
		if path == "" {
			return errors.New("WithPath: empty path")
		}
		c.path = path
		return nil
	}
}

// WithStore stores runs in s instead of a bbolt file: memory.New() for runs
// that need no durability, a PostgreSQL store for several processes, or a
// store of your own. The engine does not close a store given this way.
func WithStore(s store.Store) Option {
	return func(c *config) error {
		if s == nil {
			return errors.New("WithStore: nil store")
		}
		c.store = s
		return nil
	}
}

// WithConcurrency sets how many attempts the engine runs at once, across all
// runs (default DefaultConcurrency). Steps that wait (sleeps, events, child
// runs, map steps themselves) hold no worker. On a store that engines share
// the engine may hold up to half as many claims again, on steps waiting to
// start (see "Storage" in the package documentation).
func WithConcurrency(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithConcurrency: %d is less than 1", n)
		}
		c.concurrency = n
		return nil
	}
}

// WithHTTP configures the client of HTTP job steps and webhooks: the base
// URL that relative URLs resolve against, the signing secret, the reply size
// limit (see httpstep.Options for each default). Without it, steps and
// webhooks with absolute URLs still work, unsigned; relative URLs are a
// validation error.
func WithHTTP(o httpstep.Options) Option {
	return func(c *config) error {
		c.httpOpts = &o
		return nil
	}
}

// WithLogger sets the logger of the engine (default slog.Default()). Lines
// that step handlers log through Input.Logger go to it too. The engine logs
// at DEBUG each run created and completed and each attempt completed; at
// INFO each attempt that failed, each run that failed or was cancelled and
// each webhook delivered; at WARN and ERROR what needs a look: a webhook
// that failed, a handler that panicked, steps waiting for a handler that is
// not registered, a store that refused a write.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// WithHandler registers a Go step handler before the engine resumes the runs
// left unfinished in its store, so that they find their handlers at once.
// Engine.Handle does the same after Open.
func WithHandler(name string, h HandlerFunc) Option {
	return func(c *config) error {
		if name == "" || h == nil {
			return errors.New("WithHandler: empty name or nil handler")
		}
		if c.handlers == nil {
			c.handlers = make(map[string]HandlerFunc)
		}
		c.handlers[name] = h
		return nil
	}
}

// WithLease sets how long a claim on a step lasts in a shared store before
// another engine may take the step over (default DefaultLease). Stores used
// by one engine at a time (bbolt, memory) need no lease.
func WithLease(d time.Duration) Option {
	return func(c *config) error {
		if d < 100*time.Millisecond {
			return fmt.Errorf("WithLease: %v is shorter than 100ms", d)
		}
		c.lease = d
		return nil
	}
}

// WithPollInterval sets how often an engine on a shared store looks for work
// no notification told it about (default DefaultPollInterval).
func WithPollInterval(d time.Duration) Option {
	return func(c *config) error {
		if d < 10*time.Millisecond {
			return fmt.Errorf("WithPollInterval: %v is shorter than 10ms", d)
		}
		c.poll = d
		return nil
	}
}

// WithOpenTimeout sets how long Open waits for a database file that another
// process holds before it fails (default DefaultOpenTimeout).
func WithOpenTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithOpenTimeout: %v is not positive", d)
		}
		c.openTimeout = d
		return nil
	}
}

// WithWebhookAttempts sets how many times a webhook is sent before the
// engine gives up on it (default DefaultWebhookAttempts).
func WithWebhookAttempts(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithWebhookAttempts: %d is less than 1", n)
		}
		c.hookTries = n
		return nil
	}
}

// WithLogLines sets how many log lines are kept per attempt (default
// DefaultLogLines); 0 keeps none.
func WithLogLines(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("WithLogLines: %d is negative", n)
		}
		c.logLimit = n
		return nil
	}
}

// WithMaxInterruptions sets how many attempts of one step may be cut short
// by their engine stopping (a crash, a lost lease): the step fails, with an
// error that says so, when its attempts were interrupted n times (default
// DefaultMaxInterruptions). An interrupted attempt does not count against
// the step's maxAttempts: a crash is not the step's failure; this limit
// stops a step whose attempts keep killing their process from
// crash-looping forever.
func WithMaxInterruptions(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithMaxInterruptions: %d is less than 1", n)
		}
		c.maxInterruptions = n
		return nil
	}
}

// WithMaxMapItems sets the most items a map step may have (default
// DefaultMaxMapItems); a longer list fails the step with an error that says
// so.
func WithMaxMapItems(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithMaxMapItems: %d is less than 1", n)
		}
		c.maxMapItems = n
		return nil
	}
}

// WithMaxDepth sets how deep sub-workflows may nest (default
// DefaultMaxDepth); Create refuses a workflow that nests deeper.
func WithMaxDepth(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithMaxDepth: %d is less than 1", n)
		}
		c.maxDepth = n
		return nil
	}
}

// WithEventRetention sets how long events sent with SendEvent are kept for
// steps that start waiting after they were sent (default
// DefaultEventRetention).
func WithEventRetention(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithEventRetention: %v is not positive", d)
		}
		c.eventRetention = d
		return nil
	}
}

// WithRetention removes runs that ended more than d ago, with their steps,
// attempts and webhooks, in the background, a few at a time (default: runs
// are kept until Delete). Child runs go with their parent.
func WithRetention(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("WithRetention: %v is not positive", d)
		}
		c.retention = d
		return nil
	}
}

// WithMaxPayload sets the largest step result or event payload the engine
// stores, in bytes (default DefaultMaxPayload). A larger result fails its
// attempt for good, saying which and how large; SendEvent refuses a larger
// payload.
func WithMaxPayload(n int) Option {
	return func(c *config) error {
		if n < 1 {
			return fmt.Errorf("WithMaxPayload: %d is less than 1", n)
		}
		c.maxPayload = n
		return nil
	}
}

// Clock tells the engine the time and makes its timers: real time by
// default; a fake one (dagflowtest.Clock) makes a day-long sleep or a
// nightly schedule take milliseconds in tests.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed, unless
	// stopped first.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer made by a Clock.
type Timer interface {
	// Stop stops the timer; it reports whether it stopped it before it
	// fired.
	Stop() bool
}

// WithClock sets the engine's clock (default: the system's).
func WithClock(c Clock) Option {
	return func(cfg *config) error {
		if c == nil {
			return errors.New("WithClock: nil clock")
		}
		cfg.clock = c
		return nil
	}
}

// systemClock is the real time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }
func (systemClock) AfterFunc(d time.Duration, f func()) Timer {
	return time.AfterFunc(d, f)
}

// Hooks are functions the engine calls as attempts and runs go; the otel
// module uses them for traces and metrics. Every field may be nil. They are
// called on the engine's goroutines and must return quickly.
type Hooks struct {
	// RunCreated is called by Create before it stores a run, with
	// Create's context; what it returns (a W3C traceparent, say) is kept
	// with the run and handed to every attempt in AttemptInfo.Trace.
	RunCreated func(ctx context.Context, runID string) (trace string)
	// AttemptStarted is called before a step's handler runs, with the
	// attempt's context; the context it returns is the handler's (and is
	// where an HTTP step's traceparent comes from).
	AttemptStarted func(ctx context.Context, a AttemptInfo) context.Context
	// AttemptEnded is called once the attempt's outcome is known, with the
	// context AttemptStarted returned; err is nil when it succeeded.
	AttemptEnded func(ctx context.Context, a AttemptInfo, err error)
	// RunEnded is called once a run has ended.
	RunEnded func(runID string, state State)
	// Backlog is called with the number of steps ready but not started
	// (up to 10,000), each time the engine looks for work.
	Backlog func(n int)
	// HTTPHeader adds headers to the requests of HTTP steps and webhooks,
	// from the context AttemptStarted returned (a W3C traceparent, say).
	HTTPHeader func(ctx context.Context, h http.Header)
}

// AttemptInfo describes an attempt for Hooks.
type AttemptInfo struct {
	WorkflowID   string
	StepID       string
	Kind         string // "handler" or "http"
	Attempt      int
	Item         int // -1 when not a map item
	Compensation bool
	StartedAt    time.Time
	// Trace is what RunCreated returned for the run.
	Trace string
}

// WithHooks adds functions the engine calls as attempts and runs go.
func WithHooks(h Hooks) Option {
	return func(c *config) error {
		c.hooks = append(c.hooks, h)
		return nil
	}
}
