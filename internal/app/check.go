package app

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
)

// Check runs the database invariants and, for customers on an external
// directory this process can reach, compares Postgres with the directory.
func Check(ctx context.Context, store *storage.Store, cfg Config, partnerID, customerID, operationID string) ([]storage.Problem, error) {
	scope := storage.CheckScope{OperationID: operationID}
	var customers []licensing.Customer
	if customerID != "" {
		pk, err := store.PartnerKey(ctx, partnerID)
		if err != nil {
			return nil, err
		}
		c, err := store.GetCustomer(ctx, pk, customerID)
		if err != nil {
			return nil, err
		}
		scope.CustomerKey, customers = c.Key, []licensing.Customer{c}
	}
	problems, err := store.Check(ctx, scope)
	if err != nil {
		return nil, err
	}
	dirs, _, err := directories(cfg, slog.New(slog.DiscardHandler), nil)
	if err != nil || len(dirs) == 0 {
		return problems, err
	}
	if customers == nil {
		keys, err := store.ExternalDirectoryCustomers(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			c, err := store.CustomerByKey(ctx, k)
			if err != nil {
				return nil, err
			}
			customers = append(customers, c)
		}
	}
	for _, c := range customers {
		dir := dirs[c.Directory.Kind]
		if dir == nil {
			continue
		}
		p, err := compareDirectory(ctx, store, dir, c)
		if err != nil {
			return nil, err
		}
		problems = append(problems, p...)
	}
	return problems, nil
}

// compareDirectory reports users whose licenses differ between the
// directory and the mirror in Postgres (users with a change in flight are
// skipped: they differ by design until it is recorded).
func compareDirectory(ctx context.Context, store *storage.Store, dir provider.Directory, c licensing.Customer) ([]storage.Problem, error) {
	mirror, err := store.MirroredLicenses(ctx, c.Key)
	if err != nil {
		return nil, err
	}
	mirrorSources, err := store.MirroredSources(ctx, c.Key)
	if err != nil {
		return nil, err
	}
	var problems []storage.Problem
	err = dir.ListUsers(ctx, c.Directory.TenantID, func(page []provider.User) error {
		for _, u := range page {
			held := slices.Sorted(slices.Values(u.Licenses))
			if !slices.Equal(held, mirror[u.ID]) && (len(held) > 0 || len(mirror[u.ID]) > 0) && len(problems) < 50 {
				problems = append(problems, storage.Problem{Invariant: "Postgres disagrees with the directory",
					Detail: fmt.Sprintf("%s user %s: directory %v, Postgres %v", c.ID, u.ID, held, mirror[u.ID])})
			}
			// Only users whose licenses agree: the others are reported
			// above, or have a change in flight (left out of the mirror).
			if len(held) > 0 && slices.Equal(held, mirror[u.ID]) && len(problems) < 50 {
				if d := sourcesDiffer(u, mirrorSources[u.ID]); d != "" {
					problems = append(problems, storage.Problem{Invariant: "Postgres disagrees with the directory about group licenses",
						Detail: fmt.Sprintf("%s user %s: %s", c.ID, u.ID, d)})
				}
			}
		}
		return nil
	})
	return problems, err
}

// sourcesDiffer compares how the directory and the mirror say a user holds
// its group-inherited licenses; "" when they agree.
func sourcesDiffer(u provider.User, mirror map[string]licensing.LicenseSource) string {
	dir, _ := u.Sources()
	for _, sku := range u.Licenses {
		d, m := dir[sku], mirror[sku]
		if d.Inherited() != m.Inherited() || (d.Inherited() && (d.Direct != m.Direct || !slices.Equal(d.InheritedFrom, m.InheritedFrom))) {
			return fmt.Sprintf("%s: directory direct %t from %v, Postgres direct %t from %v", sku, d.Direct || !d.Inherited(), d.InheritedFrom,
				m.Direct || !m.Inherited(), m.InheritedFrom)
		}
	}
	return ""
}
