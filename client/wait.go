package client

import (
	"context"
	"time"
)

// DefaultPollInterval is how often WaitOperation reads the operation when
// WaitOptions.Interval is 0.
const DefaultPollInterval = 500 * time.Millisecond

// DefaultStallAfter is WaitOptions.StallAfter when Stalled is set and
// StallAfter is 0.
const DefaultStallAfter = 15 * time.Second

// WaitOptions say how WaitOperation polls. The zero value polls every
// DefaultPollInterval and reports nothing.
type WaitOptions struct {
	// Interval is the time between two reads of the operation.
	Interval time.Duration
	// Progress, when set, is called with every read of the operation,
	// the finished one last.
	Progress func(Operation)
	// Stalled, when set, is called when no user of the operation has
	// finished for StallAfter (DefaultStallAfter when 0): typically no
	// worker is running, or none has taken a task of the operation's
	// queue. It gets the operation and how long it has not moved, and is
	// called again only after the operation has moved.
	Stalled    func(op Operation, idle time.Duration)
	StallAfter time.Duration
	// OnError, when set, decides what a failed read does: returning nil
	// keeps waiting (the API restarting, its database briefly away),
	// returning an error stops the wait with it. Without OnError the
	// first failure stops the wait. A done context always stops it.
	OnError func(error) error
}

// WaitOperation polls an operation until it has finished (FinishedAt is
// set) and returns it finished. When ctx ends first, or a read fails, it
// returns the operation as last read with the error: the operation goes on
// on the server either way.
func (c *Client) WaitOperation(ctx context.Context, id string, opts WaitOptions) (Operation, error) {
	interval := opts.Interval
	if interval <= 0 {
		interval = DefaultPollInterval
	}
	stallAfter := opts.StallAfter
	if stallAfter <= 0 {
		stallAfter = DefaultStallAfter
	}
	var last Operation
	done, movedAt, stallReported := -1, time.Now(), false
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-timer.C:
		}
		op, err := c.GetOperation(ctx, id)
		if err != nil {
			if ctx.Err() != nil {
				return last, ctx.Err()
			}
			if opts.OnError == nil {
				return last, err
			}
			if err := opts.OnError(err); err != nil {
				return last, err
			}
			timer.Reset(interval)
			continue
		}
		last = op
		if opts.Progress != nil {
			opts.Progress(op)
		}
		if op.FinishedAt != nil {
			return op, nil
		}
		now := time.Now()
		if n := op.Succeeded + op.Failed; n != done {
			done, movedAt, stallReported = n, now, false
		} else if idle := now.Sub(movedAt); opts.Stalled != nil && !stallReported && idle >= stallAfter {
			stallReported = true
			opts.Stalled(op, idle)
		}
		timer.Reset(interval)
	}
}
