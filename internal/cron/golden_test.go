package cron

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestGolden compares Parse and Next with github.com/robfig/cron/v3 v3.0.1
// (NewParser(Minute | Hour | Dom | Month | Dow | Descriptor)): its answers
// for 4,000 random expressions, valid or not (about 3,000 valid), and for each valid
// one, in one of thirteen time zones, the ticks after two random instants
// (often near a daylight saving change) and after each of those ticks, are
// in testdata/robfig.golden, written by testdata/gengolden.go.
func TestGolden(t *testing.T) {
	f, err := os.Open("testdata/robfig.golden")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	locs := map[string]*time.Location{}
	sc := bufio.NewScanner(f)
	lines, ticks, fails := 0, 0, 0
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		lines++
		cols := strings.Split(line, "\t")
		expr, err := strconv.Unquote(cols[0])
		if err != nil || len(cols) < 2 {
			t.Fatalf("line %d: bad line %q", n, line)
		}
		sched, err := Parse(expr)
		if cols[1] == "error" {
			if err == nil {
				t.Errorf("line %d: Parse(%q) = nil error, robfig/cron refuses it", n, expr)
				fails++
			}
			continue
		}
		if err != nil {
			t.Errorf("line %d: Parse(%q): %v; robfig/cron accepts it", n, expr, err)
			fails++
			continue
		}
		loc := locs[cols[1]]
		if loc == nil {
			if loc, err = time.LoadLocation(cols[1]); err != nil {
				t.Fatalf("line %d: %v", n, err)
			}
			locs[cols[1]] = loc
		}
		for _, pair := range cols[2:] {
			in, want, ok := strings.Cut(pair, " ")
			if !ok {
				t.Fatalf("line %d: bad pair %q", n, pair)
			}
			from := parseStamp(t, n, in).In(loc)
			got := sched.Next(from)
			ticks++
			if w := parseStamp(t, n, want); !got.Equal(w) || (!got.IsZero() && got.Location() != loc) {
				t.Errorf("line %d: Parse(%q).Next(%s) = %s, robfig/cron says %s",
					n, expr, from.Format(time.RFC3339Nano), show(got), show(w.In(loc)))
				fails++
			}
		}
		if fails > 20 {
			t.Fatal("too many differences")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if lines < 4000 || ticks < 11000 {
		t.Fatalf("only %d expressions and %d ticks compared", lines, ticks)
	}
}

// parseStamp reads Unix seconds with optional nanoseconds, or "zero".
func parseStamp(t *testing.T, line int, s string) time.Time {
	t.Helper()
	if s == "zero" {
		return time.Time{}
	}
	secText, nsText, _ := strings.Cut(s, ".")
	sec, err := strconv.ParseInt(secText, 10, 64)
	ns := int64(0)
	if err == nil && nsText != "" {
		ns, err = strconv.ParseInt(nsText, 10, 64)
	}
	if err != nil {
		t.Fatalf("line %d: bad time %q", line, s)
	}
	return time.Unix(sec, ns)
}

func show(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	return t.Format(time.RFC3339Nano)
}
