package worker_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/worker"
)

// BenchmarkRollout measures a tenant-wide assign of one SKU through the API
// with in-process workers: users per second from POST to completion.
func BenchmarkRollout(b *testing.B) {
	const n = 20_000
	reg := prometheus.NewRegistry()
	bundle := testapp.New(b, testapp.Options{Workers: 1, WorkerConfig: worker.Config{Registerer: reg, Sweep: worker.SweepConfig{Interval: 50 * time.Millisecond}}})
	c := bundle.Client("bench", "global_admin")
	users := seedBench(b, c, n)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		skus := []string{"E5"}
		body := map[string]any{"user_ids": users, "assign": skus}
		if i%2 == 1 {
			body = map[string]any{"user_ids": users, "revoke": skus}
		}
		start := time.Now()
		var acc struct{ ID string }
		c.Must(http.StatusAccepted, "POST", "/v1/customers/bench/license-operations", body).JSON(b, &acc)
		c.WaitOperation(acc.ID, 5*time.Minute)
		b.ReportMetric(float64(n)/time.Since(start).Seconds(), "users/s")
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if h := mf.GetMetric()[0].GetHistogram(); h != nil && strings.Contains(mf.GetName(), "batch") {
			b.Logf("%s: count %d mean %.4f", mf.GetName(), h.GetSampleCount(), h.GetSampleSum()/float64(h.GetSampleCount()))
		}
	}
}

func seedBench(b *testing.B, c *testapp.Client, n int) []string {
	b.Helper()
	return c.Seed(seeder.OneSKU("bench", n, "E5", n))
}
