package storage

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// latestByStepping is Latest the slow way: every tick from well before t.
func latestByStepping(s Schedule, t time.Time, back time.Duration) time.Time {
	var last time.Time
	for tick := s.Next(t.Add(-back)); !tick.IsZero() && !tick.After(t); tick = s.Next(tick) {
		last = tick
	}
	return last
}

func TestScheduleLatest(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		spec, zone string
		back       time.Duration // longer than the longest gap between ticks
	}{
		{"0 2 * * *", "Europe/Warsaw", 3 * 24 * time.Hour},
		{"30 2 * * *", "Europe/Warsaw", 3 * 24 * time.Hour}, // 02:30 does not exist on the spring DST day
		{"0 1 * * *", "America/New_York", 3 * 24 * time.Hour},
		{"* * * * *", "UTC", time.Hour},
		{"*/7 9-17 * * 1-5", "Asia/Kolkata", 5 * 24 * time.Hour},
		{"* 2 * * *", "Australia/Lord_Howe", 3 * 24 * time.Hour}, // a 30-minute DST shift
		{"0 0 1 1 *", "Pacific/Chatham", 800 * 24 * time.Hour},
		{"0 0 29 2 *", "UTC", 9 * 366 * 24 * time.Hour},
	} {
		s, err := ParseSchedule(tc.spec, tc.zone)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.spec, tc.zone, err)
		}
		for range 200 {
			at := base.Add(time.Duration(rng.Int64N(int64(2 * 365 * 24 * time.Hour))))
			if rng.IntN(4) == 0 {
				at = s.Next(at) // exactly on a tick
			}
			want := latestByStepping(s, at, tc.back)
			if got := s.Latest(at); !got.Equal(want) {
				t.Fatalf("%s in %s: Latest(%v) = %v, want %v", tc.spec, tc.zone, at, got, want)
			}
		}
	}
}

func TestScheduleLatestAtAndAroundATick(t *testing.T) {
	t.Parallel()
	s, err := ParseSchedule("0 2 * * *", "Europe/Warsaw")
	if err != nil {
		t.Fatal(err)
	}
	tick := time.Date(2026, 3, 10, 1, 0, 0, 0, time.UTC) // 02:00 CET
	if got := s.Latest(tick); !got.Equal(tick) {
		t.Fatalf("Latest at the tick = %v, want the tick %v", got, tick)
	}
	if got := s.Latest(tick.Add(-time.Second)); !got.Equal(tick.Add(-24 * time.Hour)) {
		t.Fatalf("Latest a second before = %v, want the day before", got)
	}
	if got := s.Latest(tick.Add(59 * time.Second)); !got.Equal(tick) {
		t.Fatalf("Latest within the minute = %v, want the tick", got)
	}
	if got := s.Next(tick.Add(-time.Second)); !got.Equal(tick) {
		t.Fatalf("Next just before = %v, want the tick", got)
	}
}

func TestParseScheduleRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ spec, zone, mention string }{
		{"0 2 * * *", "Nowhere/City", "time_zone"},
		{"0 2 * * *", "", "time_zone"},
		{"0 2 * * *", "Local", "time_zone"},
		{"0 2 * * *", "../../etc/passwd", "time_zone"},
		{"0 2 * *", "UTC", "five"},
		{"0 0 2 * * *", "UTC", "five"},
		{"@daily", "UTC", "five"},
		{"TZ=UTC 0 2 * *", "UTC", "time_zone"},
		{"0 24 * * *", "UTC", "cron"},
		{"x 2 * * *", "UTC", "cron"},
		{"0 0 31 4 *", "UTC", "never fires"},
	} {
		if _, err := ParseSchedule(tc.spec, tc.zone); err == nil || !strings.Contains(err.Error(), tc.mention) {
			t.Errorf("ParseSchedule(%q, %q) = %v, want an error mentioning %q", tc.spec, tc.zone, err, tc.mention)
		}
	}
	s, err := ParseSchedule(" 0  2 * *   1-5 ", "Europe/Warsaw")
	if err != nil || s.Spec() != "0 2 * * 1-5" || s.Zone() != "Europe/Warsaw" || Cronspec(s.Spec(), s.Zone()) != "CRON_TZ=Europe/Warsaw 0 2 * * 1-5" {
		t.Fatalf("ParseSchedule normalizes to %q in %q (%v)", s.Spec(), s.Zone(), err)
	}
}
