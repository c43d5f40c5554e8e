// Package console is licenseops' web console: the partner procedure — sign
// in, pick a customer, select users across pages, Manage licenses, Save,
// read the confirmation — as server-rendered pages in the api process.
//
// It creates operations through the same intake.Service as the JSON API
// and reads through the same storage.Store; it never calls the API over
// HTTP. Sessions and selections live in Redis (see session.go). Templates,
// styles, scripts and message catalogs are embedded; pages need no build
// step and load nothing from elsewhere.
package console

import (
	"context"
	"embed"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/licenseops/licenseops/internal/ratelimit"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/intake"
	"github.com/licenseops/licenseops/licensing"
	"github.com/licenseops/licenseops/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

//go:embed locales/*.json
var localeFS embed.FS

// Prefix is the path under which the console is served.
const Prefix = "/console/"

// Config configures the console.
type Config struct {
	// BuyMoreURL is the template of the Buy more link with {customer_id}
	// and {sku_id}: the API's buy_more_url, which the process passes with
	// the API's defaults applied. Empty shows no Buy more link.
	BuyMoreURL string
	// RateLimitPerSecond and RateLimitBurst are the API's, passed the same
	// way: a page request is charged to its token's budget, shared with the
	// JSON API. A rate of 0 or less turns limiting off.
	RateLimitPerSecond int
	RateLimitBurst     int
	// TrustProxy marks session cookies Secure when a proxy in front says
	// the request came over HTTPS (X-Forwarded-Proto: https). Requests
	// served over TLS directly get Secure cookies anyway.
	TrustProxy bool
	// IdleTimeout ends a session not used for this long (8 h);
	// MaxLifetime ends any session this long after sign-in (24 h).
	IdleTimeout, MaxLifetime time.Duration
	// MaxSelection bounds a selection (the intake's users per operation).
	MaxSelection int
	// InactiveAfter is when an account without a sign-in counts as unused
	// in the licenses overview (90 days).
	InactiveAfter time.Duration
	Logger        *slog.Logger
}

// WithDefaults returns the config with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 8 * time.Hour
	}
	if c.MaxLifetime <= 0 {
		c.MaxLifetime = 24 * time.Hour
	}
	if c.MaxSelection <= 0 {
		c.MaxSelection = 100_000
	}
	if c.InactiveAfter <= 0 {
		c.InactiveAfter = 90 * 24 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Console serves the web console.
type Console struct {
	cfg      Config
	intake   *intake.Service
	store    *storage.Store
	rdb      redis.UniversalClient
	log      *slog.Logger
	pages    *pages
	i18n     *catalog
	limiter  *ratelimit.Limiter // nil when limiting is off
	sessions *sessions
}

// New builds the console on the process's intake service, store and Redis.
func New(cfg Config, svc *intake.Service, store *storage.Store, rdb redis.UniversalClient) (*Console, error) {
	cfg = cfg.WithDefaults()
	if m := svc.Config().MaxUsersPerOperation; m < cfg.MaxSelection {
		cfg.MaxSelection = m
	}
	cat, err := defaultCatalog, catalogErr
	if err != nil {
		return nil, err
	}
	pg, err := parsePages()
	if err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, intake: svc, store: store, rdb: rdb, log: cfg.Logger, pages: pg, i18n: cat,
		sessions: &sessions{rdb: rdb, idle: cfg.IdleTimeout, max: cfg.MaxLifetime}}
	c.limiter = ratelimit.New(rdb, cfg.RateLimitPerSecond, max(cfg.RateLimitBurst, 1), cfg.Logger)
	return c, nil
}

// page is a signed-in page handler.
type page func(w http.ResponseWriter, r *http.Request, s *session) error

// Handler serves everything under Prefix, and "/" as a redirect to it.
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, Prefix, http.StatusFound)
	})
	mux.Handle("GET /console/static/", c.static())
	mux.HandleFunc("GET /console/{$}", c.home)
	mux.HandleFunc("GET /console/sign-in", c.signInPage)
	mux.HandleFunc("POST /console/sign-in", c.signIn)
	mux.HandleFunc("GET /console/lang/{lang}", c.switchLanguage)
	signedIn := map[string]page{
		"POST /console/sign-out":                   c.signOut,
		"GET /console/customers":                   c.customers,
		"GET /console/customers/{cid}/users":       c.users,
		"POST /console/customers/{cid}/selection":  c.changeSelection,
		"GET /console/customers/{cid}/manage":      c.manage,
		"POST /console/customers/{cid}/manage":     c.manageSubmit,
		"GET /console/customers/{cid}/operations":  c.operations,
		"GET /console/customers/{cid}/licenses":    c.licenses,
		"GET /console/operations/{oid}":            c.operation,
		"GET /console/operations/{oid}/progress":   c.progress,
		"GET /console/operations/{oid}/results":    c.results,
		"GET /console/operations/{oid}/report.csv": c.reportCSV,
		"POST /console/operations/{oid}/cancel":    c.cancel,
	}
	for pattern, h := range signedIn {
		mux.Handle(pattern, c.authenticated(h))
	}
	mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		c.renderError(w, r, nil, pageErr(licensing.CodeNotFound, "NotFoundMessage"))
	})
	return securityHeaders(mux)
}

// csp is the Content-Security-Policy of every answer: only the console's
// own scripts, styles and fetches; no inline script or style; no framing.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		next.ServeHTTP(w, r)
	})
}

func (c *Console) static() http.Handler {
	fs := http.FileServerFS(staticFS)
	return http.StripPrefix("/console", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=300")
		fs.ServeHTTP(w, r)
	}))
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if s, _ := c.sessions.load(r); s != nil {
		http.Redirect(w, r, "/console/customers", http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, "/console/sign-in", http.StatusSeeOther)
}

// secure reports whether the request came over HTTPS, directly or through
// a trusted proxy; session cookies are then Secure.
func (c *Console) secure(r *http.Request) bool {
	return r.TLS != nil || (c.cfg.TrustProxy && strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https"))
}

// authenticated loads the session, ends it when its token was revoked,
// charges the token's rate limit and checks the CSRF token of a POST.
func (c *Console) authenticated(h page) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s, err := c.sessions.load(r)
		if err != nil {
			c.renderError(w, r, nil, err)
			return
		}
		if s != nil {
			s.principal, err = c.store.PrincipalByTokenID(r.Context(), s.tokenID)
			if err != nil {
				c.renderError(w, r, nil, err)
				return
			}
			if s.principal == nil { // revoked: the session ends with its token
				_ = c.sessions.delete(r.Context(), s)
				s = nil
			}
		}
		if s == nil {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, "/progress") {
				http.Redirect(w, r, "/console/sign-in?expired=1", http.StatusSeeOther)
				return
			}
			c.clearSessionCookie(w, r)
			c.renderError(w, r, nil, pageErr(licensing.CodeUnauthenticated, "SessionEnded"))
			return
		}
		s.lang = c.language(r)
		if err := c.rateLimit(r.Context(), w, s.principal); err != nil {
			c.renderError(w, r, s, err)
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				c.renderError(w, r, s, pageErr(licensing.CodeTooLarge, "FormTooLarge"))
				return
			}
		}
		if r.Method == http.MethodPost && !s.validCSRF(r) {
			c.renderError(w, r, s, pageErr(licensing.CodeForbidden, "FormForeign"))
			return
		}
		if err := h(w, r, s); err != nil {
			c.renderError(w, r, s, err)
		}
	})
}

// rateLimit charges one request to p's token, the budget the JSON API
// charges too (internal/ratelimit).
func (c *Console) rateLimit(ctx context.Context, w http.ResponseWriter, p *licensing.Principal) error {
	d := c.limiter.AllowToken(ctx, p.TokenID)
	if d.Allowed {
		return nil
	}
	w.Header().Set("Retry-After", itoa(d.RetryAfter))
	return pageErr(licensing.CodeRateLimited, "RateLimited", "Count", d.RetryAfter)
}

// clientAddr is the address sign-in attempts are counted by: the peer's,
// or behind a trusted proxy the one the proxy appended last to
// X-Forwarded-For (earlier entries are the client's to write).
func (c *Console) clientAddr(r *http.Request) string {
	if c.cfg.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
				return last
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// renderError answers with the error page. A foreign object and a missing
// one are the same 404; internal errors are logged and shown generically.
func (c *Console) renderError(w http.ResponseWriter, r *http.Request, s *session, err error) {
	code := licensing.ErrorCode(err)
	if code == licensing.CodeInternal {
		if errors.Is(err, context.Canceled) {
			return
		}
		c.log.ErrorContext(r.Context(), "console request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	status := licensing.HTTPStatus(code)
	lang := c.language(r)
	if s != nil {
		lang = s.lang
	}
	v := c.view(r, s, lang)
	v.Title = v.T("ErrorTitle")
	data := errorPage{View: v, Status: status, Code: string(code), Message: licensing.ErrorMessage(err)}
	var pe *pageError
	switch {
	case status == http.StatusNotFound:
		data.Message = v.T("NotFoundMessage")
	case errors.As(err, &pe):
		data.Message = v.T(pe.id, pe.kv...)
	}
	c.render(w, status, "error", data)
}

// pageError is an error of the console's own, shown in the page's language:
// id is its message in the catalogs, kv the message's data.
type pageError struct {
	err *licensing.Error
	id  string
	kv  []any
}

func (e *pageError) Error() string { return e.err.Error() }
func (e *pageError) Unwrap() error { return e.err }

// pageErr is an error with code whose page shows catalog message id; its
// log text is the English message.
func pageErr(code licensing.Code, id string, kv ...any) error {
	en := defaultCatalog.translate("en", id, kv...)
	return &pageError{err: licensing.Errorf(code, "%s", en), id: id, kv: kv}
}
