package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/licenseops/licenseops/client"
)

// pollEvery is how often the demo reads the operation.
const pollEvery = 200 * time.Millisecond

// watch polls an operation until it finishes, showing its progress on w: a
// bar redrawn in place on a terminal, a plain line every progressLineGap
// otherwise, so that a log file gets no carriage returns.
func watch(ctx context.Context, c *client.Client, id string, total int, w io.Writer, terminal bool) (client.Operation, error) {
	var show func(op client.Operation, rate string)
	var finish func()
	if terminal {
		bar := progressbar.NewOptions(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription("rollout"),
			progressbar.OptionShowCount(),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
		)
		show = func(op client.Operation, rate string) {
			bar.Describe(fmt.Sprintf("rollout (%d failed%s)", op.Failed, rate))
			_ = bar.Set(op.Succeeded + op.Failed)
		}
		finish = func() {
			_ = bar.Finish()
			fmt.Fprintln(w)
		}
	} else {
		var last time.Time
		show = func(op client.Operation, rate string) {
			if now := time.Now(); op.FinishedAt != nil || now.Sub(last) >= progressLineGap {
				last = now
				fmt.Fprintf(w, "rollout: %d of %d users done, %d failed%s\n", op.Succeeded+op.Failed, op.Total, op.Failed, rate)
			}
		}
		finish = func() {}
	}
	var r rateMeter
	op, err := c.WaitOperation(ctx, id, client.WaitOptions{Interval: pollEvery, Progress: func(op client.Operation) {
		show(op, r.observe(op.Succeeded+op.Failed, time.Now()))
	}})
	if err == nil {
		finish()
	}
	return op, err
}

// rateMeter measures users per second from the first reading that shows
// progress. Before that, and for the first second after it, there is no
// rate to show: a rate over the queue's first moments says nothing.
type rateMeter struct {
	from     time.Time
	fromDone int
	started  bool
}

// measureAfter is how long the meter measures before it shows a rate.
const measureAfter = time.Second

// observe records that done users were done at now and returns the rate to
// show, ", N users/s", or "" while it is not measurable yet.
func (r *rateMeter) observe(done int, now time.Time) string {
	if !r.started {
		if done == 0 {
			return ""
		}
		r.from, r.fromDone, r.started = now, done, true
		return ""
	}
	d := now.Sub(r.from)
	if d < measureAfter || done <= r.fromDone {
		return ""
	}
	return fmt.Sprintf(", %.0f users/s", float64(done-r.fromDone)/d.Seconds())
}
