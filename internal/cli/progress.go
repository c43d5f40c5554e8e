package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/licensing"
)

// progressOptions say how an operation is watched.
type progressOptions struct {
	// label names the bar ("rollout", "operation").
	label string
	// name is the command, for the warnings ("rollout", "operation watch").
	name string
	// lineEvery is how often a plain progress line is printed (not on a terminal).
	lineEvery time.Duration
}

const (
	defaultLineEvery  = 5 * time.Second
	defaultPoll       = 300 * time.Millisecond
	defaultStallAfter = 15 * time.Second
)

// progressReporter shows an operation's progress.
type progressReporter interface {
	update(op licensing.Operation)
	finish(op licensing.Operation)
	// abandon ends the display when watching stops early.
	abandon()
}

// barProgress is the terminal display: a progress bar whose description
// carries the failures so far.
type barProgress struct {
	w     io.Writer
	label string
	bar   *progressbar.ProgressBar
}

func newBarProgress(w io.Writer, total int, label string) *barProgress {
	return &barProgress{w: w, label: label, bar: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(label+" (0 failed)"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("users"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetRenderBlankState(true),
	)}
}

func (b *barProgress) update(op licensing.Operation) {
	b.bar.Describe(fmt.Sprintf("%s (%d failed)", b.label, op.Failed))
	_ = b.bar.Set(op.Succeeded + op.Failed)
}

func (b *barProgress) finish(op licensing.Operation) {
	b.update(op)
	_ = b.bar.Finish()
	fmt.Fprintln(b.w)
}

func (b *barProgress) abandon() { fmt.Fprintln(b.w) }

// lineProgress is the display for logs and pipes: a plain line every few
// seconds, no carriage returns, no escape sequences.
type lineProgress struct {
	w           io.Writer
	every       time.Duration
	start, last time.Time
	startDone   int
	started     bool
}

func (l *lineProgress) update(op licensing.Operation) {
	now := time.Now()
	if !l.started {
		l.start, l.last, l.startDone, l.started = now, now, op.Succeeded+op.Failed, true
		return
	}
	if now.Sub(l.last) < l.every {
		return
	}
	l.last = now
	l.print(op, now)
}

func (l *lineProgress) print(op licensing.Operation, now time.Time) {
	done := op.Succeeded + op.Failed
	rate := 0.0
	if d := now.Sub(l.start).Seconds(); d > 0 {
		rate = float64(done-l.startDone) / d
	}
	fmt.Fprintf(l.w, "progress: %d/%d done, %d failed, %.0f users/s\n", done, op.Total, op.Failed, rate)
}

// finish prints the last line, with the operation's own average rate
// (the server's clock on both ends).
func (l *lineProgress) finish(op licensing.Operation) {
	rate := 0.0
	if op.FinishedAt != nil {
		if d := op.FinishedAt.Sub(op.CreatedAt).Seconds(); d > 0 {
			rate = float64(op.Succeeded+op.Failed) / d
		}
	}
	fmt.Fprintf(l.w, "progress: %d/%d done, %d failed, %.0f users/s\n", op.Succeeded+op.Failed, op.Total, op.Failed, rate)
}

func (l *lineProgress) abandon() {}

// watch polls an operation until it finishes, showing progress on
// env.Stdout: a bar on a terminal (done/total, rate, time left, failures so
// far), elsewhere a plain line every opts.lineEvery. When the operation
// makes no progress for env.StallAfter it warns once on env.Stderr that no
// worker may be running. When ctx ends first (Ctrl-C) it returns a
// DetachedError: the operation goes on.
func watch(ctx context.Context, env *Env, c *client.Client, opID string, opts progressOptions) (licensing.Operation, error) {
	poll, stallAfter := env.PollInterval, env.StallAfter
	if poll <= 0 {
		poll = defaultPoll
	}
	if stallAfter <= 0 {
		stallAfter = defaultStallAfter
	}
	if opts.lineEvery <= 0 {
		opts.lineEvery = defaultLineEvery
	}
	if opts.label == "" {
		opts.label = "rollout"
	}
	terminal := env.terminal(env.Stdout)
	var show progressReporter
	warned := false
	op, err := c.WaitOperation(ctx, opID, client.WaitOptions{
		Interval:   poll,
		StallAfter: stallAfter,
		Progress: func(op licensing.Operation) {
			if show == nil {
				if terminal {
					show = newBarProgress(env.Stdout, op.Total, opts.label)
				} else {
					show = &lineProgress{w: env.Stdout, every: opts.lineEvery}
				}
			}
			if op.FinishedAt != nil {
				show.finish(op)
				return
			}
			show.update(op)
		},
		Stalled: func(op licensing.Operation, idle time.Duration) {
			if warned {
				return
			}
			warned = true
			if terminal {
				fmt.Fprintln(env.Stderr) // below the bar
			}
			fmt.Fprintf(env.Stderr, "licenseops %s: %s\n", opts.name, stallWarning(op, idle, liveWorkers(ctx, c)))
		},
	})
	if err != nil {
		if show != nil {
			show.abandon()
		}
		if ctx.Err() != nil {
			return op, &DetachedError{OperationID: opID}
		}
		return op, withHint(err, "The operation may still be running; watch it with: licenseops operation watch "+opID)
	}
	return op, nil
}

// stallWarning says why an operation may not be moving: with none of its
// users done, most likely no worker runs; /readyz says how many are alive.
func stallWarning(op licensing.Operation, idle time.Duration, workers *client.WorkersAlive) string {
	done := op.Succeeded + op.Failed
	var msg string
	if done == 0 {
		msg = fmt.Sprintf("no progress for %s: no worker has taken a task — is `licenseops worker` running?", idle.Round(100*time.Millisecond))
	} else {
		msg = fmt.Sprintf("no progress for %s at %d/%d: is `licenseops worker` still running?", idle.Round(100*time.Millisecond), done, op.Total)
	}
	switch {
	case workers == nil:
	case workers.Alive == 0:
		msg += " The API reports no live worker (/readyz)."
	default:
		msg += fmt.Sprintf(" The API reports %s alive (/readyz); they may be busy with other operations.", plural(workers.Alive, "worker"))
	}
	return msg + " Still waiting; Ctrl-C detaches."
}
