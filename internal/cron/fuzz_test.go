package cron

import (
	"testing"
	"time"
)

// FuzzParse: Parse never panics, and a schedule's Next is after the time it
// is given, in its location, on a whole minute for five fields, or zero.
func FuzzParse(f *testing.F) {
	for _, expr := range []string{
		"0 2 * * *", "*/15 9-17/4 * * MON-FRI", "0 12 13 * 5", "0 0 29 2 *", "0 0 30 2 *",
		"*-5 ?/3 1,,31 jan-dec/5 sun/2", ", * * * *", "5/20 * * * *", "+5 05 1-31/31 12/1 6",
		"@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@every 1h30m", "@every 0",
		"@every x", "TZ=UTC", " @daily", "* * * * 7", "1-2-3 * * * *", "*/0 * * * *", "",
	} {
		f.Add(expr, int64(1772951400), uint8(1))
	}
	var locs []*time.Location
	for _, name := range []string{"UTC", "America/New_York", "Australia/Lord_Howe", "America/Havana",
		"America/Sao_Paulo", "Pacific/Apia", "Africa/Monrovia", "Pacific/Chatham"} {
		if loc, err := time.LoadLocation(name); err == nil {
			locs = append(locs, loc)
		}
	}
	f.Fuzz(func(t *testing.T, expr string, sec int64, zone uint8) {
		s, err := Parse(expr)
		if err != nil {
			if s != nil || err.Error() == "" {
				t.Fatalf("Parse(%q) = %v, %q", expr, s, err)
			}
			return
		}
		// An instant from 1900 to 2200, in one of the zones.
		const first, span = -2208988800, 300 * 365 * 24 * 3600
		sec = first + (sec%span+span)%span
		loc := locs[int(zone)%len(locs)]
		from := time.Unix(sec, int64(zone)*3_900_001).In(loc)
		got := s.Next(from)
		if got.IsZero() {
			return
		}
		if !got.After(from) || got.Location() != loc {
			t.Fatalf("Parse(%q).Next(%s) = %s", expr, from.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
		}
		if _, ok := s.(*spec); ok && (got.Second() != 0 || got.Nanosecond() != 0) {
			t.Fatalf("Parse(%q).Next(%s) = %s, not on a whole minute", expr, from.Format(time.RFC3339Nano), got.Format(time.RFC3339Nano))
		}
	})
}
