package postgres_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/dagflow/dagflow"
	"github.com/dagflow/dagflow/store"
	"github.com/dagflow/dagflow/store/postgres"
)

// The multi-process tests run several engine processes (this test binary,
// run again as children) on one PostgreSQL schema, the way an application
// scales out: the children share the work, one of them is killed with
// SIGKILL midway, and the parent checks the store and what the handlers saw.
//
// They need PostgreSQL: DAGFLOW_POSTGRES_DSN names it, by default
// postgres://postgres@127.0.0.1:5432/test. When it cannot be reached they
// skip, except in CI (CI=true), where they fail. Each test works in a schema
// of its own, dropped when it ends.

const (
	pgDefaultDSN = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
	mpChildEnv   = "DAGFLOW_MP_CHILD"
)

func pgDSN() string {
	if dsn := os.Getenv("DAGFLOW_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return pgDefaultDSN
}

// pgExec runs one statement on a connection of its own.
func pgExec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, pgDSN())
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	return err
}

var (
	pgOnce sync.Once
	pgErr  error
)

// needPostgres ends the test when the server cannot be reached: a skip, or
// a failure in CI.
func needPostgres(t testing.TB) {
	t.Helper()
	pgOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		pgErr = pgExec(ctx, "SELECT 1")
	})
	if pgErr != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("PostgreSQL (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %v", pgDefaultDSN, pgErr)
		}
		t.Skipf("PostgreSQL (DAGFLOW_POSTGRES_DSN, default %s) cannot be reached: %v", pgDefaultDSN, pgErr)
	}
}

// pgSchema returns a fresh schema name, dropped when the test ends (after
// the stores opened later are closed).
func pgSchema(t testing.TB) string {
	t.Helper()
	needPostgres(t)
	var b [5]byte
	rand.Read(b[:])
	name := "dfmp_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := pgExec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{name}.Sanitize()+" CASCADE"); err != nil {
			t.Errorf("dropping schema %s: %v", name, err)
		}
	})
	return name
}

// pgStore opens a store on schema, closed when the test ends.
func pgStore(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.Open(ctx, pgDSN(), postgres.Options{Schema: schema, MaxConns: 8})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// testLogger sends the engine's warnings and errors to the test's log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tlogWriter struct{ t testing.TB }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls a run's status until cond holds.
func waitFor(t testing.TB, eng *dagflow.Engine, id string, cond func(*dagflow.Status) bool) *dagflow.Status {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := eng.Status(ctxT(t), id)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s: condition not met; status %+v", id, st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ---- the child process ----

// mpLease and mpPoll are the children's lease and poll interval in the
// multi-process test: short, so that the killed child's steps are taken over
// within a second or two.
const (
	mpLease = 2 * time.Second
	mpPoll  = 200 * time.Millisecond
	// mpSlow is how long the slow steps run: longer than a lease, so they
	// complete on their first attempt only if the lease is renewed.
	mpSlow = 3 * time.Second
)

// TestMultiProcessChild is a child engine process of TestMultiProcess and
// BenchmarkPostgresFanOut; it does nothing in a normal test run.
//
// It talks with the parent by lines: it writes "mp:ready" once its engine is
// open, then obeys the lines it reads ("create", "wait", "run ID N") until
// its standard input ends, and then closes its engine and exits.
func TestMultiProcessChild(t *testing.T) {
	mode := os.Getenv(mpChildEnv)
	if mode == "" {
		t.Skip("runs only as a child process of TestMultiProcess and BenchmarkPostgresFanOut")
	}
	ctx := context.Background()
	conc, _ := strconv.Atoi(os.Getenv("MP_CONC"))
	lease, _ := time.ParseDuration(os.Getenv("MP_LEASE"))
	poll, _ := time.ParseDuration(os.Getenv("MP_POLL"))
	conns, _ := strconv.Atoi(os.Getenv("MP_CONNS"))
	committers, _ := strconv.Atoi(os.Getenv("MP_COMMITTERS"))
	s, err := postgres.Open(ctx, pgDSN(), postgres.Options{Schema: os.Getenv("MP_SCHEMA"), MaxConns: int32(conns), Committers: committers})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	opts := []dagflow.Option{dagflow.WithStore(s), dagflow.WithConcurrency(conc), dagflow.WithLease(lease), dagflow.WithPollInterval(poll)}
	pid := os.Getpid()
	if mode == "work" {
		logf, err := os.OpenFile(os.Getenv("MP_LOG"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		defer logf.Close()
		// One write per line (O_APPEND): a SIGKILL cannot tear a line,
		// and lines of several processes do not mix.
		note := func(kind string, in dagflow.Input) {
			fmt.Fprintf(logf, "%d %s %s %d %s\n", pid, in.WorkflowID, in.StepID, in.Attempt, kind)
		}
		work := func(ctx context.Context, in dagflow.Input) (any, error) {
			note("start", in)
			time.Sleep(time.Duration(1000+mrand.IntN(4000)) * time.Microsecond)
			prev := 0
			for _, raw := range in.PreviousSteps.All() {
				n, _ := strconv.Atoi(string(raw))
				prev = max(prev, n)
			}
			note("end", in)
			return prev + 1, nil
		}
		slow := func(ctx context.Context, in dagflow.Input) (any, error) {
			note("start", in)
			select {
			case <-time.After(mpSlow):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			prev := 0
			for _, raw := range in.PreviousSteps.All() {
				n, _ := strconv.Atoi(string(raw))
				prev = max(prev, n)
			}
			note("end", in)
			return prev + 1, nil
		}
		join := func(ctx context.Context, in dagflow.Input) (any, error) {
			note("start", in)
			n := in.PreviousSteps.Len()
			note("end", in)
			return n, nil
		}
		opts = append(opts, dagflow.WithHandler("work", work), dagflow.WithHandler("slow", slow), dagflow.WithHandler("join", join))
	} else {
		noop := func(ctx context.Context, in dagflow.Input) (any, error) { return nil, nil }
		sleep := func(ctx context.Context, in dagflow.Input) (any, error) {
			select {
			case <-time.After(benchSleep):
				return nil, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		opts = append(opts, dagflow.WithHandler("noop", noop), dagflow.WithHandler("sleep", sleep))
		for _, name := range orderSteps {
			opts = append(opts, dagflow.WithHandler(name, func(ctx context.Context, in dagflow.Input) (any, error) {
				return orderResult{Step: name, OK: true}, nil
			}))
		}
	}
	if path := os.Getenv("MP_CPUPROFILE"); path != "" {
		f, err := os.Create(fmt.Sprintf("%s.%d", path, pid))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	eng, err := dagflow.Open(opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	say := func(format string, args ...any) { fmt.Printf("mp:"+format+"\n", args...) }
	say("ready %d", pid)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := strings.Fields(in.Text())
		if len(cmd) == 0 {
			continue
		}
		switch cmd[0] {
		case "create": // the multi-process test's workload
			seed, _ := strconv.ParseUint(os.Getenv("MP_SEED"), 10, 64)
			for _, wf := range mpWorkload(seed, os.Getenv("MP_HOOK")) {
				if _, err := eng.Create(ctx, wf); err != nil {
					t.Fatal(err)
				}
			}
			say("created")
		case "wait": // wait for every run of the workload to end
			seed, _ := strconv.ParseUint(os.Getenv("MP_SEED"), 10, 64)
			for _, wf := range mpWorkload(seed, "") {
				wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
				_, err := eng.Wait(wctx, wf.ID)
				cancel()
				if err != nil {
					t.Fatalf("Wait %s: %v", wf.ID, err)
				}
			}
			say("done")
		case "run": // a benchmark iteration: run ID N-LEAVES [HANDLER]
			n, _ := strconv.Atoi(cmd[2])
			handler := "noop"
			if len(cmd) > 3 {
				handler = cmd[3]
			}
			if _, err := eng.Create(ctx, fanOutWorkflow(cmd[1], n, handler)); err != nil {
				t.Fatal(err)
			}
			st, err := eng.Wait(ctx, cmd[1])
			if err != nil {
				t.Fatal(err)
			}
			say("done %s %s", cmd[1], st.State)
		case "orders": // a benchmark iteration: orders PREFIX FROM TO
			from, _ := strconv.Atoi(cmd[2])
			to, _ := strconv.Atoi(cmd[3])
			// Each run created and waited for on a goroutine of its own,
			// as a service does per request.
			var wg sync.WaitGroup
			var failed atomic.Int64
			for i := from; i < to; i++ {
				wg.Go(func() {
					wf := orderWorkflow(fmt.Sprintf("%s-%d", cmd[1], i))
					if _, err := eng.Create(ctx, wf); err != nil {
						t.Error(err)
						failed.Add(1)
						return
					}
					if st, err := eng.Wait(ctx, wf.ID); err != nil || st.State != dagflow.StateCompleted {
						t.Error(wf.ID, st, err)
						failed.Add(1)
					}
				})
			}
			wg.Wait()
			say("done %s %d", cmd[1], failed.Load())
		case "stats": // the store's counters
			st := s.Stats()
			say("stats %d %d %d %d %d %d %d", st.Groups, st.Functions, st.Retries, st.LockTimeouts, st.Reordered, st.Cached, st.Stale)
		}
	}
}

// mpWorkload is the multi-process test's workflows: chains of 5 to 10
// serial steps and fan-outs of 20 to 50 parallel leaves between a root and
// a join; a few chains have a step that runs longer than a lease. Each run
// has an onComplete webhook when hook is set.
func mpWorkload(seed uint64, hook string) []dagflow.Workflow {
	r := mrand.New(mrand.NewPCG(seed, 7))
	retries := &dagflow.RetryConfig{MaxAttempts: 3, Backoff: dagflow.Fixed, InitialInterval: 10 * time.Millisecond}
	var wfs []dagflow.Workflow
	for i := range 200 {
		wf := dagflow.Workflow{OnComplete: hook}
		if i%2 == 0 {
			wf.ID = fmt.Sprintf("chain-%03d", i)
			n := 5 + r.IntN(6)
			slow := -1
			if i%20 == 0 {
				slow = r.IntN(n)
			}
			for k := range n {
				s := dagflow.Step{ID: fmt.Sprintf("s%02d", k), Handler: "work", Retries: retries}
				if k == slow {
					s.Handler = "slow"
				}
				if k > 0 {
					s.DependsOn = []string{fmt.Sprintf("s%02d", k-1)}
				}
				wf.Steps = append(wf.Steps, s)
			}
		} else {
			wf.ID = fmt.Sprintf("fan-%03d", i)
			wf.Steps = append(wf.Steps, dagflow.Step{ID: "root", Handler: "work", Retries: retries})
			n := 20 + r.IntN(31)
			var leaves []string
			for k := range n {
				id := fmt.Sprintf("leaf%02d", k)
				leaves = append(leaves, id)
				wf.Steps = append(wf.Steps, dagflow.Step{ID: id, Handler: "work", DependsOn: []string{"root"}, Parallel: true, Retries: retries})
			}
			wf.Steps = append(wf.Steps, dagflow.Step{ID: "join", Handler: "join", DependsOn: leaves, Retries: retries})
		}
		wfs = append(wfs, wf)
	}
	return wfs
}

// fanOutWorkflow is a root, n parallel leaves that run handler, and a join.
func fanOutWorkflow(id string, n int, handler string) dagflow.Workflow {
	wf := dagflow.Workflow{ID: id, Steps: []dagflow.Step{{ID: "root", Handler: "noop"}}}
	leaves := make([]string, n)
	for i := range n {
		leaves[i] = fmt.Sprintf("leaf%04d", i)
		wf.Steps = append(wf.Steps, dagflow.Step{ID: leaves[i], Handler: handler, DependsOn: []string{"root"}, Parallel: true})
	}
	wf.Steps = append(wf.Steps, dagflow.Step{ID: "join", Handler: "noop", DependsOn: leaves})
	return wf
}

// benchSleep is how long the leaves of the I/O-bound fan-out sleep.
const benchSleep = 20 * time.Millisecond

// orderSteps is the order workflow of the root package's benchmarks: the
// hosted docs' order chain and one more step; each returns a small result.
var orderSteps = []string{"validate-order", "charge-payment", "ship-order", "send-confirmation", "archive-order"}

type orderResult struct {
	Step string `json:"step"`
	OK   bool   `json:"ok"`
}

func orderWorkflow(id string) dagflow.Workflow {
	wf := dagflow.Workflow{ID: id, Context: []byte(fmt.Sprintf(`{"orderId":%q,"amount":49.9}`, id))}
	for k, name := range orderSteps {
		s := dagflow.Step{ID: name, Handler: name}
		if k > 0 {
			s.DependsOn = []string{orderSteps[k-1]}
		}
		wf.Steps = append(wf.Steps, s)
	}
	return wf
}

// ---- the parent side ----

// mpChild is a running child process.
type mpChild struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	closeIn func() error
	lines   chan string   // its "mp:" lines
	exited  chan struct{} // closed when it has exited
	err     error         // how it exited, once exited is closed
	pid     int
	stderr  string // its standard error's file
	omu     sync.Mutex
	out     []string // the lines of its standard output that are not "mp:" lines
}

func startChild(t testing.TB, mode string, env ...string) *mpChild {
	t.Helper()
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestMultiProcessChild$", "-test.count=1", "-test.timeout=10m")
	cmd.Env = append(os.Environ(), append([]string{mpChildEnv + "=" + mode}, env...)...)
	c := &mpChild{cmd: cmd, lines: make(chan string, 16), exited: make(chan struct{}), stderr: filepath.Join(dir, "stderr")}
	errf, err := os.Create(c.stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer errf.Close()
	cmd.Stderr = errf
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	c.stdin, c.closeIn = in, in.Close
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.pid = cmd.Process.Pid
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "mp:"); ok {
				c.lines <- line
				continue
			}
			// The child's test output (a t.Fatal, say) goes with its
			// standard error, for tail.
			c.omu.Lock()
			c.out = append(c.out, sc.Text())
			c.omu.Unlock()
		}
		close(c.lines)
		c.err = cmd.Wait()
		close(c.exited)
	}()
	t.Cleanup(func() {
		c.closeIn()
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
		}
	})
	return c
}

func (c *mpChild) send(t testing.TB, line string) {
	t.Helper()
	if _, err := fmt.Fprintln(c.stdin, line); err != nil {
		t.Fatalf("child %d: sending %q: %v", c.pid, line, err)
	}
}

// expect waits for the child's next line, which must start with want.
func (c *mpChild) expect(t testing.TB, want string, timeout time.Duration) string {
	t.Helper()
	select {
	case line, ok := <-c.lines:
		if !ok {
			t.Fatalf("child %d ended before saying %q:\n%s", c.pid, want, c.tail())
		}
		if !strings.HasPrefix(line, want) {
			t.Fatalf("child %d said %q, want %q", c.pid, line, want)
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("child %d did not say %q within %v:\n%s", c.pid, want, timeout, c.tail())
	}
	return ""
}

// tail returns the end of the child's standard error and test output.
func (c *mpChild) tail() string {
	b, _ := os.ReadFile(c.stderr)
	c.omu.Lock()
	b = append(b, strings.Join(c.out, "\n")...)
	c.omu.Unlock()
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

type mpLine struct {
	pid     int
	run     string
	step    string
	attempt int
	end     bool
}

func readMPLog(t *testing.T, path string) []mpLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		t.Fatal(err)
	}
	defer f.Close()
	var out []mpLine
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var l mpLine
		var kind string
		if _, err := fmt.Sscanf(sc.Text(), "%d %s %s %d %s", &l.pid, &l.run, &l.step, &l.attempt, &kind); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		l.end = kind == "end"
		out = append(out, l)
	}
	return out
}

// TestMultiProcess runs 200 workflows on three engine processes sharing one
// PostgreSQL schema, SIGKILLs one of them midway, and checks that every run
// completed, that no completed step ran again, that the attempts taken from
// the retry budget (attempts less interruptions) stayed within maxAttempts
// and the interruptions within the engine's limit, that attempts ran again
// only when the killed process had them, that the killed process's
// interrupted attempts were recorded as such and counted, that results
// completed by one process reached the steps other processes ran, that the
// work was spread over the processes, and that each run's webhook was
// delivered once.
func TestMultiProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("the multi-process test takes a while")
	}
	schema := pgSchema(t)
	seed := mrand.Uint64()
	t.Logf("schema %s, seed %d", schema, seed)
	logPath := filepath.Join(t.TempDir(), "handlers.log")

	var hmu sync.Mutex
	hooks := map[string]int{} // Idempotency-Key -> deliveries
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hmu.Lock()
		hooks[r.Header.Get("Idempotency-Key")]++
		hmu.Unlock()
	}))
	defer srv.Close()
	delivered := func() (runs, dups int) {
		hmu.Lock()
		defer hmu.Unlock()
		for _, n := range hooks {
			runs++
			if n > 1 {
				dups++
			}
		}
		return
	}

	env := []string{"MP_SCHEMA=" + schema, "MP_LOG=" + logPath, "MP_SEED=" + strconv.FormatUint(seed, 10),
		"MP_HOOK=" + srv.URL + "/done", "MP_CONC=8", "MP_CONNS=12", "MP_LEASE=" + mpLease.String(), "MP_POLL=" + mpPoll.String()}
	t0 := time.Now()
	children := make([]*mpChild, 3)
	for i := range children {
		children[i] = startChild(t, "work", env...)
	}
	for _, c := range children {
		c.expect(t, "ready", 30*time.Second)
	}
	t.Logf("children ready after %v", time.Since(t0).Round(time.Millisecond))
	start := time.Now()
	creator, victim := children[0], children[2]
	// The victim is killed while the creator still creates runs, or after.
	creator.send(t, "create")

	wfs := mpWorkload(seed, "")
	total := 0
	for _, wf := range wfs {
		total += len(wf.Steps)
	}
	// Kill the victim midway, while it runs attempts.
	deadline := time.Now().Add(60 * time.Second)
	for {
		lines := readMPLog(t, logPath)
		ends, victimOpen := 0, map[string]bool{}
		for _, l := range lines {
			key := fmt.Sprintf("%s/%s/%d", l.run, l.step, l.attempt)
			if l.end {
				ends++
			}
			if l.pid == victim.pid {
				victimOpen[key] = !l.end
			}
		}
		open := 0
		for _, o := range victimOpen {
			if o {
				open++
			}
		}
		if ends >= total*2/5 && open > 0 {
			victim.cmd.Process.Signal(syscall.SIGKILL)
			t.Logf("killed child %d after %v, with %d of %d steps done and %d attempts under way on it", victim.pid, time.Since(start).Round(time.Millisecond), ends, total, open)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the workload did not get midway within 60 s (%d of %d steps done)", ends, total)
		}
		time.Sleep(20 * time.Millisecond)
	}
	<-victim.exited
	creator.expect(t, "created", 60*time.Second)
	t.Logf("created 200 runs in %v", time.Since(start).Round(time.Millisecond))
	for _, c := range children[:2] {
		c.send(t, "wait")
	}
	for _, c := range children[:2] {
		c.expect(t, "done", 60*time.Second)
		logStats(t, c)
	}
	t.Logf("every run ended %v after creation", time.Since(start).Round(time.Millisecond))
	defer func() { t.Logf("checked after %v", time.Since(t0).Round(time.Millisecond)) }()
	// Webhooks: wait for the last deliveries (a webhook the victim had
	// claimed is due again only after its delivery lease, minutes away).
	for last, n := time.Now(), 0; time.Since(last) < 2*time.Second; time.Sleep(50 * time.Millisecond) {
		if m, _ := delivered(); m != n {
			n, last = m, time.Now()
			if n == len(wfs) {
				break
			}
		}
	}
	for _, c := range children[:2] {
		c.closeIn()
		select {
		case <-c.exited:
			if c.err != nil {
				t.Errorf("child %d: %v\n%s", c.pid, c.err, c.tail())
			}
		case <-time.After(20 * time.Second):
			t.Errorf("child %d did not exit", c.pid)
		}
	}

	// What the handlers saw.
	type key struct{ run, step string }
	type att struct {
		run, step string
		n         int
	}
	lines := readMPLog(t, logPath)
	starts := map[att][]int{} // pids that started the attempt
	ends := map[att]int{}     // the pid that ended it
	for _, l := range lines {
		a := att{l.run, l.step, l.attempt}
		if l.end {
			ends[a] = l.pid
		} else {
			starts[a] = append(starts[a], l.pid)
		}
	}

	// What the store says.
	s := pgStore(t, schema)
	pids := map[int]int{} // pid -> completed attempts
	spread, fans := 0, 0
	interrupted, retried := 0, 0
	err := s.View(context.Background(), func(tx store.Tx) error {
		for _, wf := range wfs {
			run, err := tx.Run(wf.ID)
			if err != nil {
				t.Errorf("run %s: %v", wf.ID, err)
				continue
			}
			if run.State != store.RunCompleted {
				t.Errorf("run %s: %s (%s)", wf.ID, run.State, run.Error)
				continue
			}
			steps, err := tx.Steps(wf.ID)
			if err != nil {
				return err
			}
			attempts, err := tx.Attempts(wf.ID, -1)
			if err != nil {
				return err
			}
			recorded := map[att]store.Attempt{}
			for _, a := range attempts {
				recorded[att{wf.ID, a.StepID, a.Number}] = a
			}
			fanPids := map[int]bool{}
			for _, st := range steps {
				maxAttempts := wf.Steps[st.Index].Retries.MaxAttempts
				if st.State != store.StepCompleted {
					t.Errorf("%s/%s: %s", wf.ID, st.ID, st.State)
					continue
				}
				// An interrupted attempt runs again as the next attempt
				// number without counting against maxAttempts; the
				// interruptions are bounded on their own.
				if budget := st.Attempts - st.Interruptions; budget > maxAttempts || budget < 1 {
					t.Errorf("%s/%s: %d attempts of which %d interrupted: %d from the retry budget, maxAttempts %d",
						wf.ID, st.ID, st.Attempts, st.Interruptions, budget, maxAttempts)
				}
				if st.Interruptions > dagflow.DefaultMaxInterruptions {
					t.Errorf("%s/%s: %d interruptions, more than the limit of %d", wf.ID, st.ID, st.Interruptions, dagflow.DefaultMaxInterruptions)
				}
				recordedInterruptions := 0
				for n := 1; n <= st.Attempts; n++ {
					if recorded[att{wf.ID, st.ID, n}].Interrupted {
						recordedInterruptions++
					}
				}
				if recordedInterruptions != st.Interruptions {
					t.Errorf("%s/%s: %d attempts recorded as interrupted, but the step counts %d interruptions", wf.ID, st.ID, recordedInterruptions, st.Interruptions)
				}
				for n := 1; n <= st.Attempts+dagflow.DefaultMaxInterruptions+maxAttempts; n++ {
					a := att{wf.ID, st.ID, n}
					ps := starts[a]
					if len(ps) > 1 {
						t.Errorf("%s/%s: attempt %d started %d times (pids %v)", wf.ID, st.ID, n, len(ps), ps)
					}
					if n > st.Attempts && len(ps) > 0 {
						t.Errorf("%s/%s ran again (attempt %d, pid %d) after it completed on attempt %d", wf.ID, st.ID, n, ps[0], st.Attempts)
					}
					if n > st.Attempts || len(ps) == 0 {
						continue
					}
					if n > 1 {
						// The handlers never fail: only the kill may cost
						// an attempt.
						retried++
						// (The victim may have claimed attempt n-1 and
						// died before its handler started.)
						prev := starts[att{wf.ID, st.ID, n - 1}]
						owner := recorded[att{wf.ID, st.ID, n - 1}].Owner
						if len(prev) == 0 && !strings.Contains(owner, fmt.Sprintf("-%d-", victim.pid)) || len(prev) > 0 && prev[0] != victim.pid {
							t.Errorf("%s/%s: attempt %d ran after attempt %d on pid %v, which was not killed (%q)",
								wf.ID, st.ID, n, n-1, prev, recorded[att{wf.ID, st.ID, n - 1}].Error)
						}
					}
					if n < st.Attempts {
						// An attempt that did not complete: interrupted
						// by the kill, and recorded as such.
						interrupted++
						rec, ok := recorded[a]
						switch {
						case !ok:
							t.Errorf("%s/%s: attempt %d is not recorded", wf.ID, st.ID, n)
						case !rec.Interrupted:
							t.Errorf("%s/%s: attempt %d recorded with error %q and not as interrupted", wf.ID, st.ID, n, rec.Error)
						}
					}
				}
				done := att{wf.ID, st.ID, st.Attempts}
				pid, ok := ends[done]
				if !ok {
					t.Errorf("%s/%s completed on attempt %d, but no handler returned from it", wf.ID, st.ID, st.Attempts)
					continue
				}
				pids[pid]++
				if strings.HasPrefix(st.ID, "leaf") {
					fanPids[pid] = true
				}
				if strings.HasPrefix(wf.ID, "chain-") && string(st.Result) != strconv.Itoa(st.Index+1) {
					t.Errorf("%s/%s: result %s, want %d (the results of earlier steps did not reach it)", wf.ID, st.ID, st.Result, st.Index+1)
				}
				if st.ID == "join" && string(st.Result) != strconv.Itoa(len(steps)-1) {
					t.Errorf("%s/join saw %s previous results, want %d", wf.ID, st.Result, len(steps)-1)
				}
			}
			if strings.HasPrefix(wf.ID, "fan-") {
				fans++
				if len(fanPids) > 1 {
					spread++
				}
			}
			hs, err := tx.Webhooks(wf.ID)
			if err != nil {
				return err
			}
			hmu.Lock()
			n := hooks[wf.ID+"/complete/0"]
			hmu.Unlock()
			switch {
			case len(hs) != 1:
				t.Errorf("run %s has %d webhooks, want 1", wf.ID, len(hs))
			case n > 1:
				t.Errorf("run %s: webhook delivered %d times", wf.ID, n)
			case n == 0 && hs[0].Attempts == 0:
				t.Errorf("run %s: webhook never sent", wf.ID)
			case n == 0:
				// Claimed by the victim before it was killed: sent
				// again once its delivery lease runs out.
				t.Logf("run %s: webhook claimed by the killed process (attempts %d)", wf.ID, hs[0].Attempts)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var dist []string
	for _, c := range children {
		dist = append(dist, fmt.Sprintf("pid %d: %d", c.pid, pids[c.pid]))
	}
	t.Logf("completed steps by process: %s; %d of %d fan-outs spread over more than one process; %d attempts interrupted by the kill, %d retried", strings.Join(dist, ", "), spread, fans, interrupted, retried)
	for _, c := range children {
		if pids[c.pid] == 0 {
			t.Errorf("child %d completed no step", c.pid)
		}
	}
	if spread < fans/2 {
		t.Errorf("only %d of %d fan-outs spread over more than one process", spread, fans)
	}
	if interrupted == 0 {
		t.Errorf("the kill interrupted no attempt")
	}
	if runs, dups := delivered(); dups > 0 || runs < len(wfs)-16 {
		t.Errorf("webhooks of %d runs delivered, %d of them more than once", runs, dups)
	}
}

// ---- the benchmark ----

// fanOutLeaves is the size of the benchmark's fan-outs: a root, 2,000
// leaves and a join.
const fanOutLeaves = 2000

// orderRuns is the number of order workflows of the orders benchmark.
const orderRuns = 1000

// benchWorkload is one workload of the benchmark table.
type benchWorkload struct {
	name string
	// conc is the workers per process; committers the store's
	// Options.Committers.
	conc, committers int
	steps            int
	// run runs one iteration on the cluster, as iteration i.
	run func(tb testing.TB, children []*mpChild, i int)
}

// benchWorkloads are the workloads of the table: a 2,000-step fan-out of
// no-op steps (with the benchmark's old 16 workers per process, and with
// the engine's default of 64), of steps that each sleep 20 ms (16 workers
// per process), and 1,000 five-step order workflows, each created and
// waited for on a goroutine of its own, spread over the processes.
var benchWorkloads = []benchWorkload{
	{"fan-out 2,000 no-op", 16, postgres.DefaultCommitters, fanOutLeaves + 2, fanOut("noop")},
	{"fan-out 2,000 no-op", dagflow.DefaultConcurrency, postgres.DefaultCommitters, fanOutLeaves + 2, fanOut("noop")},
	{"fan-out 2,000 x 20 ms", 16, postgres.DefaultCommitters, fanOutLeaves + 2, fanOut("sleep")},
	{"1,000 orders x 5 steps", dagflow.DefaultConcurrency, 1, orderRuns * len(orderSteps), orders},
	{"1,000 orders x 5 steps", dagflow.DefaultConcurrency, postgres.DefaultCommitters, orderRuns * len(orderSteps), orders},
}

func fanOut(handler string) func(tb testing.TB, children []*mpChild, i int) {
	return func(tb testing.TB, children []*mpChild, i int) {
		id := fmt.Sprintf("fan-%s-%d", handler, i)
		children[0].send(tb, fmt.Sprintf("run %s %d %s", id, fanOutLeaves, handler))
		if line := children[0].expect(tb, "done "+id, 5*time.Minute); !strings.HasSuffix(line, " completed") {
			tb.Fatalf("run %s: %s", id, line)
		}
	}
}

func orders(tb testing.TB, children []*mpChild, i int) {
	prefix := fmt.Sprintf("order%d", i)
	per := (orderRuns + len(children) - 1) / len(children)
	for k, c := range children {
		c.send(tb, fmt.Sprintf("orders %s %d %d", prefix, k*per, min((k+1)*per, orderRuns)))
	}
	for _, c := range children {
		if line := c.expect(tb, "done "+prefix, 5*time.Minute); line != "done "+prefix+" 0" {
			tb.Fatalf("orders %s: %s", prefix, line)
		}
	}
}

// benchCluster starts procs child engine processes with conc workers each
// on a fresh schema, runs reps iterations of w on them one after the other,
// and calls each with the time each took. It returns the mean number of
// functions per group of the children's stores.
func benchCluster(tb testing.TB, w benchWorkload, procs, reps int, each func(i int, d time.Duration)) float64 {
	schema := pgSchema(tb)
	env := []string{"MP_SCHEMA=" + schema, "MP_CONC=" + benchEnv("MP_CONC", strconv.Itoa(w.conc)),
		"MP_CONNS=" + benchEnv("MP_CONNS", "10"), "MP_COMMITTERS=" + strconv.Itoa(w.committers), "MP_LEASE=10s", "MP_POLL=1s"}
	children := make([]*mpChild, procs)
	for i := range children {
		children[i] = startChild(tb, "bench", env...)
	}
	for _, c := range children {
		c.expect(tb, "ready", 30*time.Second)
	}
	for i := range reps {
		start := time.Now()
		w.run(tb, children, i)
		each(i, time.Since(start))
	}
	var groups, fns int64
	for _, c := range children {
		g, f := logStats(tb, c)
		groups, fns = groups+g, fns+f
	}
	// Stop the children now, not when the test ends: their connections
	// would add up over the table's clusters.
	for _, c := range children {
		c.closeIn()
	}
	for _, c := range children {
		select {
		case <-c.exited:
		case <-time.After(20 * time.Second):
			c.cmd.Process.Kill()
		}
	}
	return float64(fns) / float64(max(groups, 1))
}

// logStats logs what a child's store's group committer did, and returns
// its groups and their functions.
func logStats(tb testing.TB, c *mpChild) (groups, fns int64) {
	tb.Helper()
	c.send(tb, "stats")
	line := c.expect(tb, "stats", 30*time.Second)
	var retries, timeouts, reordered, cached, stale int64
	fmt.Sscanf(line, "stats %d %d %d %d %d %d %d", &groups, &fns, &retries, &timeouts, &reordered, &cached, &stale)
	tb.Logf("child %d: %d groups of %.1f functions on average; %d run again at once to lock in order, %d after a backoff (%d after a lock timeout); %d rows read from the row cache, %d groups run again for a stale one",
		c.pid, groups, float64(fns)/float64(max(groups, 1)), reordered, retries, timeouts, cached, stale)
	return groups, fns
}

// benchProcs returns the process counts of the table: 1, 2 and 3, or those
// BENCH_PROCS lists (BENCH_PROCS=1,3). The ratio column is against the
// first.
func benchProcs() []int {
	var out []int
	for _, f := range strings.Split(os.Getenv("BENCH_PROCS"), ",") {
		if n, err := strconv.Atoi(f); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		return []int{1, 2, 3}
	}
	return out
}

func benchEnv(key, def string) string {
	if v := os.Getenv("BENCH_" + key); v != "" {
		return v
	}
	return def
}

// BenchmarkPostgresFanOut measures steps per second of a 2,000-step no-op
// fan-out run by 1, 2 and 3 engine processes on one PostgreSQL database.
func BenchmarkPostgresFanOut(b *testing.B) {
	for _, procs := range []int{1, 2, 3} {
		b.Run(fmt.Sprintf("procs=%d", procs), func(b *testing.B) {
			var total time.Duration
			benchCluster(b, benchWorkloads[0], procs, b.N, func(i int, d time.Duration) { total += d })
			b.ReportMetric(float64(b.N*benchWorkloads[0].steps)/total.Seconds(), "steps/s")
			b.ReportMetric(total.Seconds()/float64(b.N), "s/run")
		})
	}
}

// TestPostgresFanOutTable prints the benchmark's table: for each workload
// and 1, 2 and 3 processes, the median of three iterations (the first
// iteration of each cluster also warms it up), steps per second, the ratio
// to one process, and the mean size of the store's groups. It runs only
// with DAGFLOW_BENCH=1; BENCH_WORKLOADS=0,2 picks workloads by their index,
// BENCH_PROCS=1,3 the process counts.
func TestPostgresFanOutTable(t *testing.T) {
	if os.Getenv("DAGFLOW_BENCH") != "1" {
		t.Skip("set DAGFLOW_BENCH=1 to measure the PostgreSQL benchmark table")
	}
	pick := map[int]bool{}
	for _, f := range strings.Split(os.Getenv("BENCH_WORKLOADS"), ",") {
		if n, err := strconv.Atoi(f); err == nil {
			pick[n] = true
		}
	}
	table := "\n| workload | workers/process | committers | processes | seconds | steps/s | vs 1 process | functions/group |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
	for wi, w := range benchWorkloads {
		if len(pick) > 0 && !pick[wi] {
			continue
		}
		var one float64
		for _, procs := range benchProcs() {
			var ds []time.Duration
			group := benchCluster(t, w, procs, 3, func(i int, d time.Duration) { ds = append(ds, d) })
			t.Logf("%s, %d processes: %v", w.name, procs, ds)
			slices.Sort(ds)
			rate := float64(w.steps) / ds[1].Seconds()
			if one == 0 {
				one = rate
			}
			table += fmt.Sprintf("| %s | %d | %d | %d | %.2f | %.0f | %.2fx | %.1f |\n", w.name, w.conc, w.committers, procs, ds[1].Seconds(), rate, rate/one, group)
		}
	}
	t.Log(table)
}

// ---- several engines of one process on one schema ----

// pgEngine opens an engine on a store of its own (a pool of its own, as in
// another process) on schema, closed when the test ends. The poll interval
// is long, so that what happens within a second or two was told by a
// notification.
func pgEngine(t *testing.T, schema string, opts ...dagflow.Option) *dagflow.Engine {
	t.Helper()
	s := pgStore(t, schema)
	opts = append([]dagflow.Option{dagflow.WithStore(s), dagflow.WithLogger(testLogger(t)), dagflow.WithPollInterval(30 * time.Second)}, opts...)
	eng, err := dagflow.Open(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return eng
}

// TestPostgresCancelAcrossEngines cancels, on one engine, a run whose
// attempts run on another: they are cancelled at once (by notification, not
// the poll), and Wait returns on both engines. The run's steps spread to the
// second engine as soon as they are due, also by notification.
func TestPostgresCancelAcrossEngines(t *testing.T) {
	schema := pgSchema(t)
	var mu sync.Mutex
	started := map[string]string{}   // step -> engine
	cancelled := map[string]string{} // step -> engine
	block := func(name string) dagflow.HandlerFunc {
		return func(ctx context.Context, in dagflow.Input) (any, error) {
			mu.Lock()
			started[in.StepID] = name
			mu.Unlock()
			select {
			case <-ctx.Done():
			case <-time.After(20 * time.Second):
				return nil, errors.New("not cancelled")
			}
			mu.Lock()
			cancelled[in.StepID] = name
			mu.Unlock()
			return nil, ctx.Err()
		}
	}
	// a runs one attempt at a time, so that b gets the others.
	a := pgEngine(t, schema, dagflow.WithConcurrency(1), dagflow.WithLease(20*time.Second), dagflow.WithHandler("block", block("a")))
	b := pgEngine(t, schema, dagflow.WithLease(20*time.Second), dagflow.WithHandler("block", block("b")))
	wf := dagflow.Workflow{ID: "cancel-me"}
	for i := range 4 {
		wf.Steps = append(wf.Steps, dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: "block", Parallel: true})
	}
	ctx := ctxT(t)
	start := time.Now()
	if _, err := a.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(started)
		mu.Unlock()
		if n == 4 {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("after 5 s only %d steps started: %v", n, started)
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("4 steps started in %v: %v", time.Since(start).Round(time.Millisecond), started)
	onB := 0
	for _, name := range started {
		if name == "b" {
			onB++
		}
	}
	// a has one slot: b runs the other steps (all four, when its claim
	// comes first).
	if onB < 3 {
		t.Errorf("%d steps started on b, want at least 3", onB)
	}

	waited := make(chan *dagflow.Status, 1)
	go func() {
		st, err := b.Wait(ctx, "cancel-me")
		if err != nil {
			t.Error(err)
		}
		waited <- st
	}()
	cancelAt := time.Now()
	if _, err := a.Cancel(ctx, "cancel-me"); err != nil {
		t.Fatal(err)
	}
	st, err := a.Wait(ctx, "cancel-me")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCancelled {
		t.Errorf("state %s, want cancelled", st.State)
	}
	select {
	case st := <-waited:
		if st != nil && st.State != dagflow.StateCancelled {
			t.Errorf("Wait on b: state %s", st.State)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait on b did not return within 5 s of the run's end")
	}
	if d := time.Since(cancelAt); d > 3*time.Second {
		t.Errorf("cancelling took %v", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(cancelled) != 4 {
		t.Errorf("cancelled attempts %v, want all 4", cancelled)
	}
	for _, s := range st.Steps {
		if s.State != dagflow.StateCancelled || s.Attempts != 1 {
			t.Errorf("step %s: %s after %d attempts", s.ID, s.State, s.Attempts)
		}
	}
}

// TestPostgresWaitAcrossEngines waits on each of two engines for runs that
// either may end: Wait returns as soon as the run ends, not at the next
// poll.
func TestPostgresWaitAcrossEngines(t *testing.T) {
	schema := pgSchema(t)
	var mu sync.Mutex
	ranOn := map[string]string{}
	step := func(name string) dagflow.HandlerFunc {
		return func(ctx context.Context, in dagflow.Input) (any, error) {
			mu.Lock()
			ranOn[in.WorkflowID] = name
			mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			return name, nil
		}
	}
	engs := []*dagflow.Engine{
		pgEngine(t, schema, dagflow.WithHandler("step", step("a"))),
		pgEngine(t, schema, dagflow.WithHandler("step", step("b"))),
	}
	ctx := ctxT(t)
	for i := range 6 {
		id := fmt.Sprintf("w%d", i)
		creator, waiter := engs[i%2], engs[(i/2)%2]
		start := time.Now()
		if _, err := creator.Create(ctx, dagflow.Workflow{ID: id, Steps: []dagflow.Step{{ID: "s", Handler: "step"}}}); err != nil {
			t.Fatal(err)
		}
		st, err := waiter.Wait(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if st.State != dagflow.StateCompleted {
			t.Errorf("%s: %s", id, st.State)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%s: Wait returned after %v", id, d)
		}
	}
	t.Logf("ran on: %v", ranOn)
}

// TestPostgresLeaseRenewal runs a step much longer than the lease on one of
// two engines: the lease is renewed, so the other engine never takes the
// step over, and it completes on its first attempt.
func TestPostgresLeaseRenewal(t *testing.T) {
	schema := pgSchema(t)
	var starts atomic.Int64
	slow := func(ctx context.Context, in dagflow.Input) (any, error) {
		starts.Add(1)
		select {
		case <-time.After(2 * time.Second):
			return "done", nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	opts := []dagflow.Option{dagflow.WithLease(300 * time.Millisecond), dagflow.WithPollInterval(50 * time.Millisecond), dagflow.WithHandler("slow", slow)}
	a := pgEngine(t, schema, opts...)
	pgEngine(t, schema, opts...)
	ctx := ctxT(t)
	wf := dagflow.Workflow{ID: "long", Steps: []dagflow.Step{{ID: "s", Handler: "slow", Retries: &dagflow.RetryConfig{MaxAttempts: 5}}}}
	if _, err := a.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	st, err := a.Wait(ctx, "long")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted || st.Steps[0].Attempts != 1 || starts.Load() != 1 {
		t.Errorf("state %s after %d attempts (%d started): %s", st.State, st.Steps[0].Attempts, starts.Load(), st.Error)
	}
}

// TestPostgresLeaseLost takes a running step's lease away from the engine
// running it (as an engine that took over an expired lease would): the
// engine cancels the attempt at its next renewal, whether or not the handler
// waits on its context's Done channel, and drops its outcome.
func TestPostgresLeaseLost(t *testing.T) {
	schema := pgSchema(t)
	var sawDone, sawErr atomic.Bool
	handlers := []dagflow.Option{
		dagflow.WithHandler("done", func(ctx context.Context, in dagflow.Input) (any, error) {
			select {
			case <-ctx.Done():
				sawDone.Store(true)
				return nil, ctx.Err()
			case <-time.After(10 * time.Second):
				return "too late", nil
			}
		}),
		dagflow.WithHandler("poll", func(ctx context.Context, in dagflow.Input) (any, error) {
			// Never asks for Done: only Err tells it.
			for range 1000 {
				if ctx.Err() != nil {
					sawErr.Store(true)
					return nil, ctx.Err()
				}
				time.Sleep(10 * time.Millisecond)
			}
			return "too late", nil
		}),
	}
	eng := pgEngine(t, schema, append(handlers, dagflow.WithLease(300*time.Millisecond))...)
	ctx := ctxT(t)
	wf := dagflow.Workflow{ID: "stolen", Steps: []dagflow.Step{{ID: "a", Handler: "done", Parallel: true}, {ID: "b", Handler: "poll", Parallel: true}}}
	if _, err := eng.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	waitFor(t, eng, "stolen", func(st *dagflow.Status) bool {
		return st.Steps[0].State == dagflow.StateRunning && st.Steps[1].State == dagflow.StateRunning
	})
	// Another engine's takeover, by hand: a new owner and token, and a
	// lease that outlasts the test.
	steps := pgx.Identifier{schema, "steps"}.Sanitize()
	if err := pgExec(ctx, "UPDATE "+steps+" SET owner = 'thief', token = token + 1, lease_until = now() + interval '1 hour', due_at = now() + interval '1 hour' WHERE run_id = 'stolen'"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for !(sawDone.Load() && sawErr.Load()) {
		if time.Now().After(deadline) {
			t.Fatalf("after 3 s: handler waiting on Done cancelled: %v; handler polling Err cancelled: %v", sawDone.Load(), sawErr.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the outcomes reach the store, and are refused
	st, err := eng.Status(ctx, "stolen")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range st.Steps {
		if s.State != dagflow.StateRunning {
			t.Errorf("step %s: %s; want it left running under the thief's lease", s.ID, s.State)
		}
	}
}

// TestPostgresCloseHandsOver closes an engine while it runs a step: the
// attempt is given back, and another engine runs the step at once (told by
// a notification), without counting the cut attempt.
func TestPostgresCloseHandsOver(t *testing.T) {
	schema := pgSchema(t)
	started := make(chan string, 4)
	step := func(name string) dagflow.HandlerFunc {
		return func(ctx context.Context, in dagflow.Input) (any, error) {
			started <- name
			if name == "a" {
				<-ctx.Done()
				return nil, ctx.Err()
			}
			return "done by " + name, nil
		}
	}
	a := pgEngine(t, schema, dagflow.WithHandler("step", step("a")))
	ctx := ctxT(t)
	if _, err := a.Create(ctx, dagflow.Workflow{ID: "handover", Steps: []dagflow.Step{{ID: "s", Handler: "step"}}}); err != nil {
		t.Fatal(err)
	}
	if name := <-started; name != "a" {
		t.Fatalf("started on %s", name)
	}
	b := pgEngine(t, schema, dagflow.WithHandler("step", step("b")))
	closed := time.Now()
	a.Close()
	st, err := b.Wait(ctx, "handover")
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(closed); d > 3*time.Second {
		t.Errorf("the step ran again %v after Close", d)
	}
	if st.State != dagflow.StateCompleted || st.Steps[0].Attempts != 1 || string(st.Results["s"]) != `"done by b"` {
		t.Errorf("state %s, %d attempts, result %s", st.State, st.Steps[0].Attempts, st.Results["s"])
	}
}

// TestPostgresRetryAcrossEngines cancels a run on one engine while its steps
// run on another, retries it on the first, and the second runs the retried
// steps to completion: it does not keep the cancelled run's context.
func TestPostgresRetryAcrossEngines(t *testing.T) {
	schema := pgSchema(t)
	var cancel atomic.Bool
	cancel.Store(true)
	started := make(chan struct{}, 16)
	block := func(ctx context.Context, in dagflow.Input) (any, error) {
		started <- struct{}{}
		if !cancel.Load() {
			return "ok", nil
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	a := pgEngine(t, schema, dagflow.WithConcurrency(1), dagflow.WithHandler("block", func(ctx context.Context, in dagflow.Input) (any, error) {
		return nil, errors.New("a runs no step in this test")
	}))
	// a holds its only slot with a claim of another run, so that b runs
	// the steps of the run under test.
	hold := make(chan struct{})
	if err := a.Handle("hold", func(ctx context.Context, in dagflow.Input) (any, error) { <-hold; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	defer close(hold)
	ctx := ctxT(t)
	if _, err := a.Create(ctx, dagflow.Workflow{ID: "hold", Steps: []dagflow.Step{{ID: "h", Handler: "hold"}}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, a, "hold", func(st *dagflow.Status) bool { return st.Steps[0].State == dagflow.StateRunning })
	b := pgEngine(t, schema, dagflow.WithHandler("block", block))
	wf := dagflow.Workflow{ID: "again"}
	for i := range 3 {
		wf.Steps = append(wf.Steps, dagflow.Step{ID: fmt.Sprintf("s%d", i), Handler: "block", Parallel: true})
	}
	if _, err := a.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		<-started
	}
	if _, err := a.Cancel(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	if st, err := b.Wait(ctx, "again"); err != nil || st.State != dagflow.StateCancelled {
		t.Fatalf("after Cancel: %v, %v", st, err)
	}
	cancel.Store(false)
	if _, err := a.Retry(ctx, "again"); err != nil {
		t.Fatal(err)
	}
	st, err := b.Wait(ctx, "again")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted {
		t.Errorf("retried run: %s (%s)", st.State, st.Error)
	}
}

// TestPostgresSagaAcrossEngines runs a saga whose steps and compensations
// are spread over two engines on one database: the rollback is the same as
// on one engine, in reverse order of completion, each compensation once.
func TestPostgresSagaAcrossEngines(t *testing.T) {
	schema := pgSchema(t)
	var mu sync.Mutex
	var undone []string
	var engines [2]atomic.Int64
	handlers := func(n int) []dagflow.Option {
		return []dagflow.Option{
			dagflow.WithConcurrency(2),
			dagflow.WithHandler("do", func(ctx context.Context, in dagflow.Input) (any, error) {
				engines[n].Add(1)
				time.Sleep(5 * time.Millisecond)
				return in.StepID, nil
			}),
			dagflow.WithHandler("fail", func(ctx context.Context, in dagflow.Input) (any, error) {
				return nil, dagflow.Permanent(errors.New("declined"))
			}),
			dagflow.WithHandler("undo", func(ctx context.Context, in dagflow.Input) (any, error) {
				engines[n].Add(1)
				mu.Lock()
				undone = append(undone, in.StepID)
				mu.Unlock()
				return nil, nil
			}),
		}
	}
	a := pgEngine(t, schema, handlers(0)...)
	b := pgEngine(t, schema, handlers(1)...)
	wf := dagflow.Workflow{ID: "saga", Saga: true}
	var leaves []string
	for i := range 8 {
		id := fmt.Sprintf("book%d", i)
		leaves = append(leaves, id)
		wf.Steps = append(wf.Steps, dagflow.Step{ID: id, Handler: "do", Compensation: "undo", Parallel: true})
	}
	wf.Steps = append(wf.Steps, dagflow.Step{ID: "pay", Handler: "fail", DependsOn: leaves})
	ctx := ctxT(t)
	if _, err := a.Create(ctx, wf); err != nil {
		t.Fatal(err)
	}
	st, err := b.Wait(ctx, "saga")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateFailed {
		t.Fatalf("state %s", st.State)
	}
	want := slices.Clone(st.CompletedSteps)
	slices.Reverse(want)
	mu.Lock()
	got := slices.Clone(undone)
	mu.Unlock()
	if !slices.Equal(got, want) || !slices.Equal(st.CompensatedSteps, want) {
		t.Errorf("compensations %v, compensatedSteps %v; want %v (reverse of completion)", got, st.CompensatedSteps, want)
	}
	if engines[0].Load() == 0 || engines[1].Load() == 0 {
		t.Errorf("work per engine: %d and %d; want both to have run some", engines[0].Load(), engines[1].Load())
	}
}

// TestPostgresCreateIfAbsentAcrossEngines: engines on one schema creating
// one workflow at the same moment create one run, and exactly one of their
// calls reports that it created it.
func TestPostgresCreateIfAbsentAcrossEngines(t *testing.T) {
	schema := pgSchema(t)
	noop := dagflow.WithHandler("noop", func(context.Context, dagflow.Input) (any, error) { return nil, nil })
	engines := []*dagflow.Engine{pgEngine(t, schema, noop), pgEngine(t, schema, noop), pgEngine(t, schema, noop)}
	wf := dagflow.Workflow{ID: "once", Steps: []dagflow.Step{{ID: "a", Handler: "noop"}}}
	var made atomic.Int64
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, created, err := engines[i%len(engines)].CreateIfAbsent(ctxT(t), wf)
			if err != nil {
				t.Error(err)
			}
			if created {
				made.Add(1)
			}
		}()
	}
	wg.Wait()
	if made.Load() != 1 {
		t.Errorf("%d calls reported that they created the run, want 1", made.Load())
	}
	st, err := engines[0].Wait(ctxT(t), "once")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != dagflow.StateCompleted || st.Steps[0].Attempts != 1 {
		t.Errorf("run %s, step a %d attempts", st.State, st.Steps[0].Attempts)
	}
}
