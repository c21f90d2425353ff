// Command benchmarks measures dagflow against a hand-written errgroup
// program and against other embeddable Go workflow engines, on the same
// workloads in one process, and prints one markdown table.
//
//	cd benchmarks && go run . [-quick] [-reps 5] [-workloads chain-1k,fan-10k] [-contenders errgroup,dagflow-memory]
//
// See README.md for what each workload and contender is.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// memLimit is the most the memory checks allow dagflow's peak heap to grow
// on fan100k-mem and map100k-mem: 200 MB.
const memLimit = 200_000_000

type config struct {
	reps       int
	quick      bool
	nocap      bool
	scale      float64
	workloads  []string
	contenders []string
	budget     time.Duration
	timeout    time.Duration
	dir        string
	cmdline    string
	progress   io.Writer // one line per repetition; nil for none
	// Set by run: the PostgreSQL server the postgres contenders ran on,
	// or why they were skipped.
	postgres, postgresSkipped string
}

func main() {
	var (
		cfg            config
		wls, cts, prof string
		memprof        string
	)
	flag.IntVar(&cfg.reps, "reps", 5, "repetitions of each workload and contender (-quick: 1 unless given)")
	flag.BoolVar(&cfg.quick, "quick", false, "smoke test: small workloads (see README), one repetition")
	flag.BoolVar(&cfg.nocap, "nocap", false, "run the slow peers at the full size too (see README for how long that takes)")
	flag.Float64Var(&cfg.scale, "scale", 1, "multiply every workload's size by this")
	flag.StringVar(&wls, "workloads", "", "comma-separated workloads to run (default all): "+strings.Join(workloadNames(), ","))
	flag.StringVar(&cts, "contenders", "", "comma-separated contenders to run (default all): "+strings.Join(contenderNames(), ","))
	flag.DurationVar(&cfg.budget, "budget", 2*time.Minute, "stop repeating a workload on a contender once its repetitions took this long (one always runs)")
	flag.DurationVar(&cfg.timeout, "timeout", 10*time.Minute, "give up one repetition after this long")
	flag.StringVar(&cfg.dir, "dir", os.TempDir(), "directory for the file-backed stores (use a real disk, not tmpfs)")
	flag.StringVar(&prof, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.IntVar(&concurrency, "concurrency", concurrency, "the limit on steps running at once, for every contender that has one")
	flag.StringVar(&memprof, "memprofile", "", "write the heap profile taken nearest the highest heap of the run to this file")
	flag.Parse()
	if concurrency < 1 {
		fatal(errors.New("-concurrency must be at least 1"))
	}
	explicitReps := false
	flag.Visit(func(f *flag.Flag) { explicitReps = explicitReps || f.Name == "reps" })
	if cfg.quick && !explicitReps {
		cfg.reps = 1
	}
	cfg.workloads = split(wls)
	cfg.contenders = split(cts)
	cfg.cmdline = strings.TrimSpace("go run . " + strings.Join(os.Args[1:], " "))
	cfg.progress = os.Stderr
	if prof != "" {
		f, err := os.Create(prof)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	peakProfile.on = memprof != ""
	// Errors that the engines log are worth seeing; the rest is noise.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	err := run(context.Background(), &cfg, os.Stdout)
	if memprof != "" && peakProfile.best != nil {
		if werr := os.WriteFile(memprof, peakProfile.best, 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		pprof.StopCPUProfile()
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "benchmarks:", err)
	os.Exit(1)
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func workloadNames() []string {
	var n []string
	for _, k := range workloadKinds {
		n = append(n, k.name)
	}
	return n
}

func contenderNames() []string {
	var n []string
	for _, c := range contenders {
		n = append(n, c.name)
	}
	return n
}

// A cell is one workload on one contender: its repetitions' figures.
type cell struct {
	kind    *workloadKind
	c       *contender
	w       *workload
	scaled  bool // smaller than the workload's size for the others
	times   []time.Duration
	heap    []uint64 // peak heap delta per repetition
	rss     []uint64 // peak RSS delta per repetition
	heapAbs []uint64 // absolute peak heap per repetition
	live    []uint64 // peak live heap (as marked by a GC) per repetition
	spent   time.Duration
	extra   int64 // step executions beyond one per step (at-least-once delivery)
	err     error
}

func (c *cell) done(cfg *config) bool {
	return c.err != nil || len(c.times) >= cfg.reps || (len(c.times) > 0 && c.spent >= cfg.budget)
}

func (c *cell) perStep() time.Duration {
	if len(c.times) == 0 {
		return 0
	}
	return median(c.times) / time.Duration(c.w.steps)
}

func median[T int64 | uint64 | time.Duration](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

func run(ctx context.Context, cfg *config, out io.Writer) error {
	kinds, err := pick(workloadKinds, cfg.workloads, func(k *workloadKind) string { return k.name })
	if err != nil {
		return fmt.Errorf("-workloads: %w", err)
	}
	cts, err := pick(contenders, cfg.contenders, func(c *contender) string { return c.name })
	if err != nil {
		return fmt.Errorf("-contenders: %w", err)
	}
	warnIfTmpfs(cfg.dir)
	cts = checkPostgres(ctx, cfg, cts)
	mach := machine() // before the run, so that it names the commit that was built
	start := time.Now()
	var cells []*cell
	for _, k := range kinds {
		size := k.full
		if cfg.quick {
			size = k.quick
		}
		size = max(1, int(float64(size)*cfg.scale))
		built := map[int]*workload{}
		get := func(n int) *workload {
			if built[n] == nil {
				built[n] = k.build(n)
				built[n].name = k.name
			}
			return built[n]
		}
		var row []*cell
		for _, c := range cts {
			if k.only != nil && !slices.Contains(k.only, c.name) {
				continue
			}
			n := size
			if m, ok := k.maxSize[c.name]; ok && !cfg.nocap && n > max(1, int(float64(m)*cfg.scale)) {
				n = max(1, int(float64(m)*cfg.scale))
			}
			row = append(row, &cell{kind: k, c: c, w: get(n), scaled: n < size})
		}
		// Repetitions go round the contenders, so that a slow spell of
		// the shared machine hits them alike.
		for rep := 0; ; rep++ {
			ran := false
			for _, cl := range row {
				if cl.done(cfg) {
					continue
				}
				ran = true
				runRep(ctx, cfg, cl)
				if cfg.progress != nil {
					if cl.err != nil {
						fmt.Fprintf(cfg.progress, "%-12s %-26s rep %d: %v\n", k.name, cl.c.name, rep+1, cl.err)
					} else {
						fmt.Fprintf(cfg.progress, "%-12s %-26s rep %d: %v (%s/step)\n", k.name, cl.c.name, rep+1,
							cl.times[len(cl.times)-1].Round(time.Microsecond), perStep(cl.times[len(cl.times)-1]/time.Duration(cl.w.steps)))
					}
				}
			}
			if !ran {
				break
			}
		}
		cells = append(cells, row...)
	}
	report(out, cfg, mach, cells, time.Since(start))
	for _, cl := range cells {
		if cl.err != nil {
			return fmt.Errorf("%s on %s: %w", cl.kind.name, cl.c.name, cl.err)
		}
	}
	return nil
}

// checkPostgres connects to the PostgreSQL server once when a contender
// needs it, and returns the contenders without those that do when it
// cannot be reached (saying so on the progress writer and in the report).
func checkPostgres(ctx context.Context, cfg *config, cts []*contender) []*contender {
	var skipped []string
	for _, c := range cts {
		if c.postgres {
			skipped = append(skipped, c.name)
		}
	}
	if len(skipped) == 0 {
		return cts
	}
	server, err := postgresServer(ctx)
	if err == nil {
		cfg.postgres = server
		return cts
	}
	cfg.postgresSkipped = fmt.Sprintf("%s skipped: %v", strings.Join(skipped, ", "), err)
	if cfg.progress != nil {
		fmt.Fprintln(cfg.progress, cfg.postgresSkipped)
	}
	return slices.DeleteFunc(slices.Clone(cts), func(c *contender) bool { return c.postgres })
}

func pick[T any](all []T, names []string, name func(T) string) ([]T, error) {
	if len(names) == 0 {
		return all, nil
	}
	var out []T
	for _, n := range names {
		i := slices.IndexFunc(all, func(t T) bool { return name(t) == n })
		if i < 0 {
			var known []string
			for _, t := range all {
				known = append(known, name(t))
			}
			return nil, fmt.Errorf("unknown name %q (known: %s)", n, strings.Join(known, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}

// runRep runs one repetition of a cell: a fresh engine or backend (set up
// untimed), the timed run, and teardown, sampling memory throughout setup
// and run.
func runRep(ctx context.Context, cfg *config, cl *cell) {
	dir, err := os.MkdirTemp(cfg.dir, "dagflow-bench-")
	if err != nil {
		cl.err = err
		return
	}
	defer os.RemoveAll(dir)
	executed.Store(0)
	ctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	began := time.Now()
	mem := startSampler()
	r, err := cl.c.prepare(ctx, cl.w, dir)
	if err != nil {
		mem.stop()
		cl.err = fmt.Errorf("setting up: %w", err)
		return
	}
	t0 := time.Now()
	err = r.run(ctx)
	elapsed := time.Since(t0)
	peaks := mem.stop()
	if cerr := r.close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing: %w", cerr)
	}
	cl.spent += time.Since(began)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("timed out after %v: %w", cfg.timeout, err)
		}
		cl.err = err
		return
	}
	n := executed.Load()
	if n < int64(cl.w.steps) {
		cl.err = fmt.Errorf("ran %d step handlers for %d steps", n, cl.w.steps)
		return
	}
	cl.extra += n - int64(cl.w.steps)
	cl.times = append(cl.times, elapsed)
	cl.heap = append(cl.heap, peaks.heap)
	cl.rss = append(cl.rss, peaks.rss)
	cl.heapAbs = append(cl.heapAbs, peaks.heapAbs)
	cl.live = append(cl.live, peaks.live)
}
