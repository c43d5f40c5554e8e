package worker_test

import (
	"testing"
	"time"

	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/worker"
)

// Customers on an external directory get a periodic sync; local ones do not.
func TestSchedulerSchedulesDirectorySyncs(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "local-one", "name": "L"})
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "graph-one", "name": "G",
		"directory": map[string]string{"kind": "msgraph", "tenant_id": "t-1"}})
	p := worker.NewPolicyConfigProvider(b.Store, 5*time.Second, b.Log).SyncDirectoriesEvery(30 * time.Minute)
	configs, err := p.GetConfigs()
	if err != nil {
		t.Fatal(err)
	}
	syncs := 0
	for _, cfg := range configs {
		if cfg.Task.Type() == jobs.TypeSyncDirectory {
			syncs++
			if cfg.Cronspec != "@every 30m0s" {
				t.Fatalf("cronspec %q", cfg.Cronspec)
			}
		}
	}
	if syncs != 1 {
		t.Fatalf("%d sync entries, want 1 (the msgraph customer only): %+v", syncs, configs)
	}
	p.SyncDirectoriesEvery(0)
	if configs, _ := p.GetConfigs(); len(configs) != 0 {
		t.Fatalf("periodic syncs off, still %d entries", len(configs))
	}
}
