package msgraph

import (
	"context"
	"net/http"
	"sync"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// tokenCache holds one tenant's app-only access token. Tokens are per tenant
// because the client credentials flow signs in to one tenant at a time (the
// tenant is part of the token URL).
//
// It is not an oauth2.TokenSource because a TokenSource keeps the context it
// was made with for every later refresh: a refresh could then neither be
// cancelled by the task that needs it nor outlive a cancelled one.
type tokenCache struct {
	cc clientcredentials.Config
	// fetching lets one caller at a time ask for a new token, so that a
	// rollout's first hundred calls to a tenant make one token request, not a
	// hundred; a channel rather than a mutex so that waiting obeys ctx.
	fetching chan struct{}

	mu  sync.Mutex
	tok *oauth2.Token
}

func newTokenCache(cfg Config, tokenURL string) *tokenCache {
	return &tokenCache{
		cc: clientcredentials.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret.Reveal(),
			TokenURL:     tokenURL,
			Scopes:       cfg.Scopes,
			// Microsoft documents the secret in the form body; saying so
			// saves the auto-detecting first request that would fail.
			AuthStyle: oauth2.AuthStyleInParams,
		},
		fetching: make(chan struct{}, 1),
	}
}

// token returns a valid access token, fetching one when the cached one is
// missing or about to expire (oauth2.Token.Valid keeps a margin).
func (t *tokenCache) token(ctx context.Context, hc *http.Client) (string, error) {
	if tok := t.cached(); tok != "" {
		return tok, nil
	}
	select {
	case t.fetching <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-t.fetching }()
	if tok := t.cached(); tok != "" {
		return tok, nil // fetched by the caller we waited for
	}
	tok, err := t.cc.Token(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if err != nil {
		return "", err
	}
	t.mu.Lock()
	t.tok = tok
	t.mu.Unlock()
	return tok.AccessToken, nil
}

func (t *tokenCache) cached() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok.Valid() {
		return t.tok.AccessToken
	}
	return ""
}

// invalidate drops the cached token if it is still the one Graph rejected;
// one fetched meanwhile by another caller is kept.
func (t *tokenCache) invalidate(rejected string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.tok != nil && t.tok.AccessToken == rejected {
		t.tok = nil
	}
}
