package worker

import (
	"context"
	"sync"

	"github.com/licenseops/licenseops/storage"
)

// planCache keeps operation plans in memory. Plans never change after
// intake, so an entry is valid for the life of the process; the cache is
// bounded so that a long-running worker does not grow without end.
type planCache struct {
	store *storage.Store
	max   int
	mu    sync.Mutex
	plans map[string]*storage.Plan
}

func newPlanCache(store *storage.Store, max int) *planCache {
	return &planCache{store: store, max: max, plans: make(map[string]*storage.Plan)}
}

func (c *planCache) Get(ctx context.Context, opID string) (*storage.Plan, error) {
	c.mu.Lock()
	p, ok := c.plans[opID]
	c.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := c.store.LoadPlan(ctx, opID)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.plans) >= c.max {
		for k := range c.plans { // evict an arbitrary entry; a miss costs one query
			delete(c.plans, k)
			break
		}
	}
	c.plans[opID] = p
	c.mu.Unlock()
	return p, nil
}

// Cached returns the plan of an operation if it is in the cache, without a
// query: for log lines, which must not add load to a struggling database.
func (c *planCache) Cached(opID string) *storage.Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plans[opID]
}
