package seed_test

import (
	"context"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// A tenant of one SKU, its users imported in several chunks, and a second
// SKU of seats whose product Seed defines itself.
func TestSeed(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, stack.Options{DatabaseURL: testenv.Postgres(t, storage.MigrateURL), RedisURL: testenv.Redis(t), InProcess: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := s.Client()
	tn := seed.OneSKU("contoso", 25, "E5", 20)
	tn.Products = map[string]client.ProductRequest{"E5": {Name: "Office 365 E5", ProhibitedLocations: []string{"KP"}}}
	tn.Seats["E3"] = 7
	tn.ImportChunk = 10
	ids, err := seed.Seed(ctx, c, tn)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 25 || ids[0] != "user-00000" || ids[24] != "user-00024" {
		t.Fatalf("ids = %v", ids)
	}
	if users, err := c.ListUsers(ctx, "contoso", client.UserListOptions{PageSize: 1}); err != nil || users.Total != 25 {
		t.Fatalf("users: %+v, %v", users, err)
	}
	subs, err := c.ListSubscriptions(ctx, "contoso")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, sub := range subs {
		got[sub.SKU] = sub.Total
	}
	if len(got) != 2 || got["E5"] != 20 || got["E3"] != 7 {
		t.Fatalf("subscriptions = %v", got)
	}
	products, err := c.ListProducts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	for _, p := range products {
		names[p.SKU] = p.Name
	}
	if names["E5"] != "Office 365 E5" || names["E3"] != "E3" {
		t.Fatalf("products = %v", names)
	}
	if _, err := seed.Seed(ctx, c, tn); err == nil {
		t.Fatal("seeding the same customer twice succeeded")
	}
}
