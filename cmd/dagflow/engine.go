package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/httpstep"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/bolt"
)

// defaultDB is the database file of --db when neither the flag nor
// $DAGFLOW_DB gives one.
const defaultDB = "dagflow.db"

// dbFlags are the flags of every command that opens the database.
type dbFlags struct {
	db      string
	verbose verbosity
}

func (f *dbFlags) register(c *cli, fs *flagSet) {
	fs.StringVar(&f.db, "db", "", "the bbolt database `FILE` (default $DAGFLOW_DB, else "+defaultDB+")")
	fs.Var(&f.verbose, "v", "log more on stderr: -v (INFO) adds failed attempts and runs and webhooks sent, -v -v (DEBUG) every run and attempt (default WARN)")
	fs.defaults = append(fs.defaults, func() error {
		if setEmpty(fs, "db") {
			return errors.New("--db: give a file name (or leave the flag out for $DAGFLOW_DB, else " + defaultDB + ")")
		}
		f.db = cmp.Or(f.db, c.getenv("DAGFLOW_DB"), defaultDB)
		return nil
	})
}

// runFlags are the flags of the commands that run steps.
type runFlags struct {
	dbFlags
	baseURL        string
	baseURLFromEnv bool // baseURL came from $DAGFLOW_BASE_URL
}

func (f *runFlags) register(c *cli, fs *flagSet) {
	f.dbFlags.register(c, fs)
	fs.StringVar(&f.baseURL, "base-url", "",
		"the absolute `URL` that relative step and webhook URLs resolve against (default $DAGFLOW_BASE_URL)")
	fs.defaults = append(fs.defaults, func() error {
		if f.baseURL == "" {
			f.baseURL = c.getenv("DAGFLOW_BASE_URL")
			f.baseURLFromEnv = f.baseURL != ""
		}
		return nil
	})
}

// verbosity is a flag counted each time it is given.
type verbosity int

func (v *verbosity) String() string   { return strconv.Itoa(int(*v)) }
func (v *verbosity) IsBoolFlag() bool { return true }
func (v *verbosity) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("takes no value; repeat it for more")
	}
	if b {
		*v++
	}
	return nil
}

func (v verbosity) level() slog.Level {
	switch {
	case v >= 2:
		return slog.LevelDebug
	case v == 1:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// logger returns the engine's logger: text on stderr, so that stdout is
// only JSON.
func (c *cli) logger(v verbosity) *slog.Logger {
	return slog.New(slog.NewTextHandler(c.stderr, &slog.HandlerOptions{Level: v.level()}))
}

// httpOptions returns the options of the engine's HTTP client, checked.
func (c *cli) httpOptions(f *runFlags) (httpstep.Options, error) {
	o := httpstep.Options{BaseURL: f.baseURL, UserAgent: "dagflow-cli"}
	if s := c.getenv("DAGFLOW_SECRET"); s != "" {
		o.Secret = []byte(s)
	}
	if _, err := httpstep.New(o); err != nil {
		from := "--base-url"
		if f.baseURLFromEnv {
			from = "$DAGFLOW_BASE_URL"
		}
		return o, inputError("%s: %v", from, err)
	}
	return o, nil
}

// openMode says how a command uses the database.
type openMode int

const (
	// openCreate creates the file if needed and runs the runs in it.
	openCreate openMode = iota
	// openExisting needs the file to exist, and runs the runs in it.
	openExisting
	// openQuiet needs the file to exist and lets the command change it,
	// but runs nothing in it (see quietStore).
	openQuiet
	// openQuietCreate is openQuiet that creates the file if needed.
	openQuietCreate
	// openReadOnly needs the file to exist and changes nothing in it.
	openReadOnly
)

// creates reports whether the mode creates a missing database file.
func (m openMode) creates() bool { return m == openCreate || m == openQuietCreate }

// engine is an open engine and the store it closes with it.
type engine struct {
	*dagflow.Engine
	store store.Store // closed after the engine; nil when the engine owns it
	path  string      // the database file
}

// Close closes the engine, then its store. It may be called more than once.
func (e *engine) Close() error {
	err := e.Engine.Close()
	if e.store != nil {
		err = errors.Join(err, e.store.Close())
		e.store = nil
	}
	return err
}

// open opens an engine on the database of f. The engine resumes the runs
// left unfinished in it, except with openReadOnly.
func (c *cli) open(f *dbFlags, mode openMode, opts ...dagflow.Option) (*engine, error) {
	s, err := c.openStore(f, mode)
	if err != nil {
		return nil, err
	}
	return c.openEngine(f, s, mode, opts...)
}

// openStore opens the database of f, for openEngine.
func (c *cli) openStore(f *dbFlags, mode openMode) (*bolt.Store, error) {
	if !mode.creates() {
		if _, err := os.Stat(f.db); errors.Is(err, os.ErrNotExist) {
			return nil, inputError("%s: no such database (give one with --db or DAGFLOW_DB)", f.db)
		} else if err != nil {
			return nil, opError("%s: %v", f.db, err)
		}
	}
	s, err := bolt.Open(f.db, bolt.Options{Timeout: dagflow.DefaultOpenTimeout, ReadOnly: mode == openReadOnly})
	if err != nil {
		return nil, c.openError(f.db, err)
	}
	return s, nil
}

// openEngine opens an engine on s, which it closes with the engine (or at
// once, when the engine cannot be opened).
func (c *cli) openEngine(f *dbFlags, s *bolt.Store, mode openMode, opts ...dagflow.Option) (*engine, error) {
	opts = append(opts, dagflow.WithLogger(c.logger(f.verbose)))
	var st store.Store = s
	switch mode {
	case openReadOnly:
		st = readOnlyStore{s}
	case openQuiet, openQuietCreate:
		st = quietStore{s}
	}
	eng, err := dagflow.Open(append(opts, dagflow.WithStore(st))...)
	if err != nil {
		s.Close()
		return nil, c.openError(f.db, err)
	}
	return &engine{Engine: eng, store: s, path: f.db}, nil
}

func (c *cli) openError(path string, err error) error {
	if strings.Contains(err.Error(), "in use by another process") {
		return opError("%s: the database is in use by another process (a running dagflow command or a program with an engine on it); try again when it has finished", path)
	}
	return opError("%s: cannot open the database: %v", path, err)
}

// readOnlyStore lets an engine read a database opened read-only. An engine
// resumes the unfinished runs of its store as it opens, which commands that
// only look (status, list, graph) must not do: sending requests to job
// handlers and cancelling them a moment later when the command exits. So
// Update does nothing: the engine's resumption, claims and webhook sweeps
// find no work, and its reads (Status, List, Workflow) go through View.
type readOnlyStore struct{ store.Store }

func (readOnlyStore) Update(context.Context, func(store.Tx) error) error { return nil }

// Exclusive says the store has a single user, so the engine takes no leases.
func (readOnlyStore) Exclusive() bool { return true }

// quietStore lets an engine change a database without running anything in
// it, for the commands that make one change (delete, prune, send-event,
// schedule) and exit: an engine resumes the unfinished runs of its store as
// it opens, and these commands must neither send requests to job handlers
// nor cut them short a moment later, nor create the runs of schedules'
// ticks. Inside the engine's write transactions the store shows no due
// step, timer or webhook and no schedule, so the engine's loop finds no
// work; the engine's calls (Delete, SendEvent, Schedule, Unschedule) read
// and write as usual. What they make due (the steps after a wait that an
// event ended, say) waits in the file for the next engine to open it.
// Reads (View) see everything.
type quietStore struct{ *bolt.Store }

func (s quietStore) Update(ctx context.Context, fn func(store.Tx) error) error {
	return s.Store.Update(ctx, func(tx store.Tx) error { return fn(quietTx{tx}) })
}

// quietTx is a write transaction of a quietStore.
type quietTx struct{ store.Tx }

func (quietTx) DueSteps(time.Time, int) ([]store.Step, error)       { return nil, nil }
func (quietTx) DueWebhooks(time.Time, int) ([]store.Webhook, error) { return nil, nil }
func (quietTx) NextDue() (time.Time, error)                         { return time.Time{}, nil }
func (quietTx) Schedules() ([]store.Schedule, error)                { return nil, nil }

// close closes eng, saying on stderr if that failed: the command's output
// is written by then, and what it did is in the database.
func (c *cli) close(eng *engine) {
	if err := eng.Close(); err != nil {
		fmt.Fprintf(c.stderr, "dagflow: %s: closing the database: %v\n", eng.path, err)
	}
}
