package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/licenseops/licenseops/licensing"
)

// progressOptions say how an operation is watched.
type progressOptions struct {
	// label names the bar ("rollout", "operation").
	label string
	// terminal draws a redrawn bar (done/total, rate, ETA, failures);
	// otherwise progress is plain lines, one every lineEvery.
	terminal  bool
	lineEvery time.Duration
	// poll is how often the operation is read.
	poll time.Duration
}

const (
	defaultLineEvery = 5 * time.Second
	defaultPoll      = 300 * time.Millisecond
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

// watch polls an operation until it finishes, showing progress on w. When
// ctx ends first (Ctrl-C) it returns ctx's error and the operation goes on.
func watch(ctx context.Context, c *apiClient, opID string, w io.Writer, opts progressOptions) (licensing.Operation, error) {
	if opts.poll <= 0 {
		opts.poll = defaultPoll
	}
	if opts.lineEvery <= 0 {
		opts.lineEvery = defaultLineEvery
	}
	if opts.label == "" {
		opts.label = "rollout"
	}
	var show progressReporter
	for {
		var op licensing.Operation
		err := c.call(ctx, "GET", "/v1/operations/"+url.PathEscape(opID), nil, &op, callOptions{})
		if err != nil {
			if show != nil {
				show.abandon()
			}
			if ctx.Err() != nil {
				return op, ctx.Err()
			}
			return op, err
		}
		if show == nil {
			if opts.terminal {
				show = newBarProgress(w, op.Total, opts.label)
			} else {
				show = &lineProgress{w: w, every: opts.lineEvery}
			}
		}
		if op.FinishedAt != nil {
			show.finish(op)
			return op, nil
		}
		show.update(op)
		select {
		case <-ctx.Done():
			show.abandon()
			return op, ctx.Err()
		case <-time.After(opts.poll):
		}
	}
}

// printDetached tells how to come back to an operation left running.
func printDetached(w io.Writer, opID string) {
	fmt.Fprintf(w, "Detached: operation %s goes on running on the server; nothing was cancelled.\nReattach with:\n  licenseops operation watch %s\n", opID, opID)
}

// finishOperation prints the outcome summary of a finished operation,
// writes the report when reportPath is set, and returns the exit status:
// exitOK when every user succeeded, exitPartial when some failed.
func finishOperation(ctx context.Context, c *apiClient, op licensing.Operation, reportPath string, stdout, stderr io.Writer, name string) int {
	fmt.Fprintf(stdout, "Operation %s %s: %d succeeded, %d failed of %d.\n", op.ID, op.Status, op.Succeeded, op.Failed, op.Total)
	o, err := collectOutcomes(ctx, c, op.ID, reportPath)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(stderr, "licenseops %s: interrupted while reading the report; get it with: licenseops operation report %s --csv FILE\n", name, op.ID)
		return exitDetached
	}
	if err != nil {
		printError(stderr, "licenseops "+name, fmt.Errorf("report: %w", err))
		return exitError
	}
	o.print(stdout, "Outcomes")
	if reportPath != "" {
		fmt.Fprintf(stdout, "Report written to %s (%d rows).\n", reportPath, o.rows)
	} else {
		fmt.Fprintf(stdout, "Full report: licenseops operation report %s --csv report.csv\n", op.ID)
	}
	if op.Failed > 0 || op.Status == "completed_with_errors" {
		return exitPartial
	}
	return exitOK
}
