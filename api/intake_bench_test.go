package api_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
)

// BenchmarkIntake100k measures POST → 202 of a 100,000-user operation
// (validation, unknown-user check, seat grants, one item per user).
func BenchmarkIntake100k(b *testing.B) {
	const n = 100_000
	bundle := testapp.New(b, testapp.Options{})
	c := bundle.Client("bench", "global_admin")
	c.Must(200, "PUT", "/v1/products/E5", map[string]any{"name": "E5"})
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "big", "name": "big", "default_usage_location": "US"})
	users := make([]map[string]any, n)
	ids := make([]string, n)
	for i := range users {
		ids[i] = fmt.Sprintf("2f1c8a3e-0000-4000-8000-%012d", i)
		users[i] = map[string]any{"id": ids[i], "user_principal_name": fmt.Sprintf("u%d@example.com", i), "display_name": fmt.Sprintf("User %d", i)}
	}
	start := time.Now()
	c.Must(200, "POST", "/v1/customers/big/users/import", map[string]any{"users": users})
	b.ReportMetric(time.Since(start).Seconds(), "import_s")
	c.Must(200, "PUT", "/v1/customers/big/subscriptions/E5", map[string]int{"total": 100 * n})
	b.ResetTimer()
	for b.Loop() {
		c.Must(http.StatusAccepted, "POST", "/v1/customers/big/license-operations", map[string]any{"user_ids": ids, "assign": []string{"E5"}})
	}
}
