package cron

import (
	"strings"
	"testing"
	"time"
)

// TestParseErrors: what robfig/cron refuses is refused, with the field and
// the reason.
func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ expr, want string }{
		{"", "empty expression"},
		{"   ", "expected exactly 5 fields, found 0"},
		{"* * *", "expected exactly 5 fields, found 3"},
		{"0 * * * * *", "expected exactly 5 fields, found 6"},
		{"60 * * * *", "minute: 60 is out of range 0-59"},
		{"61 * * * *", "minute: 61 is out of range 0-59"},
		{"* 24 * * *", "hour: 24 is out of range 0-23"},
		{"* * 0 * *", "day of month: 0 is out of range 1-31"},
		{"* * 32 * *", "day of month: 32 is out of range 1-31"},
		{"* * * 0 *", "month: 0 is out of range 1-12"},
		{"* * * 13 *", "month: 13 is out of range 1-12"},
		{"* * * * 7", "day of week: 7 is out of range 0-6"},
		{"* * * * 5-7", "day of week: 7 is out of range 0-6"},
		{"* * * * 0-7/2", "day of week: 7 is out of range 0-6"},
		{"-1 * * * *", `minute: "-1" has no number before "-" (negative numbers are not allowed)`},
		{"1- * * * *", `minute: "1-" has no number after "-"`},
		{"5-1 * * * *", `minute: range "5-1" runs backwards (5 > 1)`},
		{"* * * dec-jan *", `month: range "dec-jan" runs backwards (12 > 1)`},
		{"* * * * mon-sun", `day of week: range "mon-sun" runs backwards (1 > 0)`},
		{"1-2-3 * * * *", `minute: "1-2-3" has more than one "-"`},
		{"1/2/3 * * * *", `minute: "1/2/3" has more than one "/"`},
		{"*/0 * * * *", `minute: step 0 of "*/0" is not positive`},
		{"?/0 * * * *", `minute: step 0 of "?/0" is not positive`},
		{"*/-1 * * * *", `minute: step -1 of "*/-1" is not positive`},
		{"*/x * * * *", `minute: step "x" of "*/x" is not a number`},
		{"5/ * * * *", `minute: "5/" has no step after "/"`},
		{"/5 * * * *", `minute: "/5" has no number before "/"`},
		{"* * * * -", `day of week: "-" has no number before "-"`},
		{"x * * * *", `minute: "x" is not a number`},
		{"1.5 * * * *", `minute: "1.5" is not a number`},
		{"99999999999999999999 * * * *", `minute: "99999999999999999999" is not a number`},
		{"* * * jan2 *", `month: "jan2" is neither a number nor a name`},
		{"* * * january *", `month: "january" is neither a number nor a name`},
		{"* * * * sunday", `day of week: "sunday" is neither a number nor a name`},
		{"jan * * * *", `minute: "jan" is not a number`},
		{"* * jan * *", `day of month: "jan" is not a number`},
		{"* * * sun *", `month: "sun" is neither a number nor a name`},
		{"* * L * *", `day of month: "L" is not a number`},
		{"* * * * 5#2", `day of week: "5#2" is neither a number nor a name`},
		{"* * 15W * *", `day of month: "15W" is not a number`},
		{"@reboot", `unknown descriptor "@reboot"`},
		{"@Daily", `unknown descriptor "@Daily"`},
		{"@daily ", `unknown descriptor "@daily "`},
		{"@", `unknown descriptor "@"`},
		{"@every", `unknown descriptor "@every"`},
		{"@every ", `@every: "" is not a duration`},
		{"@every  1h", `@every: " 1h" is not a duration`},
		{"@every 1h ", `@every: "1h " is not a duration`},
		{"@every 5", `@every: "5" is not a duration`},
		{" @daily", "expected exactly 5 fields, found 1 (a descriptor must be the whole expression)"},
		{"TZ=UTC * * * * *", "time zone prefixes (TZ=, CRON_TZ=) are not supported"},
		{"CRON_TZ=UTC * * * * *", "time zone prefixes (TZ=, CRON_TZ=) are not supported"},
		{"TZ=UTC", "time zone prefixes"}, // robfig/cron panics on this one
	} {
		s, err := Parse(tc.expr)
		if err == nil {
			t.Errorf("Parse(%q) = %v, want an error", tc.expr, s)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q): %v, want %q", tc.expr, err, tc.want)
		}
	}
}

// TestParseOddities: what robfig/cron accepts, however odd, is accepted.
func TestParseOddities(t *testing.T) {
	for _, expr := range []string{
		"? ? ? ? ?",                 // "?" in any field
		"*-5 * * * *",               // what follows "*-" is ignored
		"*-x/2 ?-y * * *",           // even when it is no number
		"+5 +3 +1 +1 +0",            // signs
		"05 03 01 01 00",            // leading zeros
		"1,,2 * * * *",              // empty items are skipped
		", * * * *",                 // an empty list: it never ticks
		"*/100 */99999999999 * * *", // a step beyond the range
		"*/+1 * * * *",
		"59/1 23-23 31/31 12/12 6/6",
		"\t* *  *\n* *\n",       // any white space
		"0 0 * JaN,fEB MoN-fRi", // names in any case
		"0 0 * jan/3 sun/2",     // a name with a step
		"0 0 * jan-3 1-sat",     // names and numbers mixed
		"@every 0",              // at least a second
		"@every -5m",
		"@every 1.5s",
		"@every 2562047h", // the largest duration
		"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly",
	} {
		if _, err := Parse(expr); err != nil {
			t.Errorf("Parse(%q): %v; robfig/cron accepts it", expr, err)
		}
	}
}

// TestNext: ticks across month ends, leap years, day-of-month or
// day-of-week, steps and names, and daylight saving changes. Each want is
// what robfig/cron v3.0.1 answers, in order, each tick given the previous one.
func TestNext(t *testing.T) {
	for _, tc := range []struct {
		expr, zone, from string
		want             []string // "" for the zero time
	}{
		// Month ends, leap years.
		{"0 0 1 * *", "UTC", "2026-01-31T12:00:00Z", []string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z", "2026-04-01T00:00:00Z"}},
		{"0 0 31 * *", "UTC", "2026-01-31T00:00:00Z", []string{"2026-03-31T00:00:00Z", "2026-05-31T00:00:00Z", "2026-07-31T00:00:00Z"}},
		{"0 0 29 2 *", "UTC", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z", "2036-02-29T00:00:00Z"}},
		{"0 0 29 2 ?", "UTC", "2026-01-01T00:00:00Z", []string{"2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"}},
		{"0 0 29 2 *", "Europe/Paris", "2026-06-01T00:00:00+02:00", []string{"2028-02-29T00:00:00+01:00"}},
		{"0 0 30 2 *", "UTC", "2026-01-01T00:00:00Z", []string{""}},
		{"0 0 31 4,6,9,11 *", "UTC", "2026-01-01T00:00:00Z", []string{""}},
		{", * * * *", "UTC", "2026-01-01T00:00:00Z", []string{""}},
		{"59 23 31 12 *", "UTC", "2026-12-31T23:59:00Z", []string{"2027-12-31T23:59:00Z", "2028-12-31T23:59:00Z"}},
		{"0 9 * * 1-5", "UTC", "2026-12-31T10:00:00Z", []string{"2027-01-01T09:00:00Z", "2027-01-04T09:00:00Z"}},

		// Day of month or day of week: either, when neither is starred.
		{"0 12 13 * 5", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-06T12:00:00Z", "2026-03-13T12:00:00Z", "2026-03-20T12:00:00Z", "2026-03-27T12:00:00Z"}},
		{"0 12 13 * FRI", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-06T12:00:00Z", "2026-03-13T12:00:00Z"}},
		{"0 0 29 2 1", "UTC", "2026-01-01T00:00:00Z", []string{"2026-02-02T00:00:00Z", "2026-02-09T00:00:00Z", "2026-02-16T00:00:00Z"}},
		{"0 12 1-7 * mon", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-01T12:00:00Z", "2026-03-02T12:00:00Z", "2026-03-03T12:00:00Z", "2026-03-04T12:00:00Z"}},
		{"0 12 */1 * 5", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-06T12:00:00Z", "2026-03-13T12:00:00Z"}}, // */1 is starred
		{"0 12 13 * ?", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-13T12:00:00Z", "2026-04-13T12:00:00Z"}},
		{"0 12 13 * */1", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-13T12:00:00Z", "2026-04-13T12:00:00Z"}},
		{"0 12 13 * */2", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-01T12:00:00Z", "2026-03-03T12:00:00Z", "2026-03-05T12:00:00Z"}}, // */2 is not

		// Steps, ranges, names.
		{"*/15 9-17/4 * * MON-FRI", "UTC", "2026-03-06T17:50:00Z", []string{"2026-03-09T09:00:00Z", "2026-03-09T09:15:00Z", "2026-03-09T09:30:00Z"}},
		{"5/20 * * * *", "UTC", "2026-01-01T00:46:00Z", []string{"2026-01-01T01:05:00Z", "2026-01-01T01:25:00Z", "2026-01-01T01:45:00Z", "2026-01-01T02:05:00Z"}},
		{"0 0 1 Jan-Mar/2 *", "UTC", "2026-01-15T00:00:00Z", []string{"2026-03-01T00:00:00Z", "2027-01-01T00:00:00Z", "2027-03-01T00:00:00Z"}},
		{"0 0 * * SUN", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"}},
		{"0 0 * * sat,Sun", "UTC", "2026-03-01T00:00:00Z", []string{"2026-03-07T00:00:00Z", "2026-03-08T00:00:00Z", "2026-03-14T00:00:00Z"}},
		{"*-5 3 * * *", "UTC", "2026-01-01T00:00:00Z", []string{"2026-01-01T03:00:00Z", "2026-01-01T03:01:00Z"}},

		// Strictly after, on whole minutes.
		{"* * * * *", "UTC", "2026-01-01T00:00:00Z", []string{"2026-01-01T00:01:00Z", "2026-01-01T00:02:00Z"}},
		{"* * * * *", "UTC", "2026-01-01T00:00:59.999999999Z", []string{"2026-01-01T00:01:00Z"}},
		{"* * * * *", "UTC", "2026-01-01T00:00:00.5Z", []string{"2026-01-01T00:01:00Z"}},
		{"0 0 * * *", "Asia/Kolkata", "2026-01-01T00:00:00+05:30", []string{"2026-01-02T00:00:00+05:30"}},

		// Descriptors.
		{"@hourly", "UTC", "2026-01-01T10:30:00Z", []string{"2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"}},
		{"@daily", "UTC", "2026-01-01T10:30:00Z", []string{"2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"}},
		{"@midnight", "UTC", "2026-12-31T23:59:59Z", []string{"2027-01-01T00:00:00Z"}},
		{"@weekly", "UTC", "2026-03-04T10:00:00Z", []string{"2026-03-08T00:00:00Z", "2026-03-15T00:00:00Z"}},
		{"@monthly", "UTC", "2026-01-31T10:00:00Z", []string{"2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"}},
		{"@yearly", "UTC", "2026-05-05T00:00:00Z", []string{"2027-01-01T00:00:00Z", "2028-01-01T00:00:00Z"}},
		{"@annually", "UTC", "2026-01-01T00:00:00Z", []string{"2027-01-01T00:00:00Z"}},
		{"@every 90s", "UTC", "2026-01-01T00:00:00.7Z", []string{"2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"}},
		{"@every 1.5s", "UTC", "2026-01-01T00:00:00Z", []string{"2026-01-01T00:00:01Z"}},
		{"@every 0", "UTC", "2026-01-01T00:00:00.25Z", []string{"2026-01-01T00:00:01Z"}},
		{"@every -5m", "UTC", "2026-01-01T00:00:00Z", []string{"2026-01-01T00:00:01Z"}},
		{"@every 1h30m", "America/New_York", "2026-03-08T01:00:00-05:00", []string{"2026-03-08T03:30:00-04:00"}}, // elapsed time

		// America/New_York springs forward on 2026-03-08 at 02:00: the
		// missing hour has no tick.
		{"30 2 * * *", "America/New_York", "2026-03-07T12:00:00-05:00", []string{"2026-03-09T02:30:00-04:00", "2026-03-10T02:30:00-04:00"}},
		{"0 2 * * *", "America/New_York", "2026-03-07T03:00:00-05:00", []string{"2026-03-09T02:00:00-04:00", "2026-03-10T02:00:00-04:00"}},
		{"0 * * * *", "America/New_York", "2026-03-08T01:30:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-08T04:00:00-04:00"}},
		{"0 3 * * *", "America/New_York", "2026-03-08T00:00:00-05:00", []string{"2026-03-08T03:00:00-04:00"}},
		{"*/30 * * * *", "America/New_York", "2026-03-08T01:45:00-05:00", []string{"2026-03-08T03:00:00-04:00", "2026-03-08T03:30:00-04:00"}},
		// It falls back on 2026-11-01 at 02:00: the repeated hour ticks twice.
		{"30 1 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", []string{"2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-02T01:30:00-05:00"}},
		{"0 1 * * *", "America/New_York", "2026-10-31T23:30:00-04:00", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-02T01:00:00-05:00"}},
		{"0 2 * * *", "America/New_York", "2026-11-01T00:00:00-04:00", []string{"2026-11-01T02:00:00-05:00", "2026-11-02T02:00:00-05:00"}},
		{"@hourly", "America/New_York", "2026-11-01T00:30:00-04:00", []string{"2026-11-01T01:00:00-04:00", "2026-11-01T01:00:00-05:00", "2026-11-01T02:00:00-05:00", "2026-11-01T03:00:00-05:00"}},
		{"*/20 1 * * *", "America/New_York", "2026-11-01T00:50:00-04:00", []string{
			"2026-11-01T01:00:00-04:00", "2026-11-01T01:20:00-04:00", "2026-11-01T01:40:00-04:00",
			"2026-11-01T01:00:00-05:00", "2026-11-01T01:20:00-05:00", "2026-11-01T01:40:00-05:00",
			"2026-11-02T01:00:00-05:00"}},
		{"@daily", "America/New_York", "2026-11-01T00:00:00-04:00", []string{"2026-11-02T00:00:00-05:00", "2026-11-03T00:00:00-05:00"}},
		{"30 1 * * *", "Europe/London", "2026-03-28T12:00:00Z", []string{"2026-03-30T01:30:00+01:00", "2026-03-31T01:30:00+01:00"}},
		{"30 1 * * *", "Europe/London", "2026-10-25T00:00:00+01:00", []string{"2026-10-25T01:30:00+01:00", "2026-10-25T01:30:00Z", "2026-10-26T01:30:00Z"}},
		// Lord Howe Island moves its clock by half an hour (02:00 to 02:30).
		{"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", []string{"2026-10-05T02:15:00+11:00", "2026-10-06T02:15:00+11:00"}},
		{"45 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00+10:30", []string{"2026-10-04T02:45:00+11:00", "2026-10-05T02:45:00+11:00"}},
		{"0 0 * * *", "Pacific/Chatham", "2026-04-05T00:00:00+13:45", []string{"2026-04-06T00:00:00+12:45", "2026-04-07T00:00:00+12:45"}},
		// Cuba changes its clock at midnight: a day without midnight has
		// no @daily tick, and one with two midnights has two.
		{"@daily", "America/Havana", "2026-03-07T12:00:00-05:00", []string{"2026-03-09T00:00:00-04:00", "2026-03-10T00:00:00-04:00"}},
		{"@daily", "America/Havana", "2026-10-31T12:00:00-04:00", []string{"2026-11-01T00:00:00-04:00", "2026-11-01T00:00:00-05:00", "2026-11-02T00:00:00-05:00"}},
		{"30 0 * * *", "America/Havana", "2026-03-07T12:00:00-05:00", []string{"2026-03-09T00:30:00-04:00", "2026-03-10T00:30:00-04:00"}},
		{"0 0 * * *", "America/Sao_Paulo", "2018-11-03T12:00:00-03:00", []string{"2018-11-05T00:00:00-02:00", "2018-11-06T00:00:00-02:00"}},
		{"0 1 * * *", "America/Sao_Paulo", "2018-11-03T12:00:00-03:00", []string{"2018-11-04T01:00:00-02:00", "2018-11-05T01:00:00-02:00"}},
		// Samoa skipped 2011-12-30.
		{"0 12 * * *", "Pacific/Apia", "2011-12-29T13:00:00-10:00", []string{"2011-12-31T12:00:00+14:00", "2012-01-01T12:00:00+14:00"}},
	} {
		loc := mustLoad(t, tc.zone)
		s, err := Parse(tc.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.expr, err)
			continue
		}
		from := mustTime(t, tc.from).In(loc)
		for _, w := range tc.want {
			got := s.Next(from)
			if w == "" {
				if !got.IsZero() {
					t.Errorf("%q.Next(%s) = %s, want the zero time", tc.expr, from.Format(time.RFC3339Nano), got.Format(time.RFC3339))
				}
				break
			}
			if got.Format(time.RFC3339Nano) != w || got.Location() != loc {
				t.Errorf("%q.Next(%s) = %s in %v, want %s in %v", tc.expr, from.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano), got.Location(), w, loc)
				break
			}
			from = got
		}
	}
}

// TestNextSkippedDay: where robfig/cron would search forever (AddDate from
// 2011-12-29 in Pacific/Apia stays on the 29th, for the 30th is missing),
// the search goes on from the 31st.
func TestNextSkippedDay(t *testing.T) {
	loc := mustLoad(t, "Pacific/Apia")
	for _, tc := range []struct{ expr, from, want string }{
		{"14 3 30,31 * *", "2011-12-29T00:18:20-10:00", "2011-12-31T03:14:00+14:00"},
		{"0 0 30 12 *", "2011-12-01T00:00:00-10:00", "2012-12-30T00:00:00+14:00"},
		{"0 0 * * 6", "2011-12-28T00:00:00-10:00", "2011-12-31T00:00:00+14:00"},
	} {
		s, err := Parse(tc.expr)
		if err != nil {
			t.Fatal(err)
		}
		from := mustTime(t, tc.from).In(loc)
		if got := s.Next(from); got.Format(time.RFC3339) != tc.want {
			t.Errorf("%q.Next(%s) = %s, want %s", tc.expr, tc.from, got.Format(time.RFC3339), tc.want)
		}
	}
}

// TestNextLocal: a time in time.Local is read in time.Local; the result
// carries no monotonic clock reading.
func TestNextLocal(t *testing.T) {
	s, err := Parse("*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	got := s.Next(now)
	if got.Location() != time.Local || !got.After(now) || got.Sub(now) > 5*time.Minute || got.Minute()%5 != 0 || got.Second() != 0 || got.Nanosecond() != 0 {
		t.Errorf("Next(%v) = %v", now, got)
	}
	if got.String() != got.Round(0).String() {
		t.Errorf("Next(%v) = %v has a monotonic reading", now, got)
	}
}

func mustLoad(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Skipf("time zone %s: %v", name, err)
	}
	return loc
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
