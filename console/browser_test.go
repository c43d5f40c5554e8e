package console_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/hibiken/asynq"

	"github.com/licenseops/licenseops/jobs"
	"github.com/licenseops/licenseops/licensing"
)

// The browser tests drive Debian's chromium-headless-shell through the
// console as a partner agent would, finding controls by their visible labels
// and accessible names. Any console error, uncaught exception or CSP
// violation fails them, and axe-core checks every page for serious and
// critical accessibility violations. Under CI=true a missing browser or
// axe-core fails the test; elsewhere the test skips, saying why.
// LICENSEOPS_SCREENSHOTS=<folder> also writes a PNG of each page there
// (`make screenshots`).

func chromePath() string {
	for _, p := range []string{os.Getenv("LICENSEOPS_CHROME"), "/usr/bin/chromium-headless-shell",
		"/usr/lib/chromium/chromium-headless-shell", "/usr/lib/chromium/chrome-headless-shell"} {
		if p == "" {
			continue
		}
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	return ""
}

func unavailable(t *testing.T, what string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI needs it (scripts/ensure-deps.sh installs it)", what)
	}
	t.Skipf("%s; install it with `make deps` to run the browser tests", what)
}

// axeSource is axe-core's script, fetched by scripts/ensure-axe.sh.
func axeSource(t *testing.T) string {
	t.Helper()
	path := os.Getenv("LICENSEOPS_AXE_JS")
	if path == "" {
		out, err := exec.Command("../scripts/ensure-axe.sh").Output()
		if err != nil {
			unavailable(t, fmt.Sprintf("axe-core could not be fetched (scripts/ensure-axe.sh: %v)", err))
		}
		path = strings.TrimSpace(string(out))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		unavailable(t, fmt.Sprintf("axe-core is missing: %v", err))
	}
	return string(b)
}

type chrome struct {
	t       *testing.T
	ctx     context.Context
	base    string
	axe     string
	shots   string
	mu      sync.Mutex
	console []string
}

func newChrome(t *testing.T, base string) *chrome {
	t.Helper()
	path := chromePath()
	if path == "" {
		unavailable(t, "chromium-headless-shell is not installed")
	}
	axe := axeSource(t)
	// The network is closed: nothing in the browser may try to reach
	// out (background updates, sync, QUIC probes). As root, chromedp adds
	// --no-sandbox itself; as any other user the sandbox stays on.
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path),
		chromedp.WindowSize(1280, 900), chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-pings", true), chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-domain-reliability", true), chromedp.Flag("lang", "en-US"))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	c := &chrome{t: t, ctx: ctx, base: base, axe: axe, shots: os.Getenv("LICENSEOPS_SCREENSHOTS")}
	// Start the browser (with the context that lives as long as it: a
	// deadline on the first call would stop the browser), then listen to
	// its console from the first page on.
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		_, err := cdp.Call(ctx, tg, cdppage.AddScriptToEvaluateOnNewDocument, cdppage.AddScriptToEvaluateOnNewDocumentParams{
			Source: `window.__csp = []; document.addEventListener("securitypolicyviolation",
				e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
		return err
	}))
	if err != nil {
		t.Fatalf("start %s: %v", path, err)
	}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning && m.Source == "security" {
				c.mu.Lock()
				c.console = append(c.console, m.String()+" ("+m.URL+")")
				c.mu.Unlock()
			}
		}
	}()
	return c
}

// do runs steps with a deadline, failing the test on error.
func (c *chrome) do(steps ...chromedp.Action[chromedp.Void]) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		c.t.Fatalf("browser: %v\n%s", err, c.where())
	}
}

// where describes the page the browser is on, for a failure message.
func (c *chrome) where() string {
	ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.pathname + location.search + "\n" + document.documentElement.outerHTML.slice(0, 20000)`))
	if err != nil {
		return "(page unknown: " + err.Error() + ")"
	}
	return "on " + v
}

func eval[T any](c *chrome, expr string, opts ...chromedp.EvaluateOption) T {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, opts...))
	if err != nil {
		c.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds.
func (c *chrome) waitFor(cond string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		c.t.Fatalf("waiting for %s: %v\n%s", cond, err, c.where())
	}
}

// problems returns the console errors, uncaught exceptions and CSP
// violations the browser reported so far.
func (c *chrome) problems() []string {
	c.t.Helper()
	c.mu.Lock()
	out := append([]string(nil), c.console...)
	c.mu.Unlock()
	for _, v := range eval[[]string](c, `window.__csp || []`) {
		out = append(out, "CSP violation: "+v)
	}
	return out
}

// verify fails the test on console errors or CSP violations so far, and
// runs axe-core on the page: a serious or critical violation fails it.
func (c *chrome) verify(name string) {
	c.t.Helper()
	if p := c.problems(); len(p) > 0 {
		c.t.Fatalf("%s: the browser reported:\n%s", name, strings.Join(p, "\n"))
	}
	eval[chromedp.Void](c, c.axe)
	violations := eval[[]string](c, `axe.run(document, {resultTypes: ["violations"]}).then(r => r.violations
		.filter(v => v.impact === "serious" || v.impact === "critical")
		.map(v => v.impact + " " + v.id + ": " + v.help + " — " + v.nodes.map(n => n.target.join(" ")).slice(0, 5).join(", ")))`,
		chromedp.EvalAwaitPromise)
	if len(violations) > 0 {
		c.t.Errorf("%s: axe-core found:\n%s", name, strings.Join(violations, "\n"))
	}
}

// check verifies the page and, for `make screenshots`, takes its picture
// as docs/console/<name>.png.
func (c *chrome) check(name string) {
	c.t.Helper()
	c.verify(name)
	if c.shots != "" {
		c.screenshot(name)
	}
}

func (c *chrome) screenshot(name string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		c.t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(c.shots, 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.shots, name+".png"), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// axChecked is the accessibility tree's "checked" state ("true", "false",
// "mixed") of the checkbox labelled name, after checking that the tree
// names it so. (It asks for the box's own accessibility node: a call of
// DOM.getDocument would renew the node IDs behind chromedp's back.)
func (c *chrome) axChecked(name string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, 60*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.QueryAfter(byLabel(name), func(ctx context.Context, tg *chromedp.Target, nodes []*chromedp.Node) (string, error) {
		nodes[0].RLock()
		id := nodes[0].BackendNodeID
		nodes[0].RUnlock()
		res, err := cdp.Call(ctx, tg, accessibility.GetPartialAXTree, accessibility.GetPartialAXTreeParams{
			BackendNodeID: id, FetchRelatives: new(false)})
		if err != nil {
			return "", err
		}
		for _, n := range res.Nodes {
			if n.BackendDOMNodeID != id || n.Ignored {
				continue
			}
			if role, label := axString(n.Role), axString(n.Name); role != "checkbox" || label != name {
				return "", fmt.Errorf("the box labelled %q is a %q named %q in the accessibility tree", name, role, label)
			}
			for _, p := range n.Properties {
				if p.Name == accessibility.PropertyNameChecked {
					return axString(p.Value), nil
				}
			}
		}
		return "", fmt.Errorf("the box labelled %q has no checked state in the accessibility tree", name)
	}))
	if err != nil {
		c.t.Fatalf("accessibility tree: %v", err)
	}
	return v
}

func axString(v *accessibility.Value) string {
	if v == nil {
		return ""
	}
	return strings.Trim(string(v.Value), `"`)
}

// XPath selectors that find controls as a person does: by their text or
// by their label.
func byLabel(label string) string {
	return fmt.Sprintf(`//input[@id=//label[normalize-space()=%q]/@for]`, label)
}
func button(text string) string { return fmt.Sprintf(`//button[normalize-space()=%q]`, text) }
func link(text string) string   { return fmt.Sprintf(`//a[normalize-space()=%q]`, text) }
func box(name string) string    { return fmt.Sprintf(`//input[@type="checkbox"][@aria-label=%q]`, name) }

type triState struct {
	Checked, Indeterminate bool
	Aria, Act              string
}

func (c *chrome) tri(product string) triState {
	c.t.Helper()
	return eval[triState](c, fmt.Sprintf(`(() => {
		const l = [...document.querySelectorAll("label")].find(l => l.textContent.trim() === %q);
		const b = document.getElementById(l.htmlFor);
		const act = b.closest("tr").querySelector("input.act").value;
		return {Checked: b.checked, Indeterminate: b.indeterminate, Aria: b.getAttribute("aria-checked"), Act: act};
	})()`, product))
}

func TestBrowserPartnerProcedure(t *testing.T) {
	f := newFixture(t, fixtureOptions{workers: 1})
	e5 := f.holdings()
	noE5 := f.users[29] // on page 2, holds Power BI, no E5
	c := newChrome(t, f.srv.URL)
	token := f.b.Token("p", licensing.RoleGlobalAdmin)

	// Sign in.
	c.do(chromedp.Navigate(f.srv.URL+"/"), chromedp.WaitVisible(byLabel("API token")))
	c.check("sign-in")
	c.do(chromedp.SendKeys(byLabel("API token"), token), chromedp.Click(button("Sign in")),
		chromedp.WaitVisible(link("Contoso Ltd")))
	c.check("customers")

	// Users and licenses: two users on page 1, one on page 2.
	c.do(chromedp.Click(link("Contoso Ltd")), chromedp.WaitVisible(box(f.names[e5[0]])))
	c.check("users")
	c.do(chromedp.Click(box(f.names[e5[0]])))
	c.waitFor(`document.getElementById("selected-link").textContent === "Selected users (1)"`)
	c.do(chromedp.Click(box(f.names[e5[1]])))
	c.waitFor(`document.getElementById("selected-link").textContent === "Selected users (2)"`)
	c.do(chromedp.Click(link("Next")), chromedp.WaitVisible(box(f.names[noE5])))
	c.do(chromedp.Click(box(f.names[noE5])))
	c.waitFor(`document.getElementById("selected-link").textContent === "Selected users (3)"`)
	// Back on page 1 the two boxes are still ticked.
	c.do(chromedp.Click(link("First")), chromedp.WaitVisible(box(f.names[e5[0]])))
	if got := eval[int](c, `document.querySelectorAll("input.select-user:checked").length`); got != 2 {
		t.Fatalf("page 1 has %d ticked users after paging", got)
	}
	c.do(chromedp.Click(link("Selected users (3)")), chromedp.WaitVisible(box(f.names[noE5])))
	c.check("selected-users")

	// Manage licenses: the tri-state boxes.
	c.do(chromedp.Click(link("Manage licenses")), chromedp.WaitVisible(button("Preview")))
	want := map[string]triState{
		"Office 365 E5":  {Indeterminate: true, Aria: "mixed", Act: "keep"},
		"Power BI Pro":   {Checked: true, Aria: "true", Act: "keep"},
		"Project Plan 3": {Aria: "false", Act: "keep"},
	}
	for name, w := range want {
		if got := c.tri(name); got != w {
			t.Errorf("%s: %+v, want %+v", name, got, w)
		}
	}
	for name, w := range map[string]string{"Office 365 E5": "mixed", "Power BI Pro": "true", "Project Plan 3": "false"} {
		if got := c.axChecked(name); got != w {
			t.Errorf("%s is announced as checked=%q, want %q", name, got, w)
		}
	}
	// Who holds E5: the control reveals the sorted list.
	c.do(chromedp.Click(`//summary[normalize-space()="2 of 3"]`))
	holders := eval[[]string](c, `[...document.querySelectorAll("details[open] li")].map(li => li.textContent)`)
	if strings.Join(holders, ",") != f.names[e5[0]]+","+f.names[e5[1]] {
		t.Errorf("E5 holders shown: %v", holders)
	}
	// Buy more shows for E5, the one product without a free seat.
	if n := eval[int](c, `[...document.querySelectorAll("a")].filter(a => a.textContent === "Buy more").length`); n != 1 {
		t.Errorf("%d Buy more links, want 1 (E5)", n)
	}
	c.check("manage-licenses")

	// The cycle: mixed → checked (assign) → clear (revoke) → mixed (unchanged).
	e5Box := byLabel("Office 365 E5")
	steps := []triState{
		{Checked: true, Aria: "true", Act: "assign"},
		{Aria: "false", Act: "revoke"},
		{Indeterminate: true, Aria: "mixed", Act: "keep"},
		{Checked: true, Aria: "true", Act: "assign"},
	}
	for i, w := range steps {
		c.do(chromedp.Click(e5Box))
		if got := c.tri("Office 365 E5"); got != w {
			t.Fatalf("click %d on E5: %+v, want %+v", i+1, got, w)
		}
	}
	if got := c.axChecked("Office 365 E5"); got != "true" {
		t.Errorf("E5 after the cycle is announced as %q", got)
	}
	// By keyboard: Space on Project Plan 3 assigns it.
	c.do(chromedp.Focus(byLabel("Project Plan 3")), chromedp.KeyEvent(" "))
	if got := c.tri("Project Plan 3"); got != (triState{Checked: true, Aria: "true", Act: "assign"}) {
		t.Errorf("Space on Project Plan 3: %+v", got)
	}
	c.do(chromedp.Click(byLabel("Allow partial")))

	// Preview: seats needed against available, and who would fail why.
	c.do(chromedp.Click(button("Preview")), chromedp.WaitVisible(`#preview`))
	text := eval[string](c, `document.getElementById("preview").innerText`)
	for _, w := range []string{"Of 3 users, 2 would succeed and 1 would fail.", "CountViolation", f.names[noE5]} {
		if !strings.Contains(text, w) {
			t.Errorf("preview lacks %q:\n%s", w, text)
		}
	}
	if got := c.tri("Office 365 E5"); got.Act != "assign" || !got.Checked {
		t.Errorf("after Preview E5 is %+v", got)
	}
	c.check("preview")

	// Save, with the queue paused so that the confirmation page shows the
	// operation running, then follows it to its end without a reload.
	insp := asynq.NewInspectorFromRedisClient(f.b.Redis)
	if err := insp.PauseQueue(jobs.QueueCritical); err != nil {
		t.Fatal(err)
	}
	c.do(chromedp.Click(button("Save")), chromedp.WaitVisible(`#op-progress`))
	if h := eval[string](c, `document.querySelector("h1").textContent`); h != "License update in progress" {
		t.Fatalf("heading while queued: %q", h)
	}
	if p := eval[string](c, `document.getElementById("progress-text").textContent.trim()`); !strings.HasPrefix(p, "0 of 3 users done") {
		t.Errorf("progress while queued: %q", p)
	}
	c.check("confirmation-running")
	eval[chromedp.Void](c, `window.__samePage = true`)
	if err := insp.UnpauseQueue(jobs.QueueCritical); err != nil {
		t.Fatal(err)
	}
	c.waitFor(`document.querySelector("h1") && document.querySelector("h1").textContent === "License update completed with errors"`)
	if !eval[bool](c, `window.__samePage === true`) {
		t.Fatalf("the confirmation page reloaded")
	}
	if p := eval[string](c, `document.getElementById("progress-text").textContent.trim()`); !strings.HasPrefix(p, "3 of 3 users done · 1 failure so far") {
		t.Errorf("final progress: %q", p)
	}
	row := eval[string](c, fmt.Sprintf(`[...document.querySelectorAll("table.report tr")].find(r => r.innerText.includes(%q)).innerText`, f.names[noE5]))
	if !strings.Contains(row, "CountViolation") {
		t.Errorf("%s's row: %q", f.names[noE5], row)
	}
	okRow := eval[string](c, fmt.Sprintf(`[...document.querySelectorAll("table.report tr")].find(r => r.innerText.includes(%q)).innerText`, f.names[e5[0]]))
	if !strings.Contains(okRow, "Office 365 E5") || !strings.Contains(okRow, "Project Plan 3") {
		t.Errorf("%s's row: %q", f.names[e5[0]], okRow)
	}
	c.do(chromedp.WaitVisible(link("Download CSV")), chromedp.WaitVisible(link("Back to users")))
	c.check("confirmation")

	// Operations and the licenses overview.
	c.do(chromedp.Click(link("Operations")), chromedp.WaitVisible(`//td/a[contains(@href, "/console/operations/")]`))
	c.check("operations")
	c.do(chromedp.Click(link("Licenses overview")), chromedp.WaitVisible(`//th[contains(., "Office 365 E5")]`))
	c.check("licenses")

	// Polish, through the switch.
	c.do(chromedp.Click(link("Polski")), chromedp.WaitVisible(`//h1[normalize-space()="Przegląd licencji"]`))
	c.check("licenses-pl")
	c.do(chromedp.Click(link("English")), chromedp.WaitVisible(`//h1[normalize-space()="Licenses overview"]`))

	// Sign out.
	c.do(chromedp.Click(button("Sign out")), chromedp.WaitVisible(byLabel("API token")))
	c.do(chromedp.Navigate(f.srv.URL+"/console/customers"), chromedp.WaitVisible(byLabel("API token")))
	c.verify("signed-out")
}

// TestBrowserReader checks the reader's Manage-licenses page: Save disabled
// with its reason, no usage location, and no accessibility violation.
func TestBrowserReader(t *testing.T) {
	f := newFixture(t, fixtureOptions{users: 8})
	c := newChrome(t, f.srv.URL)
	c.do(chromedp.Navigate(f.srv.URL+"/console/sign-in"), chromedp.SendKeys(byLabel("API token"), f.b.Token("p", licensing.RoleReader)),
		chromedp.Click(button("Sign in")), chromedp.WaitVisible(link("Contoso Ltd")),
		chromedp.Click(link("Contoso Ltd")), chromedp.WaitVisible(box(displayName(0))))
	c.do(chromedp.Click(`#select-page`))
	c.waitFor(`document.getElementById("selected-link").textContent === "Selected users (8)"`)
	c.do(chromedp.Click(link("Manage licenses")), chromedp.WaitVisible(button("Preview")))
	if !eval[bool](c, `[...document.querySelectorAll("button")].find(b => b.textContent === "Save").disabled`) {
		t.Errorf("reader's Save is enabled")
	}
	if eval[bool](c, `!!document.getElementById("usage-location")`) {
		t.Errorf("reader sees the usage location field")
	}
	c.check("manage-licenses-reader")
}

// TestBrowserCancel presses Cancel on the confirmation page of an
// operation that waits for a worker: the page shows it cancelled, counts
// the cancelled users, and offers no Cancel any more.
func TestBrowserCancel(t *testing.T) {
	f := newFixture(t, fixtureOptions{users: 8, noHoldings: true}) // no worker: it waits
	var acc struct{ ID string }
	f.admin.Must(202, "POST", "/v1/customers/contoso/license-operations",
		map[string]any{"user_ids": f.users[:5], "assign": []string{"PROJECT"}}).JSON(t, &acc)
	c := newChrome(t, f.srv.URL)
	c.do(chromedp.Navigate(f.srv.URL+"/console/sign-in"), chromedp.SendKeys(byLabel("API token"), f.b.Token("p", licensing.RoleAdminAgent)),
		chromedp.Click(button("Sign in")), chromedp.WaitVisible(link("Contoso Ltd")),
		chromedp.Navigate(f.srv.URL+"/console/operations/"+acc.ID), chromedp.WaitVisible(button("Cancel")))
	c.do(chromedp.Click(button("Cancel")), chromedp.WaitVisible(`//h1[normalize-space()="License update cancelled"]`))
	if p := eval[string](c, `document.getElementById("progress-text").textContent.trim()`); !strings.Contains(p, "5 cancelled") {
		t.Errorf("progress after the cancel: %q", p)
	}
	if eval[bool](c, `[...document.querySelectorAll("button")].some(b => b.textContent === "Cancel")`) {
		t.Errorf("a cancelled operation still offers Cancel")
	}
	c.check("confirmation-cancelled")
}

// TestBrowserReportsProblems holds the browser tests to their word: an
// inline script (refused by the CSP), an inline style and a console error
// on a console page are all reported, and axe-core finds an unlabelled
// control.
func TestBrowserReportsProblems(t *testing.T) {
	f := newFixture(t, fixtureOptions{users: 1})
	c := newChrome(t, f.srv.URL)
	c.do(chromedp.Navigate(f.srv.URL+"/console/sign-in"), chromedp.WaitVisible(byLabel("API token")))
	if p := c.problems(); len(p) > 0 {
		t.Fatalf("the sign-in page has problems of its own: %v", p)
	}
	eval[chromedp.Void](c, `(() => {
		const s = document.createElement("script");
		s.textContent = "window.__ran = true";
		document.body.appendChild(s);
		const st = document.createElement("div");
		st.setAttribute("style", "color: red");
		document.body.appendChild(st);
		console.error("deliberate");
		const i = document.createElement("input");
		i.id = "unlabelled";
		document.querySelector("form").appendChild(i);
	})()`)
	c.waitFor(`window.__csp.length >= 2`)
	if eval[bool](c, `window.__ran === true`) {
		t.Errorf("the CSP let an inline script run")
	}
	got := strings.Join(c.problems(), "\n")
	for _, want := range []string{"CSP violation: script-src", "CSP violation: style-src", "deliberate"} {
		if !strings.Contains(got, want) {
			t.Errorf("problems lack %q:\n%s", want, got)
		}
	}
	eval[chromedp.Void](c, c.axe)
	ids := eval[[]string](c, `axe.run(document).then(r => r.violations.map(v => v.id))`, chromedp.EvalAwaitPromise)
	if !slices.Contains(ids, "label") {
		t.Errorf("axe-core missed the unlabelled field: %v", ids)
	}
}
