package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestQuick runs the whole harness the way -quick does, every workload on
// every contender, at tiny sizes, and checks that the table has a row for
// each pair and no errors.
//
// Under the race detector (go test -race, as CI runs it) the peers run in a
// child process built without it: their libraries start goroutines of their
// own, which are theirs to check, not ours. errgroup and the dagflow
// contenders, and the harness, run in the test's process, under the race
// detector.
func TestQuick(t *testing.T) {
	cfg := &config{reps: 1, quick: true, scale: 0.05, budget: time.Minute, timeout: 2 * time.Minute,
		dir: t.TempDir(), cmdline: "go test"}
	if testing.Verbose() {
		cfg.progress = testWriter{t}
	}
	var peers []string
	if raceEnabled {
		for _, c := range contenders {
			if c.peer {
				peers = append(peers, c.name)
			} else {
				cfg.contenders = append(cfg.contenders, c.name)
			}
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), cfg, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	table := out.String()
	t.Log("\n" + table)
	if len(peers) > 0 {
		peerTable := runPeers(t, peers)
		t.Log("\n" + peerTable)
		table += peerTable
	}
	if cfg.postgresSkipped != "" {
		// As store/postgres's tests: CI starts PostgreSQL, so there its
		// absence is a failure.
		if os.Getenv("CI") == "true" {
			t.Errorf("%s", cfg.postgresSkipped)
		}
		if !strings.Contains(table, cfg.postgresSkipped) {
			t.Errorf("the report does not say why the postgres contenders were skipped")
		}
	}
	for _, k := range workloadKinds {
		for _, c := range contenders {
			if c.postgres && cfg.postgresSkipped != "" {
				continue
			}
			if k.only != nil && !slices.Contains(k.only, c.name) {
				if strings.Contains(table, "| "+k.name+" | "+c.name+" |") {
					t.Errorf("row %s / %s should not be there", k.name, c.name)
				}
				continue
			}
			if !strings.Contains(table, "| "+k.name+" | "+c.name+" |") {
				t.Errorf("no row for %s on %s", k.name, c.name)
			}
		}
	}
	if strings.Contains(table, "| error: ") {
		t.Errorf("the table reports an error")
	}
	if !strings.Contains(table, "memory check") {
		t.Errorf("no memory check line")
	}
}

// TestWorkloads checks the shapes every contender is given.
func TestWorkloads(t *testing.T) {
	for _, tt := range []struct {
		w            *workload
		steps, edges int
	}{
		{single("c", shapeChain, 1000, chainGraph(1000), false), 1000, 999},
		{single("f", shapeFan, 10000, fanGraph(10000), true), 10002, 20000},
		{buildOrders(1000), 5000, 4000},
	} {
		edges := 0
		for _, g := range tt.w.graphs {
			edges += g.edges()
		}
		if tt.w.steps != tt.steps || edges != tt.edges {
			t.Errorf("%s: %d steps, %d edges; want %d, %d", tt.w.defs[0].ID, tt.w.steps, edges, tt.steps, tt.edges)
		}
	}
	g := randomGraph(10000, randomSeed)
	if e := g.edges(); e < 25000 || e > 30000 {
		t.Errorf("random DAG: %d edges, want about 3 per step", e)
	}
	for i, deps := range g {
		for _, j := range deps {
			if j >= i {
				t.Fatalf("step %d depends on later step %d", i, j)
			}
		}
	}
	if h := randomGraph(10000, randomSeed); h.edges() != g.edges() {
		t.Errorf("the random DAG is not the same from one build to the next")
	}
}

// runPeers builds the harness without the race detector and runs the given
// contenders with -quick at TestQuick's sizes; it returns the table.
func runPeers(t *testing.T, names []string) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "benchmarks")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the harness without -race: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, "-quick", "-scale", "0.05", "-reps", "1", "-budget", "1m", "-timeout", "2m",
		"-dir", dir, "-contenders", strings.Join(names, ","))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s\n%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
