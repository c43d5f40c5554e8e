package worker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/provider"
	"github.com/licenseops/licenseops/storage"
)

// A failed license task logs its task, operation, customer and user IDs;
// a throttled one, expected by the thousand in a throttled rollout, only
// at debug level.
func TestFailedTaskLogLines(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w := &Worker{
		log:     slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})),
		plans:   newPlanCache(nil, 4),
		metrics: m,
	}
	w.plans.plans["op-1"] = &storage.Plan{ID: "op-1", CustomerID: "contoso"}
	task := jobs.NewApplyTask("op-1", "user-7", jobs.QueueDefault)
	for _, c := range []struct {
		err       error
		wantLevel string
	}{
		{errors.New("connection refused"), "WARN"},
		{&provider.Error{Kind: provider.Transient, Code: "ProviderError", Message: "HTTP 503"}, "WARN"},
		{&provider.Error{Kind: provider.Throttled, Code: "ProviderThrottled", Message: "too many requests"}, "DEBUG"},
	} {
		buf.Reset()
		_ = w.observer(asynq.HandlerFunc(func(context.Context, *asynq.Task) error { return c.err })).ProcessTask(context.Background(), task)
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%v: log %q: %v", c.err, buf.String(), err)
		}
		if line["level"] != c.wantLevel {
			t.Errorf("%v: level %v, want %s", c.err, line["level"], c.wantLevel)
		}
		for k, want := range map[string]string{"operation_id": "op-1", "customer_id": "contoso", "user_id": "user-7", "task_id": ""} {
			if got, ok := line[k]; !ok || (want != "" && got != want) {
				t.Errorf("%v: %s = %v, want %q in %s", c.err, k, got, want, buf.String())
			}
		}
	}
}
