package dashboards_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/worker"
)

// Every metric the Grafana dashboards and the alert rules name is one the
// api or a worker exports: collected from the registries of a real api and
// worker after a small rollout (histogram series and the queue collector's
// asynq_* included). A renamed metric fails here instead of leaving an
// empty panel or an alert that can never fire.
func TestDashboardsUseExportedMetrics(t *testing.T) {
	t.Parallel()
	s := newStack(t)
	p := s.newWorker(t, worker.Config{})
	p.start(t)
	c := s.b.Client("p", "global_admin")
	ids := seed(t, c.Client, "names", 150, "E5", 100)
	big := start(t, c.Client, "names", client.OperationRequest{UserIDs: ids, Assign: []string{"E5"}, AllowPartial: true})
	small := start(t, c.Client, "names", client.OperationRequest{UserIDs: ids[:2], Revoke: []string{"E5"}})
	c.WaitOperation(big, 60*time.Second)
	c.WaitOperation(small, 60*time.Second)
	waitUntil(t, "the sweeper's backlog gauges", func() bool {
		_, ok := scrape(t, p.metrics).sum("licenseops_items_pending", nil)
		return ok
	})

	exported := exportedNames(t, s.apiReg, p.reg)
	// Series Prometheus makes itself for every target and every alert.
	for _, n := range []string{"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"} {
		exported[n] = true
	}

	used := map[string][]string{} // metric name → where it is used
	dashboards, err := filepath.Glob("grafana/dashboards/*.json")
	if err != nil || len(dashboards) == 0 {
		t.Fatalf("no dashboards found: %v", err)
	}
	for _, file := range dashboards {
		for _, q := range dashboardExprs(t, file) {
			for _, n := range metricNames(q.expr) {
				used[n] = append(used[n], q.where)
			}
		}
	}
	alerts := alertExprs(t, "alerts.yml")
	for alert, expr := range alerts {
		for _, n := range metricNames(expr) {
			used[n] = append(used[n], "alerts.yml: "+alert)
		}
	}
	if len(used) < 10 {
		t.Fatalf("found only %d metric names in the dashboards and alerts: %v", len(used), used)
	}
	var unknown []string
	for n, where := range used {
		if !exported[n] {
			slices.Sort(where)
			unknown = append(unknown, fmt.Sprintf("%s (in %s)", n, strings.Join(slices.Compact(where), "; ")))
		}
	}
	slices.Sort(unknown)
	if len(unknown) > 0 {
		t.Errorf("the dashboards and alerts use %d metrics nobody exports:\n  %s\nexported:\n  %s",
			len(unknown), strings.Join(unknown, "\n  "), strings.Join(sortedKeys(exported), "\n  "))
	}
}

// query is a PromQL expression of a dashboard and the panel it is in.
type query struct{ where, expr string }

// dashboardExprs returns every PromQL expression of a Grafana dashboard:
// panel targets, panels nested in rows, and templating queries.
func dashboardExprs(t *testing.T, file string) []query {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []query
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = filepath.Base(file) + ": " + title
			}
			for k, child := range v {
				switch s, isString := child.(string); {
				case isString && k == "expr":
					out = append(out, query{where, s})
				case isString && (k == "query" || k == "definition") && strings.Contains(s, "("):
					out = append(out, query{where, labelValuesMetric.ReplaceAllString(s, "$1")})
				default:
					walk(child, where)
				}
			}
		case []any:
			for _, child := range v {
				walk(child, where)
			}
		}
	}
	walk(doc, filepath.Base(file))
	if len(out) == 0 {
		t.Fatalf("%s has no PromQL expressions", file)
	}
	return out
}

// labelValuesMetric keeps the metric of a Grafana label_values(metric, label) query.
var labelValuesMetric = regexp.MustCompile(`label_values\(\s*([^,)]*)(?:,[^)]*)?\)`)

// alertExprs reads the expr of every rule of a Prometheus rules file (inline
// or as a | or > block), without a YAML library: the module has none.
func alertExprs(t *testing.T, file string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	ruleStart := regexp.MustCompile(`^\s*- (alert|record):\s*(\S+)`)
	exprLine := regexp.MustCompile(`^(\s*)expr:\s*(.*)$`)
	out := map[string]string{}
	rules, name := 0, ""
	lines := strings.Split(string(raw), "\n")
	for i := 0; i < len(lines); i++ {
		if m := ruleStart.FindStringSubmatch(lines[i]); m != nil {
			rules, name = rules+1, m[2]
			continue
		}
		m := exprLine.FindStringSubmatch(lines[i])
		if m == nil || name == "" {
			continue
		}
		expr := strings.TrimSpace(m[2])
		if strings.HasPrefix(expr, "|") || strings.HasPrefix(expr, ">") {
			var block []string
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || indent(lines[i+1]) > len(m[1])) {
				i++
				block = append(block, strings.TrimSpace(lines[i]))
			}
			expr = strings.Join(block, " ")
		} else if len(expr) > 1 && (expr[0] == '"' || expr[0] == '\'') {
			expr = expr[1 : len(expr)-1]
		}
		out[name] = expr
	}
	if rules == 0 || len(out) != rules {
		t.Fatalf("%s: read the expr of %d of %d rules: %v", file, len(out), rules, out)
	}
	return out
}

func indent(s string) int { return len(s) - len(strings.TrimLeft(s, " ")) }

var (
	promqlStrings  = regexp.MustCompile("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")
	grafanaVars    = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	labelMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	rangeSelectors = regexp.MustCompile(`\[[^\]]*\]`)
	groupings      = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	identifier     = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)
	promqlKeywords = map[string]bool{
		"sum": true, "min": true, "max": true, "avg": true, "group": true, "stddev": true, "stdvar": true,
		"count": true, "count_values": true, "bottomk": true, "topk": true, "quantile": true, "limitk": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true,
	}
)

// metricNames returns the metric names a PromQL expression selects: what is
// left after removing strings, Grafana variables, label matchers, ranges,
// grouping clauses, functions (followed by a parenthesis) and keywords.
func metricNames(expr string) []string {
	e := promqlStrings.ReplaceAllString(expr, `""`)
	e = grafanaVars.ReplaceAllString(e, "")
	e = labelMatchers.ReplaceAllString(e, "")
	e = rangeSelectors.ReplaceAllString(e, "")
	e = groupings.ReplaceAllString(e, "")
	var names []string
	for _, loc := range identifier.FindAllStringIndex(e, -1) {
		word := e[loc[0]:loc[1]]
		if promqlKeywords[strings.ToLower(word)] {
			continue
		}
		if loc[0] > 0 && (e[loc[0]-1] >= '0' && e[loc[0]-1] <= '9' || e[loc[0]-1] == '.') {
			continue // a unit or exponent: 5m, 1e3
		}
		if rest := strings.TrimLeft(e[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function
		}
		names = append(names, word)
	}
	return names
}

func TestMetricNamesOfPromQL(t *testing.T) {
	t.Parallel()
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (le, route) (rate(licenseops_http_request_duration_seconds_bucket[5m])))`:      {"licenseops_http_request_duration_seconds_bucket"},
		`sum(rate(a_total{code=~"5.."}[5m])) / sum(rate(a_total[5m])) > 0.2 and on() sum(increase(b_total[10m])) >= 20`: {"a_total", "a_total", "b_total"},
		`max(x) > 1800 unless on() sum(increase(y[15m] offset 1h)) > 0`:                                                 {"x", "y"},
		`absent(licenseops_operations_unfinished)`:                                                                      {"licenseops_operations_unfinished"},
		`sum by (queue, state) (asynq_queue_tasks{state=~"pending|active"}) * 60 + 1e3`:                                 {"asynq_queue_tasks"},
		`rate(m[$__rate_interval]) or vector(0) or up{job="$job"}`:                                                      {"m", "up"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%s) = %q, want %q", expr, got, want)
		}
	}
	if got := metricNames(labelValuesMetric.ReplaceAllString(`label_values(asynq_queue_size, queue)`, "$1")); !slices.Equal(got, []string{"asynq_queue_size"}) {
		t.Errorf("label_values query: %q", got)
	}
}
