package graphsim

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// tokenStore maps issued access tokens to their tenant. Real tokens are
// signed JWTs; opaque random ones are enough for a client that never looks
// inside (msgraph does not, and should not).
type tokenStore struct {
	mu      sync.Mutex
	byToken map[string]tokenEntry
}

type tokenEntry struct {
	tenant  *tenant
	expires time.Time
}

func (ts *tokenStore) issue(t *tenant, lifetime time.Duration) string {
	b := make([]byte, 24)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	tok := base64.RawURLEncoding.EncodeToString(b)
	now := time.Now()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.byToken) > 10000 {
		for k, e := range ts.byToken {
			if now.After(e.expires) {
				delete(ts.byToken, k)
			}
		}
	}
	ts.byToken[tok] = tokenEntry{tenant: t, expires: now.Add(lifetime)}
	return tok
}

// lookup returns the token's tenant, or the message of Graph's 401.
func (ts *tokenStore) lookup(tok string) (*tenant, string) {
	ts.mu.Lock()
	e, ok := ts.byToken[tok]
	ts.mu.Unlock()
	switch {
	case !ok:
		return nil, "Invalid access token."
	case time.Now().After(e.expires):
		return nil, "Lifetime validation failed, the token is expired."
	}
	return e.tenant, ""
}

func (ts *tokenStore) expireAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for k, e := range ts.byToken {
		e.expires = time.Time{}
		ts.byToken[k] = e
	}
}

// authenticate resolves the bearer token of a Graph call to its tenant, or
// answers 401 as Graph does.
func (s *Simulator) authenticate(w http.ResponseWriter, r *http.Request) (*tenant, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || tok == "" {
		writeGraphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.")
		return nil, false
	}
	t, msg := s.tokens.lookup(tok)
	if t == nil {
		writeGraphError(w, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		return nil, false
	}
	return t, true
}

// handleToken is Entra ID's token endpoint for the client credentials
// grant, with its error codes and bodies.
func (s *Simulator) handleToken(w http.ResponseWriter, r *http.Request) {
	tenantID := r.PathValue("tenant")
	if err := r.ParseForm(); err != nil {
		s.tokenError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "client_credentials" {
		s.tokenError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, fmt.Sprintf("The app requested an unsupported grant type '%s'.", g))
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	if r.PostForm.Get("scope") == "" {
		s.tokenError(w, http.StatusBadRequest, "invalid_request", 90014, "The required field 'scope' is missing from the credential.")
		return
	}
	t := s.lookup(tenantID)
	switch {
	case t == nil:
		s.tokenError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenantID))
		return
	case id != t.clientID:
		s.tokenError(w, http.StatusBadRequest, "unauthorized_client", 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", id, tenantID))
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(t.clientSecret)) != 1:
		s.tokenError(w, http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", id))
		return
	}
	lifetime := s.Config().TokenLifetime
	s.stats.tokens.Add(1)
	secs := max(1, int64(lifetime/time.Second))
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": secs, "ext_expires_in": secs,
		"access_token": s.tokens.issue(t, lifetime),
	})
}

// tokenError writes Entra ID's OAuth error body: error_description starts
// with the AADSTS code and goes on with trace lines.
func (s *Simulator) tokenError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	s.stats.tokenFailures.Add(1)
	now := time.Now().UTC()
	id := requestID(now)
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", aadsts, desc, id, id, now.Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
		"timestamp":         now.Format("2006-01-02 15:04:05Z"),
		"trace_id":          id,
		"correlation_id":    id,
		"error_uri":         fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts),
	})
}
