package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

func report(out io.Writer, cfg *config, mach string, cells []*cell, took time.Duration) {
	fmt.Fprintf(out, "## dagflow benchmarks\n\n")
	fmt.Fprintf(out, "- command: `%s` (up to %d repetitions per row, fewer once a row has taken %v; the run took %v)\n",
		cfg.cmdline, cfg.reps, cfg.budget, took.Round(time.Second))
	fmt.Fprintf(out, "- machine: %s\n", mach)
	fmt.Fprintf(out, "- concurrency limit %d for every contender that has one; file stores in %s\n", concurrency, cfg.dir)
	if cfg.postgres != "" {
		fmt.Fprintf(out, "- postgres contenders on %s\n", cfg.postgres)
	}
	if cfg.postgresSkipped != "" {
		fmt.Fprintf(out, "- %s\n", cfg.postgresSkipped)
	}
	fmt.Fprintln(out)

	fmt.Fprintln(out, "| workload | contender | steps | reps | time/step (median) | min–max | steps/s | peak heap Δ | peak RSS Δ | vs dagflow |")
	fmt.Fprintln(out, "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	scaledAny := false
	for _, cl := range cells {
		base := baseline(cells, cl)
		size := cl.w.sizeLabel()
		if cl.scaled {
			size += " †"
			scaledAny = true
		}
		if cl.err != nil && len(cl.times) == 0 {
			fmt.Fprintf(out, "| %s | %s | %s | 0 | error: %s | | | | | |\n", cl.kind.name, cl.c.name, size,
				strings.ReplaceAll(cl.err.Error(), "|", "/"))
			continue
		}
		ps := cl.perStep()
		lo, hi := slices.Min(cl.times), slices.Max(cl.times)
		ratio := "—"
		switch {
		case base == cl:
			ratio = "1.00"
		case base != nil && len(base.times) > 0:
			ratio = fmt.Sprintf("%.2f", float64(ps)/float64(base.perStep()))
			if cl.scaled {
				ratio += " †"
			}
		}
		reps := fmt.Sprint(len(cl.times))
		if cl.err != nil {
			reps += " (then error)"
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s | %s | %s–%s | %s | %s | %s | %s |\n",
			cl.kind.name, cl.c.name, size, reps, perStep(ps),
			perStep(lo/time.Duration(cl.w.steps)), perStep(hi/time.Duration(cl.w.steps)),
			thousands(int(float64(time.Second)/float64(ps))),
			mib(median(cl.heap)), mib(median(cl.rss)), ratio)
	}
	fmt.Fprintln(out)
	fmt.Fprintln(out, "- time/step: wall time of a repetition (creating the workflows until every one has completed; engine setup and teardown excluded) over its steps; the median, and the fastest and slowest, of the repetitions. steps/s is its inverse.")
	fmt.Fprintln(out, "- vs dagflow: this row's median time/step over dagflow's of the same storage class in this run (memory: dagflow-memory, also for errgroup; file: dagflow-bolt; postgres: dagflow-postgres). Above 1 is slower than dagflow.")
	fmt.Fprintf(out, "- peak heap Δ: the highest Go heap (HeapAlloc) sampled every %v during setup and run, less the heap after a GC just before; peak RSS Δ: the same for the resident set size (/proc/self/statm), which also counts SQLite's page cache (allocated outside the Go heap). Medians over the repetitions.\n", sampleEvery)
	if scaledAny {
		fmt.Fprintln(out, "- †: run at a smaller size than the other contenders (see steps), because the full size takes too long on this contender; its per-step figures and ratio are at that size.")
	}
	for _, cl := range cells {
		if cl.extra > 0 {
			fmt.Fprintf(out, "- %s on %s ran %d step handlers more than once (at-least-once delivery).\n", cl.kind.name, cl.c.name, cl.extra)
		}
	}
	for _, cl := range cells {
		if !strings.HasSuffix(cl.kind.name, "-mem") || cl.c.name != "dagflow-memory" || len(cl.heap) == 0 {
			continue
		}
		worst := slices.Max(cl.heap)
		verdict := "PASS"
		if worst >= memLimit {
			verdict = "FAIL"
		}
		fmt.Fprintf(out, "- memory check (%s, %s steps on dagflow-memory): peak heap Δ %s at worst over %d repetitions, limit 200 MB (%s): %s. "+
			"(Median %s; highest absolute heap %s, which includes the workflow definition the program built; highest live heap that a GC marked %s.)\n",
			cl.kind.name, thousands(cl.w.steps), mib(worst), len(cl.heap), mib(memLimit), verdict,
			mib(median(cl.heap)), mib(slices.Max(cl.heapAbs)), mib(slices.Max(cl.live)))
	}
}

// baseline returns the dagflow cell that cl is compared with: the same
// workload, dagflow on the same storage class.
func baseline(cells []*cell, cl *cell) *cell {
	name := "dagflow-" + cl.c.class
	if cl.c.class == "file" {
		name = "dagflow-bolt"
	}
	for _, b := range cells {
		if b.kind == cl.kind && b.c.name == name {
			return b
		}
	}
	return nil
}
