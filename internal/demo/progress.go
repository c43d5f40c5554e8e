package demo

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/licensing"
)

// watch polls an operation and draws a progress bar until it finishes.
func watch(ctx context.Context, c *stack.Client, id string, total int, w io.Writer) (licensing.Operation, error) {
	bar := progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription("rollout"),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("users"),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
	)
	for {
		var op licensing.Operation
		if err := c.Call(ctx, "GET", "/v1/operations/"+id, nil, &op); err != nil {
			return op, err
		}
		_ = bar.Set(op.Succeeded + op.Failed)
		bar.Describe(fmt.Sprintf("rollout (%d failed)", op.Failed))
		if op.FinishedAt != nil {
			_ = bar.Finish()
			fmt.Fprintln(w)
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
