package worker

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/licenseops/licenseops/storage"
)

// A single user's item (a helpdesk change, a smaller rollout's user) goes
// into the next batch even while the thousands of a large operation's batch
// tasks wait for the flushers: it is not queued behind them.
func TestBatcherTakesSingleItemsBeforeBulk(t *testing.T) {
	b := newBatcher(nil, 1, 10)
	t.Cleanup(b.Close)
	gate := make(chan struct{})
	batches := make(chan []string, 100)
	first := true
	b.apply = func(_ context.Context, plan *storage.Plan, reqs []*itemRequest) map[string]itemResult {
		if first {
			first = false
			<-gate // hold the only flusher until the single item waits
		}
		users := make([]string, len(reqs))
		out := make(map[string]itemResult, len(reqs))
		for i, r := range reqs {
			users[i] = plan.ID + "/" + r.userID
			out[r.userID] = itemResult{outcome: storage.ItemOutcome{UserID: r.userID, Status: "succeeded"}}
		}
		batches <- users
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	large := &storage.Plan{ID: "large"}
	users := make([]string, 100)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	go b.DoMany(ctx, large, users)
	for len(b.bulk) < cap(b.bulk) { // the flusher holds 10, 10 more wait, the rest block
		time.Sleep(time.Millisecond)
	}
	single := make(chan error, 1)
	go func() {
		_, err := b.Do(ctx, &storage.Plan{ID: "small"}, "helpdesk")
		single <- err
	}()
	for len(b.in) == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	<-batches // the batch that was held
	if next := <-batches; !slices.Contains(next, "small/helpdesk") {
		t.Errorf("the batch after the held one is %v: the single item waited behind the bulk", next)
	}
	if err := <-single; err != nil {
		t.Fatal(err)
	}
}
