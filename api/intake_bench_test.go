package api_test

import (
	"net/http"
	"testing"

	"github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
)

// BenchmarkIntake100k measures POST → 202 of a 100,000-user operation
// (validation, unknown-user check, seat grants, one item per user).
func BenchmarkIntake100k(b *testing.B) {
	const n = 100_000
	bundle := testapp.New(b, testapp.Options{})
	c := bundle.Client("bench", "global_admin")
	tn := seed.OneSKU("big", n, "E5", 100*n)
	tn.Users = seed.Users(seed.IDs("2f1c8a3e-0000-4000-8000-%012d", n))
	ids := c.Seed(tn)
	b.ResetTimer()
	for b.Loop() {
		c.Must(http.StatusAccepted, "POST", "/v1/customers/big/license-operations", map[string]any{"user_ids": ids, "assign": []string{"E5"}})
	}
}
