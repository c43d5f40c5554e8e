package dashboards_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/licenseops/licenseops/api"
	"github.com/licenseops/licenseops/client"
	seeder "github.com/licenseops/licenseops/internal/seed"
	"github.com/licenseops/licenseops/internal/testapp"
	"github.com/licenseops/licenseops/internal/testenv"
	"github.com/licenseops/licenseops/worker"
)

func TestMain(m *testing.M) { testenv.Run(m) }

// stack is an api and workers wired the way cmd/licenseops wires them:
// one registry per process, the api's with the queue collector, each with
// the Go and process collectors, each served on /metrics.
type stack struct {
	b          *testapp.Bundle
	apiReg     *prometheus.Registry
	apiMetrics string // URL of the api's /metrics
}

func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

func newStack(t *testing.T) *stack {
	t.Helper()
	reg := newRegistry()
	b := testapp.New(t, testapp.Options{APIConfig: api.Config{Registry: reg}})
	reg.MustRegister(api.NewQueueMetricsCollector(asynq.NewInspectorFromRedisClient(b.Redis)))
	return &stack{b: b, apiReg: reg, apiMetrics: b.API.URL() + "/metrics"}
}

// workerProcess is a worker with its own registry served on /metrics, as
// `licenseops worker` serves it on --metrics-addr.
type workerProcess struct {
	w       *worker.Worker
	reg     *prometheus.Registry
	metrics string
}

// newWorker builds a worker without starting it.
func (s *stack) newWorker(t *testing.T, cfg worker.Config) *workerProcess {
	t.Helper()
	reg := newRegistry()
	cfg.Registerer = reg
	if cfg.Logger == nil {
		cfg.Logger = s.b.Log
	}
	if cfg.Sweep.Interval == 0 {
		cfg.Sweep.Interval = 100 * time.Millisecond
	}
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 2 * time.Second
	}
	w, err := worker.New(cfg, s.b.Store, s.b.Redis)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(srv.Close)
	return &workerProcess{w: w, reg: reg, metrics: srv.URL + "/metrics"}
}

func (p *workerProcess) start(t *testing.T) {
	t.Helper()
	if err := p.w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.w.Shutdown)
}

// seed creates a customer with n users and a subscription of sku with seats seats.
func seed(t *testing.T, c *client.Client, customer string, n int, sku string, seats int) []string {
	t.Helper()
	ids, err := seeder.Seed(context.Background(), c, seeder.OneSKU(customer, n, sku, seats))
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// start creates an operation and returns its ID.
func start(t *testing.T, c *client.Client, customer string, req client.OperationRequest) string {
	t.Helper()
	acc, err := c.CreateOperation(context.Background(), customer, req, "")
	if err != nil {
		t.Fatal(err)
	}
	return acc.ID
}

// exposition is one parsed scrape.
type exposition struct {
	text     string
	families map[string]*dto.MetricFamily
}

func scrape(t *testing.T, url string) exposition {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v\n%s", url, resp.StatusCode, err, raw)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(raw)))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return exposition{text: string(raw), families: fams}
}

// sum adds the values of every series of name whose labels include want
// (a counter, gauge or untyped value; a histogram's count). ok is false when
// no series matches.
func (e exposition) sum(name string, want map[string]string) (total float64, ok bool) {
	mf := e.families[name]
	if mf == nil {
		return 0, false
	}
series:
	for _, m := range mf.GetMetric() {
		labels := map[string]string{}
		for _, lp := range m.GetLabel() {
			labels[lp.GetName()] = lp.GetValue()
		}
		for k, v := range want {
			if labels[k] != v {
				continue series
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		}
	}
	return total, ok
}

// promtoolCheck runs `promtool check metrics` on a scrape. Without promtool
// it skips locally and fails under CI=true (scripts/ensure-ops-tools.sh
// installs it).
func promtoolCheck(t *testing.T, what string, e exposition) {
	t.Helper()
	t.Run("promtool check metrics "+what, func(t *testing.T) {
		path, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("promtool is not installed and CI=true: run scripts/ensure-ops-tools.sh (Debian package prometheus)")
			}
			t.Skip("promtool is not installed; skipping `promtool check metrics` (scripts/ensure-ops-tools.sh installs it)")
		}
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(e.text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("promtool check metrics on the %s scrape: %v\n%s", what, err, out)
		}
	})
}

// exportedNames lists every series name a registry exposes, with the
// _bucket, _sum and _count series of histograms and summaries.
func exportedNames(t *testing.T, regs ...*prometheus.Registry) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	for _, reg := range regs {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range fams {
			n := mf.GetName()
			names[n] = true
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
				names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
			case dto.MetricType_SUMMARY:
				names[n+"_sum"], names[n+"_count"] = true, true
			}
		}
	}
	return names
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// waitUntil polls cond until it holds or 60 s pass.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 60s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
