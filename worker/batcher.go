package worker

import (
	"context"
	"sync"
	"time"

	"github.com/licenseops/licenseops/storage"
)

// batcher turns many concurrent per-user handler calls into a few database
// transactions. Each asynq handler hands its item over and waits; a small
// pool of flushers takes whatever items are waiting (up to maxBatch),
// processes those of one operation in one transaction and answers every
// waiting handler. Under load, batches fill up by themselves; when the queue
// is quiet, a lone item goes at once, so interactive latency does not suffer.
type batcher struct {
	store *storage.Store
	// in takes the items of single-user tasks, bulk those of batch tasks
	// (a thousand users of one large operation at a time). Flushers take
	// from in first, so that a helpdesk change or a smaller rollout's
	// users are not queued behind the thousands of a large one.
	in       chan *itemRequest
	bulk     chan *itemRequest
	maxBatch int
	// apply processes the items of one operation and returns each user's
	// result; it is chosen by the customer's directory.
	apply func(ctx context.Context, plan *storage.Plan, reqs []*itemRequest) map[string]itemResult
	// afterBatch runs after each committed batch (finalizing small operations).
	afterBatch func(ctx context.Context, plan *storage.Plan)
	observe    func(batchSize int, d time.Duration)
	wg         sync.WaitGroup
	stop       chan struct{}
}

type itemRequest struct {
	ctx    context.Context
	plan   *storage.Plan
	userID string
	done   chan itemResult
}

type itemResult struct {
	outcome storage.ItemOutcome
	err     error
}

func newBatcher(store *storage.Store, flushers, maxBatch int) *batcher {
	b := &batcher{
		store:    store,
		in:       make(chan *itemRequest, flushers*maxBatch),
		bulk:     make(chan *itemRequest, flushers*maxBatch),
		maxBatch: maxBatch,
		stop:     make(chan struct{}),
	}
	for range flushers {
		b.wg.Add(1)
		go b.flushLoop()
	}
	return b
}

// Do processes one item and returns its outcome.
func (b *batcher) Do(ctx context.Context, plan *storage.Plan, userID string) (storage.ItemOutcome, error) {
	r := b.DoMany(ctx, plan, []string{userID})[0]
	return r.outcome, r.err
}

// DoMany processes items of one operation and returns their results in the
// order of userIDs. The flushers take them into their batches as they come,
// with other handlers' items; many at once (a batch task's) yield to single
// ones.
func (b *batcher) DoMany(ctx context.Context, plan *storage.Plan, userIDs []string) []itemResult {
	results := make([]itemResult, len(userIDs))
	reqs := make([]itemRequest, len(userIDs))
	queue := b.in
	if len(userIDs) > 1 {
		queue = b.bulk
	}
	sent := 0
send:
	for i, u := range userIDs {
		reqs[i] = itemRequest{ctx: ctx, plan: plan, userID: u, done: make(chan itemResult, 1)}
		select {
		case queue <- &reqs[i]:
			sent++
		case <-ctx.Done():
			break send
		}
	}
	for i := range results {
		if i >= sent {
			results[i] = itemResult{err: ctx.Err()}
			continue
		}
		select {
		case results[i] = <-reqs[i].done:
		case <-ctx.Done():
			// The batch may still commit; the retry will then find the
			// item terminal and report its recorded outcome.
			results[i] = itemResult{err: ctx.Err()}
		}
	}
	return results
}

// Close stops the flushers after the batches in progress.
func (b *batcher) Close() {
	close(b.stop)
	b.wg.Wait()
}

func (b *batcher) flushLoop() {
	defer b.wg.Done()
	batch := make([]*itemRequest, 0, b.maxBatch)
	for {
		r := b.next(true)
		if r == nil {
			return
		}
		batch = append(batch[:0], r)
		for len(batch) < b.maxBatch {
			if r = b.next(false); r == nil {
				break
			}
			batch = append(batch, r)
		}
		b.process(batch)
	}
}

// next takes the next item, single-user items before those of batch tasks.
// With wait it blocks until one comes, or returns nil when the batcher
// stops; without, it returns nil when none is waiting.
func (b *batcher) next(wait bool) *itemRequest {
	select {
	case r := <-b.in:
		return r
	default:
	}
	if !wait {
		select {
		case r := <-b.bulk:
			return r
		default:
			return nil
		}
	}
	select {
	case r := <-b.in:
		return r
	case r := <-b.bulk:
		return r
	case <-b.stop:
		return nil
	}
}

// process runs one transaction per operation present in the batch.
func (b *batcher) process(batch []*itemRequest) {
	for len(batch) > 0 {
		plan := batch[0].plan
		group := make([]*itemRequest, 0, len(batch))
		rest := batch[:0]
		for _, r := range batch {
			if r.plan.ID == plan.ID {
				group = append(group, r)
			} else {
				rest = append(rest, r)
			}
		}
		b.processGroup(plan, group)
		batch = rest
	}
}

func (b *batcher) processGroup(plan *storage.Plan, group []*itemRequest) {
	live := make([]*itemRequest, 0, len(group))
	for _, r := range group {
		if r.ctx.Err() == nil {
			live = append(live, r)
		} else {
			r.done <- itemResult{err: r.ctx.Err()}
		}
	}
	if len(live) == 0 {
		return
	}
	// The batch outlives any single handler's context: it is shared work,
	// bounded by its own timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	results := b.apply(ctx, plan, live)
	if b.observe != nil {
		b.observe(len(live), time.Since(start))
	}
	committed := false
	answered := make(map[string]bool, len(live))
	for _, r := range live {
		res, ok := results[r.userID]
		if !ok {
			// No item row (or its user was deleted): nothing to do for it.
			res = itemResult{outcome: storage.ItemOutcome{UserID: r.userID, Status: "missing"}}
		}
		if answered[r.userID] {
			// Two deliveries of one item in the same batch: one change, so
			// only the first delivery reports it as one.
			res.outcome.Changed = false
		}
		answered[r.userID] = true
		committed = committed || res.err == nil
		r.done <- res
	}
	if committed && b.afterBatch != nil {
		b.afterBatch(ctx, plan)
	}
}

// applyLocal is the apply function of the local directory: one transaction
// for the whole batch; an error fails every item of it (asynq retries them).
func (b *batcher) applyLocal(ctx context.Context, plan *storage.Plan, reqs []*itemRequest) map[string]itemResult {
	users := make([]string, len(reqs))
	for i, r := range reqs {
		users[i] = r.userID
	}
	outcomes, err := b.applyWithRetry(ctx, plan, users)
	results := make(map[string]itemResult, len(reqs))
	if err != nil {
		for _, u := range users {
			results[u] = itemResult{err: err}
		}
		return results
	}
	for _, o := range outcomes {
		if o.Wait {
			results[o.UserID] = itemResult{err: errWaitForSeat}
			continue
		}
		results[o.UserID] = itemResult{outcome: o}
	}
	return results
}

// applyWithRetry retries a batch that lost a deadlock or serialization race;
// other errors go back to asynq, which retries each task with backoff.
func (b *batcher) applyWithRetry(ctx context.Context, plan *storage.Plan, users []string) ([]storage.ItemOutcome, error) {
	if len(users) == 0 {
		return nil, nil
	}
	var err error
	for attempt := range 3 {
		var out []storage.ItemOutcome
		out, err = b.store.ApplyLocal(ctx, plan, users)
		if err == nil || !storage.IsRetryable(err) {
			return out, err
		}
		time.Sleep(time.Duration(attempt+1) * 20 * time.Millisecond)
	}
	return nil, err
}
