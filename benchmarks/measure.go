package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"time"
)

// sampleEvery is how often the memory sampler looks at the heap and RSS.
const sampleEvery = 5 * time.Millisecond

// A memSampler records the peak of the Go heap (live and not yet swept
// objects, runtime.MemStats.HeapAlloc, read through runtime/metrics, which
// does not stop the world) and of the process's resident set size, every
// sampleEvery, from start to stop. Both are reported as deltas over the
// values at start, taken right after a GC that returned free memory to the
// OS. Peaks between two samples are missed, so both are lower bounds.
type memSampler struct {
	baseHeap, baseRSS uint64
	peakHeap, peakRSS uint64
	peakLive          uint64 // the highest live heap marked by a GC
	stopc             chan struct{}
	wg                sync.WaitGroup
	sample            []metrics.Sample
}

func startSampler() *memSampler {
	runtime.GC()
	debug.FreeOSMemory()
	s := &memSampler{stopc: make(chan struct{}),
		sample: []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}}
	s.baseHeap, s.baseRSS = s.heap(), rss()
	s.peakHeap, s.peakRSS = s.baseHeap, s.baseRSS
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(sampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopc:
				return
			case <-t.C:
				s.take()
			}
		}
	}()
	return s
}

func (s *memSampler) heap() uint64 {
	metrics.Read(s.sample)
	s.peakLive = max(s.peakLive, s.sample[1].Value.Uint64())
	return s.sample[0].Value.Uint64()
}

func (s *memSampler) take() {
	h := s.heap()
	if h > s.peakHeap {
		s.peakHeap = h
		peakProfile.offer(h)
	}
	s.peakRSS = max(s.peakRSS, rss())
}

// peakProfile keeps, when -memprofile asks for it, the heap profile taken
// when the Go heap was highest over the whole process. A heap profile shows
// the live objects as of the last completed GC, so it is near the peak,
// not at it.
var peakProfile heapProfiler

type heapProfiler struct {
	on   bool
	heap uint64 // the heap when best was taken
	best []byte
}

func (p *heapProfiler) offer(heap uint64) {
	// Profiling costs a few milliseconds: only when the heap has grown
	// by a tenth since the kept profile.
	if !p.on || heap < p.heap+p.heap/10 {
		return
	}
	var b bytes.Buffer
	if err := pprof.Lookup("heap").WriteTo(&b, 0); err == nil {
		p.heap, p.best = heap, b.Bytes()
	}
}

// memPeaks are what a memSampler found, in bytes.
type memPeaks struct {
	heap, rss uint64 // peak deltas over the start
	heapAbs   uint64 // the highest heap
	live      uint64 // the highest live heap that a GC marked
}

// stop ends sampling and returns the peaks.
func (s *memSampler) stop() memPeaks {
	close(s.stopc)
	s.wg.Wait()
	s.take()
	return memPeaks{heap: s.peakHeap - s.baseHeap, rss: s.peakRSS - s.baseRSS, heapAbs: s.peakHeap, live: s.peakLive}
}

var pageSize = uint64(os.Getpagesize())

// rss returns the resident set size of the process, or 0 where
// /proc/self/statm is missing.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(string(f[1]), 10, 64)
	return n * pageSize
}

// machine describes where the suite ran.
func machine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	rev := ""
	if c := gitHead(); c != "" {
		rev = ", dagflow at commit " + c + " plus any uncommitted changes in the work tree"
	}
	return fmt.Sprintf("GOMAXPROCS=%d, NumCPU=%d, %s, %s %s/%s%s", runtime.GOMAXPROCS(0), runtime.NumCPU(), cpu,
		runtime.Version(), runtime.GOOS, runtime.GOARCH, rev)
}

func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// thousands writes n with commas: 10,002.
func thousands(n int) string {
	s := strconv.Itoa(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// perStep formats a duration per step with a unit that fits.
func perStep(d time.Duration) string {
	ns := float64(d.Nanoseconds())
	switch {
	case ns < 1_000:
		return fmt.Sprintf("%.0f ns", ns)
	case ns < 1_000_000:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.2f ms", ns/1e6)
	}
}

// gitHead returns the commit checked out in the repository around the
// working directory, read from .git without running git, or "".
func gitHead() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		git := filepath.Join(dir, ".git")
		if b, err := os.ReadFile(filepath.Join(git, "HEAD")); err == nil {
			head := strings.TrimSpace(string(b))
			ref, ok := strings.CutPrefix(head, "ref: ")
			if !ok {
				return short(head)
			}
			if b, err := os.ReadFile(filepath.Join(git, filepath.FromSlash(ref))); err == nil {
				return short(strings.TrimSpace(string(b)))
			}
			if b, err := os.ReadFile(filepath.Join(git, "packed-refs")); err == nil {
				for _, line := range strings.Split(string(b), "\n") {
					if h, r, ok := strings.Cut(line, " "); ok && r == ref {
						return short(h)
					}
				}
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
