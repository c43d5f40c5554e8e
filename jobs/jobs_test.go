package jobs

import (
	"testing"

	"github.com/licenseops/licenseops/licensing"
)

// An operation's size picks its queue: interactive changes critical,
// rollouts from the bulk size bulk, the ones between default; cleanups low
// whatever their size.
func TestQueueFor(t *testing.T) {
	for _, c := range []struct {
		total, bulkMin int
		source, want   string
	}{
		{2, 10_000, licensing.SourceAPI, QueueCritical},
		{100, 10_000, licensing.SourceAPI, QueueCritical},
		{101, 10_000, licensing.SourceAPI, QueueDefault},
		{9_999, 10_000, licensing.SourceAPI, QueueDefault},
		{10_000, 10_000, licensing.SourceAPI, QueueBulk},
		{100_000, 0, licensing.SourceAPI, QueueDefault},
		{100_000, 10_000, licensing.SourceCleanup, QueueLow},
	} {
		if got := QueueFor(c.total, c.source, 100, c.bulkMin); got != c.want {
			t.Errorf("QueueFor(%d, %s, 100, %d) = %s, want %s", c.total, c.source, c.bulkMin, got, c.want)
		}
		if _, ok := QueueWeights[c.want]; !ok {
			t.Errorf("queue %s has no weight: no worker would take its tasks", c.want)
		}
	}
}
