// Command dagflow runs workflow files whose steps are HTTP job handlers;
// inspects, retries, cancels, resumes and deletes the runs kept in a bbolt
// database; sends events to the runs that wait for them; manages the
// schedules that create runs; and serves an engine's JSON API and console
// (dagflow serve) on bbolt or PostgreSQL.
//
// Run 'dagflow help' for the commands, their flags, the environment variables
// and the exit codes; usage below is that text.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
)

// Exit codes. They are documented in usage; keep the two in step.
const (
	exitOK     = 0 // success; every run waited for completed
	exitFailed = 1 // a run waited for failed or was cancelled
	exitInput  = 2 // bad input: usage, workflow file, run id, run state
	exitError  = 3 // operational: database in use or unreadable, engine or I/O error
	// A command stopped by SIGINT or SIGTERM exits 128 + the signal number:
	// 130 or 143.
	exitSignal = 128
)

const usage = `dagflow runs workflow files whose steps are HTTP job handlers, and inspects
the runs kept in a bbolt database file; dagflow serve runs an engine with a
JSON API for programs in any language.

Usage:
  dagflow <command> [flags] [arguments]

Commands:
  run         run a workflow file to its end and print the run's status
  validate    check a workflow file
  status      print the status of a run
  list        list the runs in the database
  graph       draw a workflow file or a run as Graphviz dot or Mermaid
  retry       run the failed steps of a failed or cancelled run again, and wait
  cancel      cancel an unfinished run, and wait for it to end
  resume      finish the runs a stopped process left unfinished
  delete      delete a run that has ended
  prune       delete the runs that ended more than some time ago
  send-event  send an event to the steps waiting for it
  schedule    add, list or remove the schedules that create runs at cron ticks
  console     serve the web console
  serve       run an engine with a JSON API under /v1 and the console, on a
              bbolt file or on PostgreSQL shared by several serve processes

Run 'dagflow help <command>' or 'dagflow <command> --help' for a command's flags.
Flags may come before or after the arguments.

Output:
  Statuses are printed on stdout as indented JSON (the shape of Engine.Status);
  messages and logs go to stderr, so stdout can be piped to jq.

Environment:
  DAGFLOW_DB             the default of --db (otherwise dagflow.db)
  DAGFLOW_SECRET         the key that signs requests to job handlers and webhooks
                         (Dagflow-Signature header); unset: requests are unsigned
  DAGFLOW_BASE_URL       the default of --base-url
  DAGFLOW_CONSOLE_TOKEN  the default of console --token
  DAGFLOW_API_TOKEN      the bearer token every serve API call must carry;
                         serve needs one to listen beyond this machine

The database:
  One process at a time may open a database file. A command started while
  another process holds it fails within about a second with exit code 3.
  run, console, serve and schedule add create the file; the other commands
  need it to exist. Opening a database resumes the runs left unfinished in it
  (run, retry, cancel, resume, console, serve); status, list, graph and
  schedule list only read it; delete, prune, send-event, schedule add and
  schedule remove change it but run nothing in it. serve --postgres keeps its
  runs in PostgreSQL instead, which several serve processes may share.

Exit codes:
  0    success; for run, retry, cancel and resume: the run(s) completed
  1    a run failed or was cancelled, or waits for an event that only
       'dagflow send-event' can send once the command has exited (its status
       is printed)
  2    bad input: wrong usage, a missing or invalid workflow file, an unknown
       run or schedule id, a run in the wrong state for retry, cancel or delete,
       a bad event, cron expression or time zone
  3    operational error: the database is in use by another process or cannot
       be opened, an engine or I/O error
  130  interrupted by SIGINT (143: SIGTERM). Nothing is cancelled: the engine
       closes and the unfinished run resumes with 'dagflow resume'.
`

func main() {
	ctx, stop, sig := signalContext()
	code := (&cli{stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv, signal: sig}).main(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// signalContext returns a context cancelled by the first SIGINT or SIGTERM,
// and the signal received. A second signal kills the process the default
// way, in case shutting down hangs.
func signalContext() (context.Context, func(), *atomic.Value) {
	ctx, cancel := context.WithCancel(context.Background())
	var got atomic.Value
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			signal.Stop(ch)
			got.Store(s)
			cancel()
		case <-done:
		}
	}()
	return ctx, func() { close(done); signal.Stop(ch); cancel() }, &got
}

// cli is one invocation of the command.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	signal         *atomic.Value // the os.Signal that cancelled the context, if any
}

// command is a subcommand; usage lists them.
type command struct {
	name string
	run  func(c *cli, ctx context.Context, args []string) error
}

var commands = []command{
	{"run", (*cli).cmdRun},
	{"validate", (*cli).cmdValidate},
	{"status", (*cli).cmdStatus},
	{"list", (*cli).cmdList},
	{"graph", (*cli).cmdGraph},
	{"retry", (*cli).cmdRetry},
	{"cancel", (*cli).cmdCancel},
	{"resume", (*cli).cmdResume},
	{"delete", (*cli).cmdDelete},
	{"prune", (*cli).cmdPrune},
	{"send-event", (*cli).cmdSendEvent},
	{"schedule", (*cli).cmdSchedule},
	{"console", (*cli).cmdConsole},
	{"serve", (*cli).cmdServe},
}

func (c *cli) main(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, usage)
		return exitInput
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 {
			// "dagflow help run" is "dagflow run --help", and "dagflow
			// help schedule add" is "dagflow schedule add --help".
			name, rest = rest[0], append(slices.Clone(rest[1:]), "--help")
			break
		}
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	for _, cmd := range commands {
		if cmd.name == name {
			return c.exit(cmd.run(c, ctx, rest))
		}
	}
	fmt.Fprintf(c.stderr, "dagflow: unknown command %q\nRun 'dagflow help' for the commands.\n", name)
	return exitInput
}

// exitErr is an error with the exit code it means. An empty message
// prints nothing (the command said what it had to say).
type exitErr struct {
	code int
	msg  string
}

func (e *exitErr) Error() string { return e.msg }

// errExit exits with code, printing nothing more.
func errExit(code int) error { return &exitErr{code: code} }

// inputError is bad input: exit code 2.
func inputError(format string, args ...any) error {
	return &exitErr{code: exitInput, msg: fmt.Sprintf(format, args...)}
}

// opError is an operational error: exit code 3.
func opError(format string, args ...any) error {
	return &exitErr{code: exitError, msg: fmt.Sprintf(format, args...)}
}

// exit prints err, if any, on stderr and returns the exit code it means.
// Errors that are not an *exitErr are operational.
func (c *cli) exit(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	code, msg := exitError, err.Error()
	var e *exitErr
	if errors.As(err, &e) {
		code, msg = e.code, e.msg
	}
	if s, ok := c.signal.Load().(syscall.Signal); ok && code == exitError {
		// What failed was most likely cut short by the signal.
		code = exitSignal + int(s)
	}
	if msg != "" {
		for line := range strings.SplitSeq(strings.TrimRight(msg, "\n"), "\n") {
			fmt.Fprintln(c.stderr, "dagflow: "+line)
		}
	}
	return code
}

// interrupted returns the exit error of a command stopped by a signal.
func (c *cli) interrupted(what string) error {
	name, num := "signal", 2
	if s, ok := c.signal.Load().(os.Signal); ok {
		name = s.String()
		if n, ok := s.(syscall.Signal); ok {
			num = int(n)
		}
	}
	return &exitErr{code: exitSignal + num, msg: fmt.Sprintf("%s: %s", name, what)}
}

// flagSet is a command's flags and its help text.
type flagSet struct {
	*flag.FlagSet
	name     string // the command
	help     string
	defaults []func() error // fill in defaults from the environment after parsing
}

// newFlagSet returns the flag set of command name; --help prints help and
// the flags on stdout.
func (c *cli) newFlagSet(name, help string) *flagSet {
	fs := flag.NewFlagSet("dagflow "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{FlagSet: fs, name: name, help: help}
}

func (c *cli) printHelp(fs *flagSet) {
	fmt.Fprint(c.stdout, fs.help)
	fmt.Fprintln(c.stdout, "\nFlags:")
	var b strings.Builder
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	// The flag package writes "-db"; the usage lines (and most users) say
	// "--db". One-letter flags keep one dash (-v).
	for _, line := range strings.SplitAfter(b.String(), "\n") {
		if name, ok := strings.CutPrefix(line, "  -"); ok && len(name) > 1 && name[1] != ' ' && name[1] != '\t' && name[1] != '\n' {
			line = "  --" + name
		}
		fmt.Fprint(c.stdout, line)
	}
}

// setEmpty reports whether flag name was given with an empty value.
func setEmpty(fs *flagSet, name string) bool {
	empty := false
	fs.Visit(func(f *flag.Flag) {
		empty = empty || f.Name == name && f.Value.String() == ""
	})
	return empty
}

// parse parses args with flags and arguments in any order ("--" ends the
// flags) and checks the number of arguments is between min and max.
func (c *cli) parse(fs *flagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				c.printHelp(fs)
				return nil, err
			}
			return nil, inputError("%s: %v (see 'dagflow %s --help')", fs.name, err, fs.name)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	for _, f := range fs.defaults {
		if err := f(); err != nil {
			return nil, inputError("%s: %v", fs.name, err)
		}
	}
	switch {
	case len(pos) < min:
		return nil, inputError("%s: missing argument (see 'dagflow %s --help')", fs.name, fs.name)
	case len(pos) > max:
		return nil, inputError("%s: unexpected argument %q (see 'dagflow %s --help')", fs.name, pos[max], fs.name)
	}
	return pos, nil
}
