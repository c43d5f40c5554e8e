// Package seed creates tenants through the licenseops HTTP API with the
// SDK (package client), as a partner would: the products of the catalog, a
// customer, its users (imported in chunks) and its seats. The demo, the
// benchmark and the tests that need a tenant all seed with it.
//
//	ids, err := seed.Seed(ctx, c, seed.OneSKU("contoso", 1000, "E5", 800))
package seed

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/licenseops/licenseops/client"
)

// Tenant is what Seed creates.
type Tenant struct {
	Customer client.CustomerRequest
	// Products are defined in the partner's catalog first (replacing
	// earlier definitions). Every SKU of Seats that has no entry gets a
	// product named after its SKU, since a subscription needs its product.
	Products map[string]client.ProductRequest
	Users    []client.UserImport
	// Seats are the customer's subscriptions: seat totals by SKU.
	Seats map[string]int
	// ImportChunk is the most users per import request (default
	// DefaultImportChunk).
	ImportChunk int
}

// DefaultImportChunk is the most users Seed imports in one request: a
// quarter of the API's limit of users per import, so that a request of
// long names stays well below its limit of bytes too.
const DefaultImportChunk = 50_000

// Seed defines the products, creates the customer, imports its users and
// sets its seats, and returns the users' IDs in order.
func Seed(ctx context.Context, c *client.Client, t Tenant) ([]string, error) {
	products := maps.Clone(t.Products)
	if products == nil {
		products = map[string]client.ProductRequest{}
	}
	for sku := range t.Seats {
		if _, ok := products[sku]; !ok {
			products[sku] = client.ProductRequest{Name: sku}
		}
	}
	for _, sku := range slices.Sorted(maps.Keys(products)) {
		if _, err := c.PutProduct(ctx, sku, products[sku]); err != nil {
			return nil, fmt.Errorf("define product %s: %w", sku, err)
		}
	}
	cid := t.Customer.ID
	if _, err := c.CreateCustomer(ctx, t.Customer); err != nil {
		return nil, fmt.Errorf("create customer %s: %w", cid, err)
	}
	chunk := t.ImportChunk
	if chunk <= 0 {
		chunk = DefaultImportChunk
	}
	for from := 0; from < len(t.Users); from += chunk {
		part := t.Users[from:min(from+chunk, len(t.Users))]
		res, err := c.ImportUsers(ctx, cid, part)
		if err != nil {
			return nil, fmt.Errorf("import users of %s: %w", cid, err)
		}
		if res.Created+res.Updated != len(part) {
			return nil, fmt.Errorf("import users of %s: %d created and %d updated of %d", cid, res.Created, res.Updated, len(part))
		}
	}
	for _, sku := range slices.Sorted(maps.Keys(t.Seats)) {
		if _, err := c.PutSubscription(ctx, cid, sku, t.Seats[sku]); err != nil {
			return nil, fmt.Errorf("set the seats of %s for %s: %w", sku, cid, err)
		}
	}
	return UserIDs(t.Users), nil
}

// OneSKU is the tenant most tests need: customer (default usage location
// US) with n users (Users of IDs("user-%05d", n)) and seats of one SKU,
// whose product has no rules.
func OneSKU(customer string, n int, sku string, seats int) Tenant {
	return Tenant{
		Customer: client.CustomerRequest{ID: customer, Name: customer, DefaultUsageLocation: new("US")},
		Users:    Users(IDs("user-%05d", n)),
		Seats:    map[string]int{sku: seats},
	}
}

// IDs returns n user IDs, fmt.Sprintf(format, i) for i from 0 to n-1.
func IDs(format string, n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf(format, i)
	}
	return ids
}

// Users returns a user for each ID: principal name ID@example.com, display
// name the ID, no usage location of its own (the customer's default
// applies), enabled.
func Users(ids []string) []client.UserImport {
	users := make([]client.UserImport, len(ids))
	for i, id := range ids {
		users[i] = client.UserImport{ID: id, UserPrincipalName: id + "@example.com", DisplayName: id}
	}
	return users
}

// UserIDs returns the IDs of users, in order.
func UserIDs(users []client.UserImport) []string {
	ids := make([]string, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	return ids
}
