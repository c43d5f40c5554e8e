package opmetrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Two processes' parts on one registry count into one series.
func TestOperationsCreatedShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	api, err := OperationsCreated(reg)
	if err != nil {
		t.Fatal(err)
	}
	worker, err := OperationsCreated(reg)
	if err != nil {
		t.Fatalf("second registration: %v", err)
	}
	api.WithLabelValues("api", "default").Inc()
	worker.WithLabelValues("cleanup", "low").Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 1 || len(families[0].GetMetric()) != 2 {
		t.Fatalf("gathered %v, want one family with the api's and the cleanup's series", families)
	}
	for _, m := range families[0].GetMetric() {
		if v := m.GetCounter().GetValue(); v != 1 {
			t.Fatalf("series %v = %v, want 1", m.GetLabel(), v)
		}
	}
	other := prometheus.NewRegistry()
	if err := other.Register(prometheus.NewCounter(prometheus.CounterOpts{Name: "licenseops_operations_created_total", Help: "x"})); err != nil {
		t.Fatal(err)
	}
	if _, err := OperationsCreated(other); err == nil {
		t.Fatal("a different collector under the name was taken for the counter")
	}
}
