package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
)

// errUserBusy means another operation is changing the user in the
// directory; the task is retried shortly.
var errUserBusy = errors.New("another operation is changing this user in the directory; retrying")

// applyExternal processes one item of a customer whose licenses live in an
// external directory, in three steps: PrepareExternal (rules, seats, claim;
// one short transaction), the directory call with no database lock held,
// and RecordExternal. A crash between any two steps is resumed by the next
// delivery: the item stays 'applying', the seats stay reserved, and the
// retry first asks the directory what the user already holds.
func (w *Worker) applyExternal(ctx context.Context, plan *storage.Plan, userID string) (storage.ItemOutcome, error) {
	dir := w.cfg.Directories[plan.Directory.Kind]
	if dir == nil {
		return storage.ItemOutcome{}, fmt.Errorf("customer directory %q is not configured on this worker; configure it and the task will be retried", plan.Directory.Kind)
	}
	items, err := w.store.PrepareExternal(ctx, plan, []string{userID})
	if err != nil {
		return storage.ItemOutcome{}, err
	}
	if len(items) == 0 {
		return storage.ItemOutcome{UserID: userID, Status: "missing"}, nil
	}
	it := items[0]
	switch {
	case it.Outcome != nil:
		return *it.Outcome, nil
	case it.Busy:
		return storage.ItemOutcome{}, errUserBusy
	}
	callErr := w.callDirectory(ctx, dir, plan, it)
	var result storage.ExternalResult
	switch {
	case callErr == nil:
		result = storage.ExternalResult{UserID: userID}
	case provider.IsPermanent(callErr):
		result = storage.ExternalResult{UserID: userID, Err: asOutcomeError(callErr)}
	case isLastAttempt(ctx):
		result = storage.ExternalResult{UserID: userID, Err: exhausted(callErr)}
	default:
		w.metrics.directoryRetries.Inc()
		return storage.ItemOutcome{}, callErr
	}
	out, err := w.store.RecordExternal(ctx, plan, []storage.ExternalResult{result})
	if err != nil || len(out) == 0 {
		return storage.ItemOutcome{}, err
	}
	return out[0], nil
}

// callDirectory makes the change in the directory. On a retry it first reads
// the user's licenses and applies only what is still missing, so a change
// that landed before a crash is not made twice.
func (w *Worker) callDirectory(ctx context.Context, dir provider.Directory, plan *storage.Plan, it storage.ExternalItem) error {
	tenant := plan.Directory.TenantID
	add, remove := it.Add, it.Remove
	if retried, _ := asynq.GetRetryCount(ctx); retried > 0 || it.Resumed {
		held, err := w.timedCall("user_licenses", func() ([]string, error) { return dir.UserLicenses(ctx, tenant, it.UserID) })
		if err != nil {
			return err
		}
		add = slices.DeleteFunc(slices.Clone(add), func(s string) bool { return slices.Contains(held, s) })
		remove = slices.DeleteFunc(slices.Clone(remove), func(s string) bool { return !slices.Contains(held, s) })
	}
	if it.Location != "" {
		if _, err := w.timedCall("set_usage_location", func() ([]string, error) {
			return nil, dir.SetUsageLocation(ctx, tenant, it.UserID, it.Location)
		}); err != nil {
			return err
		}
	}
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	ch := provider.Change{UserID: it.UserID, Remove: remove}
	for _, sku := range add {
		ch.Add = append(ch.Add, provider.AddLicense{SKU: sku})
	}
	_, err := w.timedCall("assign_license", func() ([]string, error) { return nil, dir.Apply(ctx, tenant, ch) })
	return err
}

// timedCall runs one directory call and records its duration and result.
func (w *Worker) timedCall(call string, fn func() ([]string, error)) ([]string, error) {
	start := time.Now()
	out, err := fn()
	result := "ok"
	var pe *provider.Error
	switch {
	case err == nil:
	case errors.As(err, &pe):
		result = pe.Kind.String()
	default:
		result = "error"
	}
	w.metrics.directoryCalls.WithLabelValues(call, result).Inc()
	w.metrics.directoryDuration.WithLabelValues(call).Observe(time.Since(start).Seconds())
	return out, err
}

func asOutcomeError(err error) *licensing.Error {
	var pe *provider.Error
	if errors.As(err, &pe) {
		code := pe.Code
		if code == "" {
			code = licensing.CodeProviderError
		}
		return &licensing.Error{Code: code, Message: "the license directory refused the change: " + pe.Message}
	}
	return &licensing.Error{Code: licensing.CodeProviderError, Message: "the license directory refused the change: " + err.Error()}
}

// exhausted is the outcome of a user whose directory calls kept failing
// until the last retry.
func exhausted(err error) *licensing.Error {
	var pe *provider.Error
	if errors.As(err, &pe) && pe.Kind == provider.Throttled {
		return licensing.Errorf(licensing.CodeProviderThrottled,
			"the license directory kept throttling the change after every retry; run the change again for this user later")
	}
	return licensing.Errorf(licensing.CodeProviderError,
		"the license directory kept failing after every retry (%v); run the change again for this user later", err)
}

// isLastAttempt reports whether asynq will not retry the task after this attempt.
func isLastAttempt(ctx context.Context) bool {
	retried, ok1 := asynq.GetRetryCount(ctx)
	maxRetry, ok2 := asynq.GetMaxRetry(ctx)
	return ok1 && ok2 && retried >= maxRetry
}

// retryDelay waits what the directory asked for (Retry-After), a short
// while for a busy user, else backs off exponentially with jitter from
// RetryBase up to RetryMax.
func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if d, ok := provider.RetryAfter(err); ok && d > 0 {
		return d + time.Duration(rand.Int64N(int64(d/4)+1))
	}
	if errors.Is(err, errUserBusy) {
		return w.cfg.RetryBase/2 + time.Duration(rand.Int64N(int64(w.cfg.RetryBase)))
	}
	d := min(w.cfg.RetryBase<<min(n, 20), w.cfg.RetryMax)
	return d/2 + time.Duration(rand.Int64N(int64(d)))
}
