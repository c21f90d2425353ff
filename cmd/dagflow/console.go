package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/console"
)

const consoleHelp = `Usage: dagflow console [--db FILE] [--base-url URL] [--addr HOST:PORT] [--actions] [--token T]

Console serves the web console on --addr (default 127.0.0.1:8080, this machine
only) until SIGINT or SIGTERM, then shuts down cleanly: requests under way
finish (event streams are ended after 2 s), the engine closes, and unfinished
runs stay in the database for the next process. The console shows the runs of
the database; the engine it runs on resumes the unfinished ones, like 'dagflow
resume', with the same --base-url and $DAGFLOW_SECRET.

With --actions the console also offers retry and cancel. On an address other
than a loopback one (such as --addr :8080) actions need a token, --token or
$DAGFLOW_CONSOLE_TOKEN, which every action must carry; console refuses to
start without one. Port 0 picks a free port; the address is printed on stderr.

Exit status: 0 after a clean shutdown, 2 bad flags or actions on a public
address without a token, 3 the database is in use or cannot be opened, or the
address cannot be listened on.
`

func (c *cli) cmdConsole(ctx context.Context, args []string) error {
	fs := c.newFlagSet("console", consoleHelp)
	var f runFlags
	f.register(c, fs)
	addr := fs.String("addr", "127.0.0.1:8080", "the `HOST:PORT` to listen on")
	actions := fs.Bool("actions", false, "offer retry and cancel (default: the console only shows runs)")
	token := fs.String("token", "", "the `token` actions must carry (default $DAGFLOW_CONSOLE_TOKEN)")
	if _, err := c.parse(fs, args, 0, 0); err != nil {
		return err
	}
	*token = cmp.Or(*token, c.getenv("DAGFLOW_CONSOLE_TOKEN"))
	if _, _, err := net.SplitHostPort(*addr); err != nil {
		return inputError("console: --addr %q: %v", *addr, err)
	}
	hopts, err := c.httpOptions(&f)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return opError("console: %v", err)
	}
	defer ln.Close()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && !tcp.IP.IsLoopback() && *actions && *token == "" {
		return inputError("console: --actions on %s, which other machines can reach, needs --token or DAGFLOW_CONSOLE_TOKEN", ln.Addr())
	}
	eng, err := c.open(&f.dbFlags, openCreate, dagflow.WithHTTP(hopts))
	if err != nil {
		return err
	}
	defer c.close(eng)

	// Streams (server-sent events) last as long as their run: they get
	// shutdownGrace to end, then their contexts are cancelled.
	base, cancelBase := context.WithCancel(context.Background())
	defer cancelBase()
	srv := &http.Server{
		Handler:           console.Handler(eng.Engine, console.WithActions(*actions), console.WithToken(*token)),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	mode := "read-only"
	if *actions {
		mode = "with actions"
	}
	fmt.Fprintf(c.stderr, "dagflow: console (%s) on http://%s/ for %s\n", mode, ln.Addr(), f.db)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return opError("console: %v", err)
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		cancelBase()
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return opError("console: %v", err)
	}
	if err := eng.Close(); err != nil {
		return opError("console: closing the engine: %v", err)
	}
	fmt.Fprintln(c.stderr, "dagflow: console stopped")
	return nil
}

// shutdownGrace is how long the console's requests under way have to end
// once it is told to stop.
const shutdownGrace = 2 * time.Second
