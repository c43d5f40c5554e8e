package webhook

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/licenseops/licenseops/licensing"
)

// The example of the Standard Webhooks libraries: a receiver built on any
// of them accepts what Sign makes.
func TestSignMatchesStandardWebhooksExample(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestNewSecret(t *testing.T) {
	a, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewSecret()
	if !strings.HasPrefix(a, "whsec_") || len(a) != len("whsec_")+44 || a == b {
		t.Fatalf("secrets %q, %q: want whsec_ and 32 random bytes in base64", a, b)
	}
}

func TestCheckURL(t *testing.T) {
	cases := []struct {
		url       string
		allowHTTP bool
		code      licensing.Code // "" for accepted
	}{
		{"https://hooks.example.com/licenseops", false, ""},
		{"https://10.1.2.3/on-prem", false, ""},
		{"http://localhost:8080/in", false, ""},
		{"http://127.0.0.5/in", false, ""},
		{"http://[::1]:9000/in", false, ""},
		{"http://hooks.example.com/in", true, ""},
		{"http://hooks.example.com/in", false, licensing.CodeWebhookTargetRefused},
		{"http://10.0.0.1/in", false, licensing.CodeWebhookTargetRefused},
		{"https://169.254.169.254/latest", false, licensing.CodeWebhookTargetRefused},
		{"http://169.254.169.254/latest", true, licensing.CodeWebhookTargetRefused},
		{"https://[::ffff:169.254.169.254]/", false, licensing.CodeWebhookTargetRefused},
		{"https://metadata.google.internal./v1", false, licensing.CodeWebhookTargetRefused},
		{"https://[fe80::1%25eth0]/", false, licensing.CodeWebhookTargetRefused},
		{"https://[fd00:ec2::254]/", false, licensing.CodeWebhookTargetRefused},
		{"https://0.0.0.0/", false, licensing.CodeWebhookTargetRefused},
		{"https://[::]/", false, licensing.CodeWebhookTargetRefused},
		{"https://224.0.0.1/", false, licensing.CodeWebhookTargetRefused},
		{"ftp://hooks.example.com/", false, licensing.CodeInvalidRequest},
		{"hooks.example.com/in", false, licensing.CodeInvalidRequest},
		{"https://u:p@hooks.example.com/", false, licensing.CodeInvalidRequest},
	}
	for _, tc := range cases {
		err := CheckURL(tc.url, tc.allowHTTP)
		if tc.code == "" && err != nil || tc.code != "" && licensing.ErrorCode(err) != tc.code {
			t.Errorf("CheckURL(%q, allowHTTP %v) = %v, want code %q", tc.url, tc.allowHTTP, err, tc.code)
		}
	}
}

// The sender refuses a name that resolves to a refused address, without
// connecting, and calls one that resolves to an allowed one.
func TestSenderGuardsResolvedAddresses(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	s := NewSender(SenderConfig{LookupIP: func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "good.test" {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}
		return []netip.Addr{netip.MustParseAddr("169.254.169.254")}, nil
	}})
	secret, _ := NewSecret()
	if r := s.Send(context.Background(), Message{ID: "m", URL: "http://good.test" + port, Secret: secret, Body: []byte("{}")}, time.Now()); r.Err != nil || r.Status != 200 {
		t.Fatalf("good.test: %+v", r)
	}
	r := s.Send(context.Background(), Message{ID: "m", URL: "http://evil.test" + port, Secret: secret, Body: []byte("{}")}, time.Now())
	if !errors.Is(r.Err, ErrRefusedAddress) || r.Status != 0 {
		t.Fatalf("evil.test: %+v, want a refused address", r)
	}
}

// A redirect is an answer, not a new target.
func TestSenderDoesNotFollowRedirects(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Redirect(w, r, "http://169.254.169.254/", http.StatusFound)
	}))
	defer srv.Close()
	secret, _ := NewSecret()
	r := NewSender(SenderConfig{}).Send(context.Background(), Message{ID: "m", URL: srv.URL, Secret: secret, Body: []byte("{}")}, time.Now())
	if r.Status != http.StatusFound || r.Err == nil || !strings.Contains(r.Err.Error(), "redirects are not followed") || hits.Load() != 1 {
		t.Fatalf("redirect: %+v after %d requests", r, hits.Load())
	}
}

func TestOperationEvents(t *testing.T) {
	cases := []struct {
		status, source string
		want           []string
	}{
		{licensing.StatusCompleted, licensing.SourceAPI, []string{OperationCompleted}},
		{licensing.StatusCompletedWithErrors, licensing.SourceUndo, []string{OperationCompleted}},
		{licensing.StatusCancelled, licensing.SourceAPI, []string{OperationCancelled}},
		{licensing.StatusCompleted, licensing.SourceCleanup, []string{OperationCompleted, CleanupCompleted}},
		{licensing.StatusCancelled, licensing.SourceCleanup, []string{OperationCancelled, CleanupCompleted}},
		{licensing.StatusRunning, licensing.SourceCleanup, nil},
	}
	for _, tc := range cases {
		if got := OperationEvents(tc.status, tc.source); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("OperationEvents(%s, %s) = %v, want %v", tc.status, tc.source, got, tc.want)
		}
	}
}
