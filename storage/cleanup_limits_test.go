package storage

import (
	"math"
	"testing"
)

func TestBlastLimit(t *testing.T) {
	n := func(v int) *int { return &v }
	p := func(v float64) *float64 { return &v }
	cases := []struct {
		changes *int
		percent *float64
		users   int
		want    int
	}{
		{n(500), p(10), 20, 2},        // 10 % of 20
		{n(500), p(10), 4000, 400},    // 10 % is the smaller
		{n(500), p(10), 100_000, 500}, // 500 is the smaller
		{n(500), p(10), 5, 0},         // any live run of a tiny customer needs confirm
		{nil, p(33.3), 1000, 333},     // fractions of a percent
		{n(3), nil, 1_000_000, 3},     // no percentage
		{nil, nil, 10, math.MaxInt},   // no limit
		{nil, p(100), 7, 7},           // everyone
	}
	for _, tc := range cases {
		if got := blastLimit(tc.changes, tc.percent, tc.users); got != tc.want {
			t.Errorf("blastLimit(%v, %v, %d) = %d, want %d", tc.changes, tc.percent, tc.users, got, tc.want)
		}
	}
}
