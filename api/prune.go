package api

import (
	"context"
	"log/slog"
	"time"

	"github.com/licenseops/licenseops/storage"
)

// pruneLockKey is the advisory lock that lets one api process at a time
// prune idempotency keys ("lops-id"); the worker's sweeper uses another.
const pruneLockKey = 0x6c6f70732d6964

// pruner deletes idempotency keys older than 24 hours, and webhook events
// older than 30 days, in the background, so the tables hold about a day of
// operations and a month of events however long the service runs.
// Every api process runs one; the advisory lock lets one prune at a time,
// and a prune that overlaps another would only delete nothing.
type pruner struct {
	store    *storage.Store
	interval time.Duration
	log      *slog.Logger

	cancel context.CancelFunc
	done   chan struct{}
}

// start prunes every interval until stop.
func (p *pruner) start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel, p.done = cancel, make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(p.interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				p.prune(ctx)
			}
		}
	}()
}

// stop ends the background pruning and waits for a prune in progress.
func (p *pruner) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	p.cancel = nil
}

func (p *pruner) prune(ctx context.Context) {
	ok, unlock, err := p.store.TryLock(ctx, pruneLockKey)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		p.log.Warn("idempotency key pruning skipped; will try again", "error", err)
		return
	}
	if !ok {
		return // another api process is pruning
	}
	defer unlock()
	n, err := p.store.PruneIdempotencyKeys(ctx)
	switch {
	case err != nil && ctx.Err() == nil: // a prune cut short by Close is no failure
		p.log.Warn("idempotency key pruning failed; will try again", "error", err)
	case n > 0:
		p.log.Debug("expired idempotency keys pruned", "deleted", n)
	}
	n, err = p.store.PruneWebhookEvents(ctx, webhookRetention)
	switch {
	case err != nil && ctx.Err() == nil:
		p.log.Warn("webhook event pruning failed; will try again", "error", err)
	case n > 0:
		p.log.Debug("old webhook events pruned", "deleted", n)
	}
}

// webhookRetention is how long webhook events and their delivery log are
// kept (those still being delivered stay until they are done).
const webhookRetention = 30 * 24 * time.Hour
