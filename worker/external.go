package worker

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
)

// errUserBusy means another operation is changing the user in the
// directory; the task is retried shortly.
var errUserBusy = errors.New("another operation is changing this user in the directory; retrying")

// errWaitForSeat means the user is short of a seat that an unfinished user
// of the same operation holds and may leave unused (storage.ItemOutcome's
// Wait). The task is retried shortly and the retry is not a failure
// (isFailure): it does not spend the task's retries, which are for
// failures of the database or the directory, however long it waits.
var errWaitForSeat = errors.New("waiting for a seat another user of the operation may leave unused; retrying")

// isFailure is asynq's Config.IsFailure: every error is a failure that
// spends one of the task's retries, except waiting for a seat and waiting
// for the tenant's write pace (pacedError).
func isFailure(err error) bool { return !errors.Is(err, errWaitForSeat) && !isPaced(err) }

// applyExternal processes a batch of one operation whose customer keeps its
// licenses in an external directory, in three steps: PrepareExternal (rules,
// seats, claims; one short transaction for the batch), the directory calls
// (concurrently, bounded per tenant by the client) with no database lock
// held, and RecordExternal (one transaction). A crash between any two steps
// is resumed by the next delivery: the item stays 'applying', its seats stay
// reserved, and the retry first asks the directory what the user holds.
// Items whose call failed transiently get their error back, so asynq
// retries just them.
func (w *Worker) applyExternal(ctx context.Context, plan *storage.Plan, reqs []*itemRequest) map[string]itemResult {
	results := make(map[string]itemResult, len(reqs))
	failAll := func(err error) map[string]itemResult {
		for _, r := range reqs {
			results[r.userID] = itemResult{err: err}
		}
		return results
	}
	dir := w.cfg.Directories[plan.Directory.Kind]
	if dir == nil {
		return failAll(fmt.Errorf("customer directory %q is not configured on this worker; configure it and the task will be retried", plan.Directory.Kind))
	}
	users := make([]string, len(reqs))
	attempt := make(map[string]context.Context, len(reqs))
	for i, r := range reqs {
		users[i], attempt[r.userID] = r.userID, r.ctx
	}
	items, err := w.store.PrepareExternal(ctx, plan, users)
	if err != nil {
		return failAll(err)
	}
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		records []storage.ExternalResult
	)
	for _, it := range items {
		switch {
		case it.Outcome != nil:
			results[it.UserID] = itemResult{outcome: *it.Outcome}
			continue
		case it.Busy:
			results[it.UserID] = itemResult{err: errUserBusy}
			continue
		case it.Wait:
			results[it.UserID] = itemResult{err: errWaitForSeat}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			callErr := w.callDirectory(ctx, attempt[it.UserID], dir, plan, it)
			mu.Lock()
			defer mu.Unlock()
			groupChange := len(it.AddDirect)+len(it.RemoveDirect) > 0
			switch {
			case callErr == nil:
				records = append(records, storage.ExternalResult{UserID: it.UserID, GroupChange: groupChange})
			case provider.IsPermanent(callErr):
				records = append(records, storage.ExternalResult{UserID: it.UserID, Err: asOutcomeError(callErr), GroupChange: groupChange})
			case isLastAttempt(attempt[it.UserID]):
				records = append(records, storage.ExternalResult{UserID: it.UserID, Err: exhausted(callErr)})
			default:
				w.metrics.directoryRetries.Inc()
				results[it.UserID] = itemResult{err: callErr}
			}
		}()
	}
	wg.Wait()
	if len(records) == 0 {
		return results
	}
	outcomes, err := w.store.RecordExternal(ctx, plan, records)
	if err != nil {
		for _, r := range records {
			results[r.UserID] = itemResult{err: err}
		}
		return results
	}
	for _, o := range outcomes {
		results[o.UserID] = itemResult{outcome: o}
	}
	return results
}

// callDirectory makes the change in the directory. On a retry it first reads
// the user's licenses and applies only what is still missing, so a change
// that landed before a crash is not made twice.
func (w *Worker) callDirectory(ctx, attempt context.Context, dir provider.Directory, plan *storage.Plan, it storage.ExternalItem) error {
	tenant := plan.Directory.TenantID
	add, remove, update := it.Add, it.Remove, it.Update
	if retried, _ := asynq.GetRetryCount(attempt); retried > 0 || it.Resumed {
		var err error
		if add, remove, update, err = w.stillToDo(ctx, dir, tenant, it); err != nil {
			return err
		}
	}
	if it.Location != "" {
		if _, err := w.timedCall("set_usage_location", func() ([]string, error) {
			return nil, dir.SetUsageLocation(ctx, tenant, it.UserID, it.Location)
		}); err != nil {
			return err
		}
	}
	// A held SKU added again with its plans is Graph's update of them; a
	// license held only through a group that the change assigns gets a
	// direct assignment on top (AddDirect).
	add = licensing.Dedupe(slices.Concat(add, update, it.AddDirect))
	remove = append(slices.Clone(remove), it.RemoveDirect...)
	err := w.assignLicense(ctx, dir, tenant, it.UserID, add, remove, it.DisabledPlans)
	var pe *provider.Error
	if it.Resumed && len(it.RemoveDirect) > 0 && errors.As(err, &pe) && pe.Code == licensing.CodeInheritedFromGroup {
		// The direct assignment went before the crash; what is left is
		// inherited, which is what the item wants.
		remove = slices.DeleteFunc(remove, func(s string) bool { return slices.Contains(it.RemoveDirect, s) })
		err = w.assignLicense(ctx, dir, tenant, it.UserID, add, remove, it.DisabledPlans)
	}
	return err
}

// assignLicense makes one assignLicense call, each added SKU with its
// disabled plans (by SKU); none when there is nothing to change.
func (w *Worker) assignLicense(ctx context.Context, dir provider.Directory, tenant, userID string, add, remove []string, plans map[string][]string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	ch := provider.Change{UserID: userID, Remove: remove}
	for _, sku := range add {
		ch.Add = append(ch.Add, provider.AddLicense{SKU: sku, DisabledPlans: plans[sku]})
	}
	_, err := w.timedCall("assign_license", func() ([]string, error) { return nil, dir.Apply(ctx, tenant, ch) })
	return err
}

// stillToDo is what remains of an item after an earlier attempt may have
// made it: it reads the user's licenses with their plans and leaves out the
// SKUs held with the plans wanted (added, or updated) and the revoked SKUs
// no longer held. A SKU added without plans given is done once held.
func (w *Worker) stillToDo(ctx context.Context, dir provider.Directory, tenant string, it storage.ExternalItem) (add, remove, update []string, err error) {
	var held map[string][]string
	_, err = w.timedCall("user_licenses", func() ([]string, error) {
		var e error
		held, e = dir.UserDisabledPlans(ctx, tenant, it.UserID)
		return nil, e
	})
	if err != nil {
		return nil, nil, nil, err
	}
	done := func(sku string) bool {
		plans, ok := held[sku]
		if !ok {
			return false
		}
		wanted, given := it.DisabledPlans[sku]
		return !given || licensing.SameSet(plans, wanted)
	}
	add = slices.DeleteFunc(slices.Clone(it.Add), done)
	update = slices.DeleteFunc(slices.Clone(it.Update), done)
	remove = slices.DeleteFunc(slices.Clone(it.Remove), func(s string) bool { _, ok := held[s]; return !ok })
	return add, remove, update, nil
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
// while for a busy user or one waiting for a seat, else backs off exponentially with jitter from
// RetryBase up to RetryMax.
func (w *Worker) retryDelay(n int, err error, t *asynq.Task) time.Duration {
	if t.Type() == jobs.TypeWebhookDelivery {
		return w.cfg.Webhooks.retryDelay(n)
	}
	var pe *pacedError
	if errors.As(err, &pe) {
		return pe.retryIn()
	}
	if d, ok := provider.RetryAfter(err); ok && d > 0 {
		return d + time.Duration(rand.Int64N(int64(d/4)+1)) // #nosec G404 -- retry jitter, not a secret
	}
	if errors.Is(err, errUserBusy) || errors.Is(err, errWaitForSeat) {
		return w.cfg.RetryBase/2 + time.Duration(rand.Int64N(int64(w.cfg.RetryBase))) // #nosec G404 -- retry jitter, not a secret
	}
	d := min(w.cfg.RetryBase<<min(n, 20), w.cfg.RetryMax)
	return d/2 + time.Duration(rand.Int64N(int64(d))) // #nosec G404 -- retry jitter, not a secret
}
