package api

import (
	"context"
	"net/http"
	"strconv"

	"github.com/licenseops/licenseops/licensing"
)

// allowToken charges one request to p's token (internal/ratelimit). Over
// the limit it sets Retry-After and returns RateLimited.
func (s *Server) allowToken(ctx context.Context, w http.ResponseWriter, p *licensing.Principal) error {
	d := s.limiter.AllowToken(ctx, p.TokenID)
	if d.Allowed {
		return nil
	}
	w.Header().Set("Retry-After", strconv.Itoa(d.RetryAfter))
	e := licensing.Errorf(licensing.CodeRateLimited,
		"token %q is over its rate limit of %d requests per second (bursts of %d); retry after %d s, and spread requests out or use fewer, larger ones",
		p.TokenName, s.limiter.Token.Rate, s.limiter.Token.Burst, d.RetryAfter)
	e.Details = map[string]int{"retry_after_seconds": d.RetryAfter}
	return e
}
