package demo

import (
	"testing"
	"time"
)

// The rate appears once it is measurable: after the first reading that shows
// progress and a second more of it, in users per second.
func TestRateMeter(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var r rateMeter
	for _, step := range []struct {
		done int
		at   time.Duration
		want string
	}{
		{0, 0, ""},                                        // queued: nothing done
		{0, 300 * time.Millisecond, ""},                   // still nothing
		{100, 600 * time.Millisecond, ""},                 // the first progress starts the measure
		{600, 1200 * time.Millisecond, ""},                // under a second of measure
		{2100, 2600 * time.Millisecond, ", 1000 users/s"}, // 2,000 users in 2 s
		{2100, 3600 * time.Millisecond, ", 667 users/s"},  // stalled: the average falls
	} {
		if got := r.observe(step.done, t0.Add(step.at)); got != step.want {
			t.Errorf("observe(%d at %s) = %q, want %q", step.done, step.at, got, step.want)
		}
	}
}
