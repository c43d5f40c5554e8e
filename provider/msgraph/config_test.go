package msgraph_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/licenseops/licenseops/provider/msgraph"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadCredentials(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.json", `{"client_id": "file-app", "client_secret": "file-secret"}`)
	notJSON := write("bad.json", `client_secret=file-secret`)
	partial := write("partial.json", `{"client_id": "file-app"}`)

	tests := []struct {
		name       string
		env        map[string]string
		wantID     string
		wantSecret string
		wantErr    string
	}{
		{"environment", map[string]string{msgraph.EnvClientID: "env-app", msgraph.EnvClientSecret: "env-secret"}, "env-app", "env-secret", ""},
		{"file", map[string]string{msgraph.EnvCredentialsFile: good}, "file-app", "file-secret", ""},
		{"nothing", map[string]string{}, "", "", "no credentials"},
		{"both ways", map[string]string{msgraph.EnvCredentialsFile: good, msgraph.EnvClientID: "env-app"}, "", "", "not both"},
		{"id only", map[string]string{msgraph.EnvClientID: "env-app"}, "", "", "set both"},
		{"missing file", map[string]string{msgraph.EnvCredentialsFile: filepath.Join(dir, "none.json")}, "", "", "read credentials file"},
		{"file not JSON", map[string]string{msgraph.EnvCredentialsFile: notJSON}, "", "", "is not JSON"},
		{"file without secret", map[string]string{msgraph.EnvCredentialsFile: partial}, "", "", "needs both"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := msgraph.LoadCredentials(env(tt.env))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "file-secret") {
					t.Fatalf("error shows the secret: %v", err)
				}
				return
			}
			if err != nil || c.ClientID != tt.wantID || c.ClientSecret.Reveal() != tt.wantSecret {
				t.Fatalf("got %q/%q, %v", c.ClientID, c.ClientSecret.Reveal(), err)
			}
		})
	}
	if _, err := msgraph.LoadCredentials(env(nil)); !errors.Is(err, msgraph.ErrNoCredentials) {
		t.Fatalf("no credentials: %v", err)
	}
}

func TestConfigNeverShowsSecret(t *testing.T) {
	t.Parallel()
	const value = "hunter2-do-not-print"
	cfg := msgraph.Config{
		Credentials: msgraph.Credentials{ClientID: "app", ClientSecret: value},
		BaseURL:     "http://127.0.0.1:1/v1.0", TokenURL: "http://127.0.0.1:1/{tenant}/token",
	}
	client, err := msgraph.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var outs []string
	for _, v := range []any{cfg, &cfg, cfg.Credentials, cfg.ClientSecret, client} {
		for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
			outs = append(outs, fmt.Sprintf(verb, v))
		}
		j, _ := json.Marshal(v)
		outs = append(outs, string(j))
		var buf bytes.Buffer
		slog.New(slog.NewJSONHandler(&buf, nil)).Info("config", "v", v)
		slog.New(slog.NewTextHandler(&buf, nil)).Info("config", "v", v)
		outs = append(outs, buf.String())
	}
	outs = append(outs, cfg.String(), cfg.WithDefaults().String())
	for _, o := range outs {
		if strings.Contains(o, value) || strings.Contains(o, fmt.Sprintf("%x", value)) {
			t.Fatalf("secret shown: %s", o)
		}
	}
	if !strings.Contains(cfg.String(), "ClientID: app") || !strings.Contains(cfg.String(), "[redacted]") {
		t.Fatalf("String() = %s", cfg.String())
	}
}

func TestNewValidatesConfig(t *testing.T) {
	t.Parallel()
	creds := msgraph.Credentials{ClientID: "app", ClientSecret: "s"}
	tests := []struct {
		name string
		cfg  msgraph.Config
	}{
		{"no credentials", msgraph.Config{}},
		{"base URL not http", msgraph.Config{Credentials: creds, BaseURL: "ftp://graph"}},
		{"token URL without tenant", msgraph.Config{Credentials: creds, TokenURL: "https://login.example.com/token"}},
		{"page size above Graph's maximum", msgraph.Config{Credentials: creds, PageSize: 1000}},
	}
	for _, tt := range tests {
		if _, err := msgraph.New(tt.cfg); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	c := msgraph.Config{Credentials: creds}.WithDefaults()
	if c.BaseURL != msgraph.DefaultBaseURL || c.TokenURL != msgraph.DefaultTokenURL || c.MaxInFlight != 8 || c.RatePerSecond != 20 ||
		c.PageSize != 999 || len(c.Scopes) != 1 || c.Scopes[0] != msgraph.DefaultScope {
		t.Fatalf("defaults %s", c)
	}
	if _, err := msgraph.New(msgraph.Config{Credentials: creds}); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
}
