package cli

import (
	"regexp"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/internal/app"
)

// webhook create, list, deliveries and delete against a running api.
func TestWebhookCommands(t *testing.T) {
	t.Parallel()
	e := startAPI(t, app.ModeAPI)
	code, stdout, stderr := e.run("webhook create", "--endpoint", "http://127.0.0.1:9/in", "--event", "operation.completed,cleanup.blocked",
		"--description", "ticketing")
	wantCode(t, "webhook create", code, ExitOK, stdout, stderr)
	m := regexp.MustCompile(`(?m)^id: +(\S+)$`).FindStringSubmatch(stdout)
	if m == nil || !regexp.MustCompile(`(?m)^secret: +whsec_\S{40,}$`).MatchString(stdout) || !strings.Contains(stdout, "shown this once") {
		t.Fatalf("webhook create printed:\n%s", stdout)
	}
	id := m[1]

	code, stdout, stderr = e.run("webhook list")
	wantCode(t, "webhook list", code, ExitOK, stdout, stderr)
	if !regexp.MustCompile(`(?m)^`+id+` +http://127.0.0.1:9/in +operation.completed,cleanup.blocked +ticketing `).MatchString(stdout) ||
		strings.Contains(stdout, "whsec_") {
		t.Fatalf("webhook list printed:\n%s", stdout)
	}
	code, stdout, stderr = e.run("webhook deliveries", id)
	wantCode(t, "webhook deliveries", code, ExitOK, stdout, stderr)
	if !regexp.MustCompile(`(?m)^ID +EVENT +STATUS +ATTEMPTS +LAST STATUS +LAST ERROR +CREATED +DELIVERED$`).MatchString(stdout) ||
		!strings.Contains(stdout, "(0 deliveries)") {
		t.Fatalf("webhook deliveries printed:\n%s", stdout)
	}

	code, stdout, stderr = e.run("webhook create", "--endpoint", "https://169.254.169.254/", "--event", "cleanup.blocked")
	wantCode(t, "webhook create of a metadata URL", code, ExitError, stdout, stderr)
	if !strings.Contains(stderr, "WebhookTargetRefused") && !strings.Contains(stderr, "link-local") {
		t.Fatalf("refusal printed:\n%s", stderr)
	}
	code, stdout, stderr = e.run("webhook create", "--endpoint", "https://hooks.example.com/", "--event", "operation.started")
	wantCode(t, "webhook create of an unknown event", code, ExitError, stdout, stderr)
	if !strings.Contains(stderr, "operation.started") {
		t.Fatalf("unknown event printed:\n%s", stderr)
	}
	code, stdout, stderr = e.run("webhook create", "--endpoint", "https://hooks.example.com/")
	wantCode(t, "webhook create without events", code, ExitUsage, stdout, stderr)

	code, stdout, stderr = e.run("webhook delete", id)
	wantCode(t, "webhook delete", code, ExitOK, stdout, stderr)
	code, stdout, stderr = e.run("webhook list")
	wantCode(t, "webhook list", code, ExitOK, stdout, stderr)
	if !strings.Contains(stdout, "0 webhooks") {
		t.Fatalf("after delete, webhook list printed:\n%s", stdout)
	}
}
