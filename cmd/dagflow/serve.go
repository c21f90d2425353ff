package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/cmd/dagflow/internal/api"
	"github.com/dagflow/dagflow/console"
	"github.com/dagflow/dagflow/store/postgres"
)

const serveHelp = `Usage: dagflow serve [--db FILE | --postgres DSN [--schema NAME]] [--addr HOST:PORT]
                     [--base-url URL] [--actions] [--shutdown-timeout D] [-v]

Serve runs an engine until SIGINT or SIGTERM, with the web console at / and a
JSON API under /v1 for programs in any language:

  POST   /v1/workflows              create a run of the workflow in the body
  GET    /v1/workflows/{id}         its status; ?wait=30s waits for its end
  GET    /v1/workflows              the runs, newest first (?state=&limit=&after=)
  POST   /v1/workflows/{id}/cancel  cancel a run
  POST   /v1/workflows/{id}/retry   retry a failed or cancelled run
  POST   /v1/events                 send an event: {"name", "key", "payload"}
  POST   /v1/schedules              add a schedule: {"id", "cron", "timezone", "workflow"}
  GET    /v1/schedules              the schedules
  DELETE /v1/schedules/{id}         remove a schedule
  GET    /v1/openapi.json           the OpenAPI document of these calls

Bodies are JSON (Content-Type: application/json), 10 MiB at most; errors are
{"error": "..."} with the status that fits. A run id with "/" (a child run,
a schedule's run) goes percent-encoded in one segment: /v1/workflows/a%2Fb.
Steps are HTTP job handlers: relative URLs resolve against --base-url, and
requests are signed with $DAGFLOW_SECRET when it is set.

When $DAGFLOW_API_TOKEN is set, every call under /v1 needs the header
"Authorization: Bearer <token>"; serve refuses to listen on an address other
machines can reach (such as :8080) without one. The console's pages need no
token; --actions adds its retry and cancel buttons, which need the token too.

--db is a bbolt file that this process alone holds (created if needed).
--postgres is a PostgreSQL database that several serve processes, on one
machine or many, share: each runs steps of every run, and each answers for
every run. DSN is a postgres:// URL or a key=value string; the password may
come from $PGPASSWORD or ~/.pgpass rather than the command line.

On SIGINT or SIGTERM serve stops taking calls (a call waiting with ?wait=
answers the status the run has then), lets the steps under way finish (for
at most --shutdown-timeout, when given; steps cut short run again when an
engine next opens the database), and exits 0. Unfinished runs stay in the
database. Port 0 picks a free port; the address is printed on stderr.

Exit status: 0 after a clean shutdown, 2 bad flags, or a reachable address
without a token, 3 the database cannot be opened or the address cannot be
listened on.
`

// Timeouts of the server: a client that sends its request slowly is cut
// off. There is no write timeout: a call may wait for its run (?wait=) and
// the console streams.
var serveTimeouts = struct{ readHeader, read, idle time.Duration }{10 * time.Second, time.Minute, 2 * time.Minute}

// serveFlags are the flags of serve.
type serveFlags struct {
	runFlags
	postgres, schema string
	addr             string
	actions          bool
	drain            time.Duration
}

func (f *serveFlags) register(c *cli, fs *flagSet) {
	f.runFlags.register(c, fs)
	fs.StringVar(&f.postgres, "postgres", "", "a PostgreSQL `DSN`, instead of --db: several serve processes may share it")
	fs.StringVar(&f.schema, "schema", postgres.DefaultSchema, "the PostgreSQL schema of --postgres's tables")
	fs.StringVar(&f.addr, "addr", "127.0.0.1:8080", "the `HOST:PORT` to listen on")
	fs.BoolVar(&f.actions, "actions", false, "offer retry and cancel in the console")
	fs.DurationVar(&f.drain, "shutdown-timeout", 0, "how long steps under way may take to finish after SIGTERM (default: as long as their timeouts allow)")
	fs.defaults = append(fs.defaults, func() error {
		given := map[string]bool{}
		fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
		switch {
		case given["postgres"] && given["db"]:
			return errors.New("give --db or --postgres, not both")
		case given["postgres"] && f.postgres == "":
			return errors.New("--postgres: give a DSN")
		case given["schema"] && f.postgres == "":
			return errors.New("--schema goes with --postgres")
		case f.drain < 0:
			return fmt.Errorf("--shutdown-timeout %s is negative", f.drain)
		}
		if _, _, err := net.SplitHostPort(f.addr); err != nil {
			return fmt.Errorf("--addr %q: %v", f.addr, err)
		}
		return nil
	})
}

func (c *cli) cmdServe(ctx context.Context, args []string) error {
	fs := c.newFlagSet("serve", serveHelp)
	var f serveFlags
	f.register(c, fs)
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	token := c.getenv("DAGFLOW_API_TOKEN")
	hopts, err := c.httpOptions(&f.runFlags)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return opError("serve: %v", err)
	}
	defer ln.Close()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && token == "" {
		return inputError("serve: %s can be reached from other machines: set DAGFLOW_API_TOKEN, which every API call must then carry, or listen on 127.0.0.1", ln.Addr())
	}
	eng, err := c.openServe(ctx, &f, dagflow.WithHTTP(hopts))
	if err != nil {
		return err
	}
	defer c.close(eng)
	return c.serve(ctx, ln, eng, token, &f)
}

// openServe opens the engine of serve on --postgres or --db.
func (c *cli) openServe(ctx context.Context, f *serveFlags, opts ...dagflow.Option) (*engine, error) {
	if f.postgres == "" {
		return c.open(&f.dbFlags, openCreate, opts...)
	}
	log := c.logger(f.verbose)
	octx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	where := fmt.Sprintf("PostgreSQL schema %s", f.schema)
	pg, err := postgres.Open(octx, f.postgres, postgres.Options{Schema: f.schema, Logger: log})
	if err != nil {
		return nil, opError("serve: --postgres: %v", err)
	}
	eng, err := dagflow.Open(append(opts, dagflow.WithStore(pg), dagflow.WithLogger(log))...)
	if err != nil {
		pg.Close()
		return nil, opError("serve: %s: %v", where, err)
	}
	return &engine{Engine: eng, store: pg, path: where}, nil
}

// serve serves the API and the console on ln until ctx is done, then shuts
// down: the server first, then the engine, letting steps under way finish.
func (c *cli) serve(ctx context.Context, ln net.Listener, eng *engine, token string, f *serveFlags) error {
	a := api.New(eng.Engine, api.Options{Token: token, Logger: c.logger(f.verbose)})
	mux := http.NewServeMux()
	mux.Handle("/v1/", a)
	mux.Handle("/", console.Handler(eng.Engine, console.WithActions(f.actions), console.WithToken(token)))
	// Console streams last as long as their run: they get shutdownGrace
	// to end, then their contexts are cancelled.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: serveTimeouts.readHeader,
		ReadTimeout:       serveTimeouts.read,
		IdleTimeout:       serveTimeouts.idle,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	fmt.Fprintf(c.stderr, "dagflow: serving on http://%s/ (API at /v1/, console at /) for %s\n", ln.Addr(), eng.path)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return opError("serve: %v", err)
	case <-ctx.Done():
	}
	fmt.Fprintln(c.stderr, "dagflow: shutting down: taking no more calls, letting the steps under way finish")
	a.EndWaits()
	grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		cancelBase()
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return opError("serve: %v", err)
	}
	return c.shutdown(eng, f.drain)
}

// shutdown shuts the engine down, letting the steps under way finish within
// timeout (0: no limit), and closes the database.
func (c *cli) shutdown(eng *engine, timeout time.Duration) error {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	err := eng.Engine.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		fmt.Fprintf(c.stderr, "dagflow: steps still under way after --shutdown-timeout %s were cut short; they run again when an engine next opens the database\n", timeout)
		err = nil
	}
	if err := errors.Join(err, eng.Close()); err != nil {
		return opError("serve: closing the engine: %v", err)
	}
	fmt.Fprintln(c.stderr, "dagflow: serve stopped")
	return nil
}
