// Package cron reads standard five-field cron expressions and descriptors
// and computes their ticks.
//
// It accepts exactly what github.com/robfig/cron/v3 (v3.0.1) accepts with
// NewParser(Minute | Hour | Dom | Month | Dow | Descriptor), but for the time
// zone prefixes TZ= and CRON_TZ=, and its schedules tick at the same
// instants, daylight saving quirks included (its tests compare the two on
// thousands of expressions, see testdata/), except where robfig/cron's search
// never ends: a day missing from the calendar, as 2011-12-30 in Pacific/Apia.
// It exists so that dagflow's root module does not depend on that library.
//
// An expression has five fields separated by white space: minute (0-59),
// hour (0-23), day of month (1-31), month (1-12 or JAN-DEC) and day of week
// (0-6 or SUN-SAT; 7 is not Sunday). Names are read without regard to case.
// A field is a comma-separated list of items, each of them
//
//	"*" or "?"              every value of the field
//	"n"                     one value
//	"a-b"                   the values a through b
//	"*/s", "a-b/s", "a/s"   every s-th value from the first through the
//	                        last (a/s runs from a through the maximum)
//
// "?" may stand for "*" in any field. As in robfig/cron, numbers may have
// leading zeros and a "+" sign, what follows "*-" or "?-" in an item is
// ignored ("*-5" is "*"), and empty list items are skipped (so "1,,2" is
// "1,2", and "," is an empty list that never matches). A day matches when
// both its day of month and its day of week match, unless neither field has
// an item that begins with "*" or "?" and has no step above one ("*/2" does
// not count), in which case either one is enough: "0 0 13 * 5" ticks on the
// 13th and on Fridays, "0 0 */1 * 5" on Fridays only.
//
// The descriptors are @yearly (or @annually: "0 0 1 1 *"), @monthly
// ("0 0 1 * *"), @weekly ("0 0 * * 0"), @daily (or @midnight: "0 0 * * *"),
// @hourly ("0 * * * *") and @every <duration> (a Go duration: "@every 1h30m"),
// which ticks at a constant delay after the time it is given, rounded down
// to whole seconds and at least one second.
//
// A schedule is read in the location of the time passed to Next.
package cron

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Schedule is a parsed expression.
type Schedule interface {
	// Next returns the schedule's first tick strictly after t, in t's
	// location, or the zero time if there is none within about five years.
	// The ticks of a five-field expression fall on whole minutes of t's
	// location's wall clock; those of @every fall on whole seconds.
	Next(t time.Time) time.Time
}

// Parse reads a five-field cron expression or a descriptor. Its errors say
// which field is wrong and why.
func Parse(expr string) (Schedule, error) {
	if expr == "" {
		return nil, errors.New("empty expression")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, errors.New("time zone prefixes (TZ=, CRON_TZ=) are not supported")
	}
	// Only an expression that starts with "@" is a descriptor: " @daily" is
	// one field, and "@daily " is no descriptor.
	if expr[0] == '@' {
		return parseDescriptor(expr)
	}
	fields := strings.Fields(expr)
	if len(fields) != len(fieldInfo) {
		hint := ""
		if len(fields) > 0 && strings.HasPrefix(fields[0], "@") {
			hint = " (a descriptor must be the whole expression)"
		}
		return nil, fmt.Errorf("expected exactly %d fields, found %d%s", len(fieldInfo), len(fields), hint)
	}
	var sets [5]set
	for i, f := range fields {
		s, err := parseField(f, &fieldInfo[i])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", fieldInfo[i].name, err)
		}
		sets[i] = s
	}
	return &spec{minute: sets[0], hour: sets[1], dom: sets[2], month: sets[3], dow: sets[4]}, nil
}

// set is a set of a field's values, bit v for value v, with the bit starred
// telling whether an item of the field began with "*" or "?" and had no step
// above one.
type set uint64

const starred set = 1 << 63

// has tells whether v is in s.
func (s set) has(v int) bool { return s&(1<<uint(v)) != 0 }

// empty tells whether s has no value.
func (s set) empty() bool { return s&^starred == 0 }

// field describes one of the five fields.
type field struct {
	name     string
	min, max int
	names    map[string]int // lower-case names of values, or nil
}

var fieldInfo = [5]field{
	{name: "minute", min: 0, max: 59},
	{name: "hour", min: 0, max: 23},
	{name: "day of month", min: 1, max: 31},
	{name: "month", min: 1, max: 12, names: map[string]int{
		"jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
		"jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11, "dec": 12,
	}},
	{name: "day of week", min: 0, max: 6, names: map[string]int{
		"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6,
	}},
}

// parseField reads a comma-separated list of items.
func parseField(s string, f *field) (set, error) {
	var out set
	for item := range strings.SplitSeq(s, ",") {
		if item == "" {
			continue
		}
		bits, err := parseItem(item, f)
		if err != nil {
			return 0, err
		}
		out |= bits
	}
	return out, nil
}

// parseItem reads one item of a list: "*", "?", "n", "a-b", each optionally
// followed by "/step".
func parseItem(item string, f *field) (set, error) {
	rangePart, stepPart, hasStep := strings.Cut(item, "/")
	if strings.Contains(stepPart, "/") {
		return 0, fmt.Errorf("%q has more than one \"/\"", item)
	}
	var (
		lo, hi int
		star   bool
	)
	if first, _, _ := strings.Cut(rangePart, "-"); first == "*" || first == "?" {
		// What follows "*-" is ignored, as robfig/cron ignores it.
		lo, hi, star = f.min, f.max, true
	} else {
		loText, hiText, isRange := strings.Cut(rangePart, "-")
		switch {
		case strings.Contains(hiText, "-"):
			return 0, fmt.Errorf("%q has more than one \"-\"", item)
		case loText == "" && isRange:
			return 0, fmt.Errorf("%q has no number before \"-\" (negative numbers are not allowed)", item)
		case loText == "":
			return 0, fmt.Errorf("%q has no number before \"/\"", item)
		case hiText == "" && isRange:
			return 0, fmt.Errorf("%q has no number after \"-\"", item)
		}
		var err error
		if lo, err = f.value(loText); err != nil {
			return 0, err
		}
		hi = lo
		if isRange {
			if hi, err = f.value(hiText); err != nil {
				return 0, err
			}
		} else if hasStep {
			hi = f.max // "a/s" runs from a through the maximum
		}
	}
	step := 1
	if hasStep {
		n, err := strconv.Atoi(stepPart)
		switch {
		case stepPart == "":
			return 0, fmt.Errorf("%q has no step after \"/\"", item)
		case err != nil:
			return 0, fmt.Errorf("step %q of %q is not a number", stepPart, item)
		case n <= 0:
			return 0, fmt.Errorf("step %d of %q is not positive", n, item)
		}
		step = n
	}
	switch {
	case lo < f.min || lo > f.max:
		return 0, fmt.Errorf("%d is out of range %d-%d", lo, f.min, f.max)
	case hi < f.min || hi > f.max:
		return 0, fmt.Errorf("%d is out of range %d-%d", hi, f.min, f.max)
	case lo > hi:
		return 0, fmt.Errorf("range %q runs backwards (%d > %d)", rangePart, lo, hi)
	}
	var bits set
	for v := lo; ; v += step {
		bits |= 1 << uint(v)
		if hi-v < step {
			break
		}
	}
	if star && step == 1 {
		bits |= starred
	}
	return bits, nil
}

// value reads a number or, in the month and day-of-week fields, a name.
func (f *field) value(s string) (int, error) {
	if f.names != nil {
		if v, ok := f.names[strings.ToLower(s)]; ok {
			return v, nil
		}
	}
	n, err := strconv.Atoi(s)
	switch {
	case err != nil && f.names != nil:
		return 0, fmt.Errorf("%q is neither a number nor a name", s)
	case err != nil:
		return 0, fmt.Errorf("%q is not a number", s)
	case n < 0:
		return 0, fmt.Errorf("%d is out of range %d-%d", n, f.min, f.max)
	}
	return n, nil
}

// parseDescriptor reads an expression that starts with "@".
func parseDescriptor(expr string) (Schedule, error) {
	const all = ^set(0)
	switch expr {
	case "@yearly", "@annually":
		return &spec{minute: 1 << 0, hour: 1 << 0, dom: 1 << 1, month: 1 << 1, dow: all}, nil
	case "@monthly":
		return &spec{minute: 1 << 0, hour: 1 << 0, dom: 1 << 1, month: all, dow: all}, nil
	case "@weekly":
		return &spec{minute: 1 << 0, hour: 1 << 0, dom: all, month: all, dow: 1 << 0}, nil
	case "@daily", "@midnight":
		return &spec{minute: 1 << 0, hour: 1 << 0, dom: all, month: all, dow: all}, nil
	case "@hourly":
		return &spec{minute: 1 << 0, hour: all, dom: all, month: all, dow: all}, nil
	}
	if d, ok := strings.CutPrefix(expr, "@every "); ok {
		delay, err := time.ParseDuration(d)
		if err != nil {
			return nil, fmt.Errorf("@every: %q is not a duration (such as 90s or 1h30m)", d)
		}
		delay = delay.Truncate(time.Second)
		if delay < time.Second {
			delay = time.Second
		}
		return every(delay), nil
	}
	return nil, fmt.Errorf("unknown descriptor %q (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, @every <duration>)", expr)
}

// every is the schedule of "@every <duration>": a whole number of seconds,
// at least one.
type every time.Duration

// Next returns t plus the delay, rounded down to the second.
func (e every) Next(t time.Time) time.Time {
	return t.Add(time.Duration(e) - time.Duration(t.Nanosecond()))
}

// spec is the schedule of a five-field expression.
type spec struct {
	minute, hour, dom, month, dow set
}

// maxSteps bounds the steps of a search for a tick: ticks are found in at
// most a few thousand steps, so this only guards against time zones whose
// rules could make the search go round in circles.
const maxSteps = 1 << 20

// Next returns the first tick strictly after t, in t's location, or the zero
// time if there is none within five years.
//
// It goes from the next whole second after t up through the month, the day,
// the hour, the minute and the second, each until it matches. When a field
// must move, the smaller ones restart from their first value (once: after
// that they are at their start already), and when it wraps round into the
// next larger unit the search starts over from the month. The day is moved
// by calendar days (AddDate), the hour, minute and second by elapsed time
// (Add), so that a wall-clock hour skipped by a daylight saving change has no
// tick and one repeated has two; these are robfig/cron's rules, kept step for
// step so that the ticks agree with it in every time zone.
func (s *spec) Next(t time.Time) time.Time {
	if !s.satisfiable() {
		return time.Time{}
	}
	loc := t.Location()
	t = t.Add(time.Second - time.Duration(t.Nanosecond()))
	lastYear := t.Year() + 5
	moved := false // whether the smaller fields have been reset to their start
	steps := 0
search:
	for {
		if t.Year() > lastYear {
			return time.Time{}
		}
		for ; !s.month.has(int(t.Month())); steps++ {
			if steps > maxSteps {
				return time.Time{}
			}
			if !moved {
				moved = true
				t = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, loc)
			}
			t = t.AddDate(0, 1, 0)
			if t.Month() == time.January {
				continue search
			}
		}
		for ; !s.dayMatches(t); steps++ {
			if steps > maxSteps {
				return time.Time{}
			}
			if !moved {
				moved = true
				t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, loc)
			}
			prev := t
			t = t.AddDate(0, 0, 1)
			if t.Equal(prev) {
				// The next day is missing from the calendar
				// (Pacific/Apia skipped 2011-12-30), and AddDate
				// falls back to this one: a day later by the
				// clock is the day after the missing one.
				// (robfig/cron goes round forever here.)
				t = t.Add(24 * time.Hour)
			}
			// Midnight may be missing, or doubled, on a day that
			// changes its clock: go to the nearest midnight.
			if h := t.Hour(); h > 12 {
				t = t.Add(time.Duration(24-h) * time.Hour)
			} else if h > 0 {
				t = t.Add(-time.Duration(h) * time.Hour)
			}
			if t.Day() == 1 {
				continue search
			}
		}
		for ; !s.hour.has(t.Hour()); steps++ {
			if steps > maxSteps {
				return time.Time{}
			}
			if !moved {
				moved = true
				t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc)
			}
			t = t.Add(time.Hour)
			if t.Hour() == 0 {
				continue search
			}
		}
		for ; !s.minute.has(t.Minute()); steps++ {
			if steps > maxSteps {
				return time.Time{}
			}
			if !moved {
				moved = true
				t = t.Truncate(time.Minute)
			}
			t = t.Add(time.Minute)
			if t.Minute() == 0 {
				continue search
			}
		}
		for ; t.Second() != 0; steps++ {
			if steps > maxSteps {
				return time.Time{}
			}
			if !moved {
				moved = true
				t = t.Truncate(time.Second)
			}
			t = t.Add(time.Second)
			if t.Second() == 0 {
				continue search
			}
		}
		return t.In(loc)
	}
}

// satisfiable tells whether any instant could match s: a schedule with an
// empty field (",") never ticks, and its search is cut short.
func (s *spec) satisfiable() bool {
	if s.minute.empty() || s.hour.empty() || s.month.empty() {
		return false
	}
	if s.dom&starred != 0 || s.dow&starred != 0 {
		return !s.dom.empty() && !s.dow.empty()
	}
	return !s.dom.empty() || !s.dow.empty()
}

// dayMatches tells whether t's day of month and day of week match: both
// must, unless neither field was starred, when either one is enough.
func (s *spec) dayMatches(t time.Time) bool {
	dom, dow := s.dom.has(t.Day()), s.dow.has(int(t.Weekday()))
	if s.dom&starred != 0 || s.dow&starred != 0 {
		return dom && dow
	}
	return dom || dow
}
