package ratelimit

import (
	"testing"
	"time"
)

func TestRetryAfterSecondsRoundsUp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		wait time.Duration
		want int
	}{
		{-1, 1}, {0, 1}, {time.Nanosecond, 1}, {999 * time.Millisecond, 1},
		{time.Second, 1}, {time.Second + time.Millisecond, 2}, {59*time.Second + time.Microsecond, 60},
	} {
		if got := RetryAfterSeconds(tc.wait); got != tc.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tc.wait, got, tc.want)
		}
	}
}
