package provider_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/provider"
)

func TestErrorHelpers(t *testing.T) {
	t.Parallel()
	throttled := &provider.Error{Kind: provider.Throttled, Code: licensing.CodeProviderThrottled, Message: "slow down", RetryAfter: 2 * time.Second, Status: 429}
	throttledNoHint := &provider.Error{Kind: provider.Throttled, Code: licensing.CodeProviderThrottled, Status: 503}
	transient := &provider.Error{Kind: provider.Transient, Code: licensing.CodeProviderError, Message: "gone", Err: context.DeadlineExceeded}
	permanent := &provider.Error{Kind: provider.Permanent, Code: licensing.CodeCountViolation, Message: "no seats", Status: 400}

	tests := []struct {
		name      string
		err       error
		after     time.Duration
		ok        bool
		permanent bool
	}{
		{"throttled", throttled, 2 * time.Second, true, false},
		{"throttled, wrapped", fmt.Errorf("apply: %w", throttled), 2 * time.Second, true, false},
		{"throttled without Retry-After", throttledNoHint, 0, false, false},
		{"transient", transient, 0, false, false},
		{"permanent", permanent, 0, false, true},
		{"permanent, wrapped", fmt.Errorf("apply: %w", permanent), 0, false, true},
		{"other error", errors.New("boom"), 0, false, false},
		{"nil", nil, 0, false, false},
	}
	for _, tt := range tests {
		d, ok := provider.RetryAfter(tt.err)
		if d != tt.after || ok != tt.ok || provider.IsPermanent(tt.err) != tt.permanent {
			t.Errorf("%s: RetryAfter %s %t, IsPermanent %t", tt.name, d, ok, provider.IsPermanent(tt.err))
		}
	}
	if !errors.Is(transient, context.DeadlineExceeded) {
		t.Error("Unwrap does not reach the cause")
	}
	if s := throttled.Error(); !strings.Contains(s, "throttled") || !strings.Contains(s, "429") || !strings.Contains(s, "2s") || !strings.Contains(s, "slow down") {
		t.Errorf("Error() = %q", s)
	}
	for k, want := range map[provider.Kind]string{provider.Throttled: "throttled", provider.Transient: "transient", provider.Permanent: "permanent", 0: "unknown"} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q", k, k.String())
		}
	}
}

func TestAvailable(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ enabled, consumed, want int }{{10, 3, 7}, {5, 5, 0}, {2, 4, 0}} {
		if got := (provider.SubscribedSKU{Enabled: tt.enabled, Consumed: tt.consumed}).Available(); got != tt.want {
			t.Errorf("Available(%d, %d) = %d, want %d", tt.enabled, tt.consumed, got, tt.want)
		}
	}
}
