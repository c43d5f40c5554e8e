package worker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
)

// handleSync imports a customer's users and subscriptions from its external
// directory, page by page, then mirrors them in Postgres in one transaction,
// so that summaries and seat checks match the directory.
//
// A customer with operations running cannot be synced (storage refuses
// the snapshot); the sync then waits for them, however long they run: it
// queues itself again for later and finishes. Returning an error instead
// would spend the task's retries, which are for failures of the directory
// or the database, and archive the sync in the middle of a long rollout.
func (w *Worker) handleSync(ctx context.Context, t *asynq.Task) error {
	p, err := jobs.ParseSyncPayload(t.Payload())
	if err != nil {
		return fmt.Errorf("%w: %v", asynq.SkipRetry, err)
	}
	c, err := w.store.CustomerByKey(ctx, p.CustomerKey)
	if licensing.ErrorCode(err) == licensing.CodeNotFound {
		return nil // deleted since
	}
	if err != nil {
		return err
	}
	dir := w.cfg.Directories[c.Directory.Kind]
	if dir == nil {
		return fmt.Errorf("%w: customer %s uses directory %q, which has nothing to sync or is not configured", asynq.SkipRetry, c.ID, c.Directory.Kind)
	}
	// Checked first so that a waiting sync does not list a whole tenant
	// from Graph every SyncWait, competing with the rollout it waits for.
	busy, err := w.store.CustomerBusy(ctx, c.Key)
	if err != nil {
		return err
	}
	if busy {
		return w.deferSync(ctx, c)
	}
	tenant := c.Directory.TenantID
	skus, err := dir.SubscribedSKUs(ctx, tenant)
	if err != nil {
		return err
	}
	var users []storage.DirectoryUser
	err = dir.ListUsers(ctx, tenant, func(page []provider.User) error {
		for _, u := range page {
			sources, errs := u.Sources()
			users = append(users, storage.DirectoryUser{ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName,
				UsageLocation: u.UsageLocation, AccountEnabled: u.AccountEnabled, LastSignInAt: u.LastSignInAt, Licenses: u.Licenses,
				DisabledPlans: u.DisabledPlans, Sources: sources, LicenseErrors: errs})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := w.syncGroupNames(ctx, c, dir, users); err != nil {
		return err
	}
	dskus := make([]storage.DirectorySKU, len(skus))
	for i, s := range skus {
		dskus[i] = storage.DirectorySKU{SKU: s.SKU, Enabled: s.Enabled, PartNumber: s.PartNumber}
		for _, sp := range s.ServicePlans {
			dskus[i].ServicePlans = append(dskus[i].ServicePlans, licensing.ServicePlan{ID: sp.ID, Name: sp.Name})
		}
	}
	res, err := w.store.ApplyDirectorySync(ctx, c.Key, users, dskus)
	if errors.Is(err, storage.ErrCustomerBusy) {
		return w.deferSync(ctx, c) // an operation started while the directory was read
	}
	if err != nil {
		return err
	}
	w.log.Info("directory synced", "customer_id", c.ID, "users_created", res.Created, "users_updated", res.Updated, "subscriptions", res.Subscriptions)
	return nil
}

// syncGroupNames records the names of the groups the users inherit
// licenses from (or failed to), when the directory can name them. Names
// are for people only: a directory that refuses (Graph without a
// permission to read groups) leaves the groups shown by ID, and the sync
// goes on.
func (w *Worker) syncGroupNames(ctx context.Context, c licensing.Customer, dir provider.Directory, users []storage.DirectoryUser) error {
	namer, ok := dir.(provider.GroupNamer)
	if !ok {
		return nil
	}
	seen := map[string]bool{}
	var ids []string
	add := func(id string) {
		if id != "" && !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, u := range users {
		for _, src := range u.Sources {
			for _, g := range src.InheritedFrom {
				add(g)
			}
		}
		for _, e := range u.LicenseErrors {
			add(e.GroupID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	names, err := namer.GroupNames(ctx, c.Directory.TenantID, ids)
	if err != nil {
		w.log.Warn("directory sync: group names not read; groups are shown by ID", "customer_id", c.ID, "groups", len(ids), "error", err)
		return nil
	}
	return w.store.SaveGroupNames(ctx, c.Key, names)
}

// deferSync queues the customer's sync again for the next multiple of
// jobs.SyncWait, and lets the running task finish. Every sync of the
// customer that waits in the same interval becomes one task (same TaskID),
// so requests made while a rollout runs do not pile up.
func (w *Worker) deferSync(ctx context.Context, c licensing.Customer) error {
	own, _ := asynq.GetTaskID(ctx)
	at := nextSyncSlot(time.Now(), c.Key, own)
	_, err := w.client.EnqueueContext(ctx, jobs.NewDeferredSyncTask(c.Key, at))
	if err != nil && !errors.Is(err, asynq.ErrTaskIDConflict) {
		// Redis refused: this task stays and is retried, which spends a
		// retry as any failure to reach Redis does.
		return fmt.Errorf("customer %s is busy and its sync could not be queued for later: %w", c.ID, err)
	}
	w.log.Info("customer has operations running; directory sync waits", "customer_id", c.ID, "task_id", own, "runs_at", at)
	return nil
}

// nextSyncSlot is the first multiple of jobs.SyncWait after now, or the one
// after it when that is the running task itself: a task run early (by hand
// in asynqmon, or by a worker whose clock is behind) must not try to queue
// its own TaskID, which is taken until it finishes.
func nextSyncSlot(now time.Time, customerKey int64, ownTaskID string) time.Time {
	at := now.Truncate(jobs.SyncWait).Add(jobs.SyncWait)
	if jobs.DeferredSyncTaskID(customerKey, at) == ownTaskID {
		at = at.Add(jobs.SyncWait)
	}
	return at
}
