package worker_test

import (
	"context"
	"testing"
	"time"

	"github.com/hibiken/asynq"

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

// A customer's sync task that was archived (it failed on every retry)
// keeps its TaskID, which would absorb every periodic sync after it; the
// scheduler runs it again instead.
func TestSchedulerRunsArchivedSyncAgain(t *testing.T) {
	t.Parallel()
	b := testapp.New(t, testapp.Options{})
	c := b.Client("p", "global_admin")
	c.Must(201, "POST", "/v1/customers", map[string]any{"id": "graph-one", "name": "G",
		"directory": map[string]string{"kind": "msgraph", "tenant_id": "t-1"}})
	keys, err := b.Store.ExternalDirectoryCustomers(context.Background())
	if err != nil || len(keys) != 1 {
		t.Fatalf("customers on external directories: %v (%v)", keys, err)
	}
	info, err := asynq.NewClientFromRedisClient(b.Redis).Enqueue(jobs.NewSyncTask(keys[0]), asynq.ProcessIn(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	insp := asynq.NewInspectorFromRedisClient(b.Redis)
	if err := insp.ArchiveTask(info.Queue, info.ID); err != nil {
		t.Fatal(err)
	}
	s, err := worker.NewScheduler(worker.SchedulerConfig{SyncInterval: time.Hour, DirectorySyncEvery: time.Second, Logger: b.Log}, b.Store, b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	// No worker runs here, so the task stays pending once it is run again.
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, err := insp.GetTaskInfo(info.Queue, info.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == asynq.TaskStatePending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 60 s of periodic syncs every second the customer's sync task is still %v", got.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
