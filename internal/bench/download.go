package bench

// The report download scenario: the api's memory while clients download
// the report of a large operation at once, which must stream.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/licenseops/licenseops/client"
	"github.com/licenseops/licenseops/internal/stack"
)

// benchDownloaders download the report at once.
const benchDownloaders = 5

type benchDownload struct {
	Users       int    `json:"users"`
	Clients     int    `json:"clients"`
	OperationID string `json:"operation_id"`
	// JSON and CSV are the downloads in each format, each from a fresh api.
	JSON  *benchDownloadRun `json:"json,omitempty"`
	CSV   *benchDownloadRun `json:"csv,omitempty"`
	SeedS float64           `json:"seed_s"`
}

type benchDownloadRun struct {
	Format string `json:"format"`
	// Seconds is from the first request to the last report read.
	Seconds float64 `json:"seconds"`
	// Rows and Bytes are of one report (every client got the same);
	// Bytes is counted for CSV only.
	Rows  int   `json:"rows"`
	Bytes int64 `json:"bytes"`
	// APIRSSBeforeMiB is the api's resident memory before the downloads,
	// APIPeakRSSMiB its peak (VmHWM) after them.
	APIRSSBeforeMiB float64       `json:"api_rss_before_mib"`
	APIPeakRSSMiB   float64       `json:"api_peak_rss_mib"`
	CPU             benchCPUUsage `json:"cpu"`
}

// runReport seeds a customer and assigns a SKU to all its users (untimed),
// then has the clients download the operation's report at once from a
// fresh api, as JSON, then as CSV from another.
func (r *benchRunner) runReport(ctx context.Context) error {
	n := r.o.Users
	customer := "bench-" + r.runID + "-report"
	users := benchUserIDs(0, n)
	d := &benchDownload{Users: n, Clients: benchDownloaders}
	r.rep.Download = d
	measure := func(format string, into **benchDownloadRun) benchMeasure {
		return benchMeasure{Workers: 1, Measure: func(s *benchStack) error {
			c := r.client(s.url)
			if d.OperationID == "" {
				page, err := c.ListOperations(ctx, customer, client.ListOptions{})
				if err != nil {
					return err
				}
				if len(page.Operations) != 1 {
					return fmt.Errorf("customer %s has %d operations, want 1", customer, len(page.Operations))
				}
				d.OperationID = page.Operations[0].ID
			}
			r.progress("(report) %d clients download the report of %d users as %s at once", benchDownloaders, n, format)
			run, err := r.downloadReports(ctx, s, c, d.OperationID, format)
			*into = run
			if err == nil && run.Rows != n {
				err = fmt.Errorf("the %s report has %d rows, want %d", format, run.Rows, n)
			}
			return err
		}}
	}
	r.progress("(report) seeding customer %s: %d users, then assigning them a SKU (untimed)", customer, n)
	return r.scenarioRuns(ctx, "report", nil,
		func(s *benchStack, c *client.Client) error {
			var err error
			d.SeedS, err = benchTimed(func() error {
				if err := seedTenant(ctx, c, client.CustomerRequest{ID: customer, Name: "Bench report", DefaultUsageLocation: new("US")},
					users, map[string]int{"BENCH_RP": n}); err != nil {
					return err
				}
				return r.submitAndFinish(ctx, s, c, customer, client.OperationRequest{UserIDs: users, Assign: []string{"BENCH_RP"}})
			})
			return err
		},
		measure("json", &d.JSON), measure("csv", &d.CSV))
}

// downloadReports has benchDownloaders clients read the report of
// operation id at once, in format (json or csv), and measures the api.
func (r *benchRunner) downloadReports(ctx context.Context, s *benchStack, c *client.Client, id, format string) (*benchDownloadRun, error) {
	run := &benchDownloadRun{Format: format}
	before, err := stack.StatusKB(s.api.Pid(), "VmRSS:")
	if err != nil {
		return nil, err
	}
	run.APIRSSBeforeMiB = benchMiB(before)
	type result struct {
		rows  int
		bytes int64
		err   error
	}
	results := make([]result, benchDownloaders)
	var wg sync.WaitGroup
	window := s.window()
	start := time.Now()
	for i := range results {
		wg.Go(func() {
			res := &results[i]
			if format == "csv" {
				cw := &benchLineCounter{}
				res.err = c.ReportCSV(ctx, id, cw)
				res.rows, res.bytes = cw.lines-1, cw.bytes // less the header
				return
			}
			_, res.err = c.Report(ctx, id, func(client.ReportRow) error {
				res.rows++
				return nil
			})
		})
	}
	wg.Wait()
	run.Seconds = time.Since(start).Seconds()
	run.CPU = window.stop()
	var errs []error
	for i, res := range results {
		if res.err != nil {
			errs = append(errs, fmt.Errorf("client %d: %w", i+1, res.err))
			continue
		}
		if i > 0 && res.rows != results[0].rows {
			errs = append(errs, fmt.Errorf("client %d read %d rows, client 1 %d", i+1, res.rows, results[0].rows))
		}
	}
	run.Rows, run.Bytes = results[0].rows, results[0].bytes
	peak, err := s.api.PeakRSS()
	if err != nil {
		errs = append(errs, err)
	}
	run.APIPeakRSSMiB = benchMiB(peak)
	r.progress("(report) %s: %d × %d rows in %.1fs; api RSS %.0f MiB before, peak %.0f MiB", format, benchDownloaders, run.Rows, run.Seconds, run.APIRSSBeforeMiB, run.APIPeakRSSMiB)
	return run, errors.Join(errs...)
}

// benchLineCounter counts the bytes and lines written to it.
type benchLineCounter struct {
	bytes int64
	lines int
}

func (w *benchLineCounter) Write(p []byte) (int, error) {
	w.bytes += int64(len(p))
	w.lines += bytes.Count(p, []byte{'\n'})
	return len(p), nil
}

func (r *benchRunner) targetsReport() {
	d := r.rep.Download
	if d == nil {
		return
	}
	for _, run := range []*benchDownloadRun{d.JSON, d.CSV} {
		if run != nil {
			r.addTarget("report."+run.Format+"_rss", "api peak RSS ("+run.Format+")", run.APIPeakRSSMiB, "MiB", fmt.Sprintf("≤ %d MiB", benchRSSLimitMiB),
				run.APIPeakRSSMiB <= benchRSSLimitMiB, benchJudge{AtScale: d.Users >= benchTargetUsers})
		}
	}
}

func (r *benchRunner) tableReport(t *benchTable) {
	d := r.rep.Download
	title := fmt.Sprintf("(report) %d clients download", benchDownloaders)
	if t.failed("report", title) || d == nil {
		return
	}
	sub := []string{title, fmt.Sprintf("    the report of %s users", benchInt(d.Users))}
	i := 0
	for _, run := range []*benchDownloadRun{d.JSON, d.CSV} {
		if run == nil {
			continue
		}
		scenario := func() string {
			if i < len(sub) {
				i++
				return sub[i-1]
			}
			return ""
		}
		size := fmt.Sprintf("%d reports", benchDownloaders)
		if run.Bytes > 0 {
			size = fmt.Sprintf("%d × %.1f MiB", benchDownloaders, benchMiB(run.Bytes))
		}
		t.row(scenario(), fmt.Sprintf("%s: %s, first request to last row", run.Format, size), benchSecs(run.Seconds), "")
		t.row(scenario(), fmt.Sprintf("%s: api peak RSS (%.0f MiB before)", run.Format, run.APIRSSBeforeMiB), fmt.Sprintf("%.0f MiB", run.APIPeakRSSMiB), "report."+run.Format+"_rss")
	}
}
