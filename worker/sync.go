package worker

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
)

// handleSync imports a customer's users and subscriptions from its external
// directory, page by page, then mirrors them in Postgres in one transaction,
// so that summaries and seat checks match the directory.
func (w *Worker) handleSync(ctx context.Context, t *asynq.Task) error {
	var p jobs.SyncPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("%w: decode sync payload: %v", asynq.SkipRetry, err)
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
	tenant := c.Directory.TenantID
	skus, err := dir.SubscribedSKUs(ctx, tenant)
	if err != nil {
		return err
	}
	var users []storage.DirectoryUser
	err = dir.ListUsers(ctx, tenant, func(page []provider.User) error {
		for _, u := range page {
			users = append(users, storage.DirectoryUser{ID: u.ID, UserPrincipalName: u.UserPrincipalName, DisplayName: u.DisplayName,
				UsageLocation: u.UsageLocation, AccountEnabled: u.AccountEnabled, LastSignInAt: u.LastSignInAt, Licenses: u.Licenses})
		}
		return nil
	})
	if err != nil {
		return err
	}
	dskus := make([]storage.DirectorySKU, len(skus))
	for i, s := range skus {
		dskus[i] = storage.DirectorySKU{SKU: s.SKU, Enabled: s.Enabled}
	}
	res, err := w.store.ApplyDirectorySync(ctx, c.Key, users, dskus)
	if err != nil {
		return err
	}
	w.log.Info("directory synced", "customer_id", c.ID, "users_created", res.Created, "users_updated", res.Updated, "subscriptions", res.Subscriptions)
	return nil
}
