package api_test

import (
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/api"
)

// Without Redis the queue collector does not fail the api's scrape: it says
// so in licenseops_queue_metrics_up and exports no queue metrics.
func TestQueueMetricsWithoutRedis(t *testing.T) {
	t.Parallel()
	inspector := asynq.NewInspector(asynq.RedisClientOpt{Addr: "127.0.0.1:1", DialTimeout: time.Second})
	defer inspector.Close()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(api.NewQueueMetricsCollector(inspector))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather failed without Redis: %v", err)
	}
	if len(fams) != 1 || fams[0].GetName() != "licenseops_queue_metrics_up" || fams[0].GetMetric()[0].GetGauge().GetValue() != 0 {
		t.Fatalf("without Redis the collector exported %v, want licenseops_queue_metrics_up 0 alone", fams)
	}
}
