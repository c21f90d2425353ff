//go:build ignore

// This program wrote robfig.golden, the ticks that github.com/robfig/cron/v3
// v3.0.1 computes, for TestGolden to compare internal/cron with. It is kept
// here for the record and is no part of the module (dagflow must not depend
// on robfig/cron). To run it again, copy it to a directory of its own with a
// go.mod that requires github.com/robfig/cron/v3 v3.0.1, then
//
//	go run gengolden.go > .../internal/cron/testdata/robfig.golden
//
// The output depends on the time zone database (made with tzdata 2025b).
package main

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

type field struct {
	min, max int
	names    []string // index = value - offset
	offset   int
}

var fields = []field{
	{min: 0, max: 59},
	{min: 0, max: 23},
	{min: 1, max: 31},
	{min: 1, max: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}, offset: 1},
	{min: 0, max: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}},
}

// zones and the years their instants are drawn from.
var zones = []struct {
	name     string
	from, to int
}{
	{"UTC", 2020, 2032},
	{"America/New_York", 2024, 2027},
	{"Europe/London", 2023, 2026},
	{"Europe/Dublin", 2023, 2026},
	{"Australia/Lord_Howe", 2023, 2026},
	{"America/Sao_Paulo", 2015, 2019},
	{"America/Havana", 2021, 2025},
	{"America/Santiago", 2022, 2025},
	{"Asia/Tehran", 2018, 2022},
	{"Asia/Kolkata", 2024, 2028},
	{"Pacific/Chatham", 2023, 2026},
	{"Pacific/Apia", 2012, 2016}, // robfig/cron never returns from a search across 2011-12-30, a day Apia skipped
	{"Africa/Monrovia", 1968, 1973},
}

var r = rand.New(rand.NewPCG(2026, 5))

func pick[T any](xs ...T) T { return xs[r.IntN(len(xs))] }

func num(f field) string {
	v := f.min + r.IntN(f.max-f.min+1)
	if f.names != nil && r.IntN(4) == 0 {
		return name(f, v)
	}
	switch r.IntN(40) {
	case 0:
		return "0" + strconv.Itoa(v)
	case 1:
		return "+" + strconv.Itoa(v)
	}
	return strconv.Itoa(v)
}

func name(f field, v int) string {
	n := f.names[v-f.offset]
	switch r.IntN(3) {
	case 0:
		return strings.ToUpper(n)
	case 1:
		return strings.ToUpper(n[:1]) + n[1:]
	}
	return n
}

func step(f field) string {
	if r.IntN(5) == 0 {
		return strconv.Itoa(1 + r.IntN(f.max+3))
	}
	return strconv.Itoa(1 + r.IntN(min(f.max, 12)))
}

func bad(f field) string {
	return pick(
		strconv.Itoa(f.max+1), strconv.Itoa(f.min-1), "-1", "60", "24", "32", "13", "7",
		"*/0", "1-2-3", "1/2/3", "x", "*/-1", "5/", "/5", "-", "1-", "-5", "?/0",
		"99999999999999999999", "*/x", "jan", "sun", "1.5", "0x1", "3-1", "L", "5#2", "W",
		"mon-sun", "dec-jan", "**", "*/", "1_0",
	)
}

func weird(f field) string {
	return pick("*-5", "*-x/2", "?-3", ",", "*/1", "?/1", "*/01", "*/+1", "*/100",
		"*/9999999999", strconv.Itoa(f.min)+"/"+step(f), strconv.Itoa(f.max)+"/1",
		strconv.Itoa(f.max)+"-"+strconv.Itoa(f.max), "?", "-0"[1:])
}

func item(f field) string {
	switch k := r.IntN(100); {
	case k < 3:
		return bad(f)
	case k < 7:
		return weird(f)
	case k < 25:
		return "*"
	case k < 28:
		return "?"
	case k < 55:
		return num(f)
	case k < 70:
		a, b := f.min+r.IntN(f.max-f.min+1), f.min+r.IntN(f.max-f.min+1)
		if a > b {
			a, b = b, a
		}
		as, bs := strconv.Itoa(a), strconv.Itoa(b)
		if f.names != nil && r.IntN(3) == 0 {
			as, bs = name(f, a), name(f, b)
		}
		return as + "-" + bs
	case k < 80:
		return pick("*", "?") + "/" + step(f)
	case k < 90:
		return num(f) + "/" + step(f)
	default:
		a, b := f.min+r.IntN(f.max-f.min+1), f.min+r.IntN(f.max-f.min+1)
		if a > b {
			a, b = b, a
		}
		return strconv.Itoa(a) + "-" + strconv.Itoa(b) + "/" + step(f)
	}
}

func fieldText(f field) string {
	n := 1
	if r.IntN(3) == 0 {
		n += 1 + r.IntN(3)
	}
	var items []string
	for range n {
		items = append(items, item(f))
	}
	s := strings.Join(items, ",")
	switch r.IntN(60) {
	case 0:
		s = "," + s
	case 1:
		s += ","
	case 2:
		s = strings.Replace(s, ",", ",,", 1)
	}
	return s
}

func expression() string {
	if r.IntN(25) == 0 {
		return pick("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
			"@every 1h30m", "@every 0", "@every 0s", "@every -5m", "@every 1.5s", "@every 90s", "@every 500ms",
			"@every 24h", "@every x", "@every", "@every ", "@every  1h", " @daily", "@daily ", "@Daily",
			"@reboot", "@", "@every 1h ", "@every 2562047h", "@every 1m0.000000001s", "@every 3h25m45.5s")
	}
	n := 5
	switch r.IntN(40) {
	case 0:
		n = 4
	case 1:
		n = 6
	}
	var parts []string
	for i := range n {
		parts = append(parts, fieldText(fields[i%5]))
	}
	sep := " "
	switch r.IntN(30) {
	case 0:
		sep = "  "
	case 1:
		sep = "\t"
	}
	s := strings.Join(parts, sep)
	switch r.IntN(30) {
	case 0:
		s = " " + s
	case 1:
		s += " "
	case 2:
		s += "\n"
	}
	return s
}

// transitions lists the instants when a zone's offset changes in [from, to).
func transitions(loc *time.Location, from, to int) []time.Time {
	var out []time.Time
	t := time.Date(from, 1, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(to, 1, 1, 0, 0, 0, 0, time.UTC)
	for t.Before(end) {
		_, hi := t.In(loc).ZoneBounds()
		if hi.IsZero() || !hi.Before(end) {
			break
		}
		out = append(out, hi)
		t = hi
	}
	return out
}

func instant(z int, loc *time.Location, trans []time.Time) time.Time {
	var t time.Time
	if len(trans) > 0 && r.IntN(2) == 0 {
		t = pick(trans...).Add(time.Duration(r.IntN(3*24*3600)-36*3600) * time.Second)
	} else {
		from := time.Date(zones[z].from, 1, 1, 0, 0, 0, 0, loc).Unix()
		to := time.Date(zones[z].to, 1, 1, 0, 0, 0, 0, loc).Unix()
		t = time.Unix(from+r.Int64N(to-from), 0).In(loc)
	}
	switch r.IntN(4) {
	case 0:
		t = t.Truncate(time.Minute) // on a tick, often
	case 1:
		t = t.Add(time.Duration(r.IntN(1e9)))
	}
	return t.In(loc)
}

// next is sched.Next(in), or exits if it takes too long.
func next(sched cron.Schedule, in time.Time) time.Time {
	done := make(chan time.Time, 1)
	go func() { done <- sched.Next(in) }()
	select {
	case out := <-done:
		return out
	case <-time.After(20 * time.Second):
		fmt.Fprintf(os.Stderr, "Next(%s) takes too long\n", stamp(in))
		os.Exit(1)
		panic("unreachable")
	}
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "zero"
	}
	if t.Nanosecond() != 0 {
		return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
	}
	return strconv.FormatInt(t.Unix(), 10)
}

var debug = os.Getenv("DEBUG") != ""

func main() {
	w := bufio.NewWriter(os.Stdout)
	defer w.Flush()
	fmt.Fprintln(w, "# Made by github.com/robfig/cron/v3 v3.0.1 with NewParser(Minute|Hour|Dom|Month|Dow|Descriptor),")
	fmt.Fprintln(w, "# see gengolden.go. A line is an expression (Go-quoted) and either \"error\" or a time zone")
	fmt.Fprintln(w, "# and pairs \"in out\": out is Next(in), as Unix seconds[.nanoseconds], in that zone.")
	locs := make([]*time.Location, len(zones))
	trans := make([][]time.Time, len(zones))
	for i, z := range zones {
		loc, err := time.LoadLocation(z.name)
		if err != nil {
			panic(err)
		}
		locs[i], trans[i] = loc, transitions(loc, z.from, z.to)
	}
	seen := map[string]bool{}
	for len(seen) < 4000 {
		expr := expression()
		if seen[expr] {
			continue
		}
		seen[expr] = true
		sched, err := parser.Parse(expr)
		if err != nil {
			fmt.Fprintf(w, "%q\terror\n", expr)
			continue
		}
		z := r.IntN(len(zones))
		fmt.Fprintf(w, "%q\t%s", expr, zones[z].name)
		for range 2 {
			in := instant(z, locs[z], trans[z])
			if debug {
				fmt.Fprintf(os.Stderr, "%q %s %s\n", expr, zones[z].name, stamp(in))
			}
			for range 2 {
				out := next(sched, in)
				fmt.Fprintf(w, "\t%s %s", stamp(in), stamp(out))
				if out.IsZero() {
					break
				}
				in = out
			}
		}
		fmt.Fprintln(w)
	}
}
