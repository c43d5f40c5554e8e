package stack_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/stack"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/storage"
)

func TestMain(m *testing.M) { testenv.Run(m) }

func start(t *testing.T, o stack.Options) *stack.Stack {
	t.Helper()
	o.DatabaseURL, o.RedisURL = testenv.Postgres(t, storage.MigrateURL), testenv.Redis(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := stack.Start(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range s.Procs() {
				t.Logf("--- %s (%s):\n%s", p.Name, p.State(), p.Tail(30))
			}
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

// rollout assigns E5 to two users and waits for the operation to finish.
func rollout(t *testing.T, c *client.Client) client.Operation {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	acc, err := c.CreateOperation(ctx, "c1", client.OperationRequest{UserIDs: []string{"a", "b"}, Assign: []string{"E5"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	op, err := c.WaitOperation(ctx, acc.ID, client.WaitOptions{Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return op
}

func setup(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	_, err := c.PutProduct(ctx, "E5", client.ProductRequest{Name: "E5"})
	if err == nil {
		_, err = c.CreateCustomer(ctx, client.CustomerRequest{ID: "c1", Name: "C1", DefaultUsageLocation: new("US")})
	}
	if err == nil {
		_, err = c.ImportUsers(ctx, "c1", []client.UserImport{{ID: "a", UserPrincipalName: "a@x"}, {ID: "b", UserPrincipalName: "b@x"}})
	}
	if err == nil {
		_, err = c.PutSubscription(ctx, "c1", "E5", 5)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// In process: the api and a worker in this process, the token working.
func TestInProcess(t *testing.T) {
	t.Parallel()
	s := start(t, stack.Options{InProcess: true})
	if s.App == nil || s.URL == "" || s.Token == "" {
		t.Fatalf("stack = %+v, want an app with an api URL and a token", s)
	}
	c := s.Client()
	setup(t, c)
	if op := rollout(t, c); op.Succeeded != 2 {
		t.Fatalf("operation = %+v", op)
	}
}

// As processes: a worker and an api of the built binary; a killed worker
// is replaced by Restart, and a short command runs with the stack's
// settings.
func TestProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary and starts processes")
	}
	exe := filepath.Join(t.TempDir(), "licenseops")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := stack.Build(ctx, exe, "github.com/licenseops/licenseops/cmd/licenseops"); err != nil {
		t.Fatal(err)
	}
	s := start(t, stack.Options{Exe: exe, Env: []string{"LICENSEOPS_SWEEP_INTERVAL=100ms"}})
	w, err := s.StartWorker(ctx)
	if err != nil {
		t.Fatal(err)
	}
	api, err := s.StartAPI(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.URL != api.URL || !strings.HasPrefix(w.URL, "http://127.0.0.1:") {
		t.Fatalf("api %s, stack URL %s, worker metrics %s", api.URL, s.URL, w.URL)
	}
	if rss, err := w.PeakRSS(); err != nil || rss <= 0 {
		t.Fatalf("worker peak RSS %d, %v", rss, err)
	}
	c := s.Client()
	setup(t, c)
	w.Kill()
	if !w.Exited() || w.Err() == nil {
		t.Fatalf("killed worker: exited %v, err %v", w.Exited(), w.Err())
	}
	if _, err := s.Restart(ctx, w); err != nil {
		t.Fatal(err)
	}
	if op := rollout(t, c); op.Succeeded != 2 {
		t.Fatalf("operation = %+v", op)
	}
	res, err := s.Run(ctx, nil, "check")
	if err != nil || res.Code != 0 || !strings.Contains(res.Stdout, "ok: every invariant holds") {
		t.Fatalf("check: %v %+v", err, res)
	}
	if err := s.StopProcesses(); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Procs()); n != 3 {
		t.Fatalf("%d processes, want the api and two workers", n)
	}
}
