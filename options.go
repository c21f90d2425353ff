package dagflow

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/store"
)

// An Option configures an Engine at Open.
type Option func(*config) error

// config holds an engine's settings; Open fills in the defaults and
// validates it.
type config struct {
	path        string
	store       store.Store
	concurrency int
	http        *httpstep.Client
	httpOpts    *httpstep.Options
	logger      *slog.Logger
	handlers    map[string]HandlerFunc
	lease       time.Duration
	poll        time.Duration
	openTimeout time.Duration
	now         func() time.Time
	jitter      func(time.Duration) time.Duration
	hookTries   int
	logLimit    int
}

// Defaults of the engine's options.
const (
	// DefaultPath is the bbolt file an engine opens when given neither
	// WithPath nor WithStore.
	DefaultPath = "dagflow.db"
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
)

// WithPath stores runs in the bbolt file at path, creating it if needed.
// The default is DefaultPath in the working directory.
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
// runs (default DefaultConcurrency). When more steps are ready than that, a
// worker that finishes a step goes on with a step of the same run that the
// outcome made ready, as a goroutine running the workflow would, and a slot
// that frees up takes the step that has been due longest.
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
