package console

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/licenseops/licenseops/licensing"
)

// A session is kept in Redis under the SHA-256 of its random ID, so that
// the IDs in cookies are not readable from Redis: a hash with the token's
// ID, the CSRF token and the sign-in time. Its TTL is the idle timeout,
// renewed on each request but never past the maximum lifetime. Every
// request looks the token up again, so revoking a token ends its sessions
// at once. The selection of users is a Redis set per session and customer
// with the same TTL. A session's keys are written and deleted together, so
// the hash is their hash tag ({hash}): in Redis Cluster they share a slot.

const (
	sessionCookie       = "lops_session"
	secureSessionCookie = "__Host-lops_session"
	preCSRFCookie       = "lops_signin"
	langCookie          = "lops_lang"
	sessionPrefix       = "licenseops:console:session:"
	selectionPrefix     = "licenseops:console:selection:"
)

type session struct {
	key       string // Redis key: the prefix and the ID's hash
	hash      string
	tokenID   int64
	csrf      string
	created   time.Time
	principal *licensing.Principal
	lang      string
}

type sessions struct {
	rdb       redis.UniversalClient
	idle, max time.Duration
}

func sessionKey(hash string) string { return sessionPrefix + "{" + hash + "}" }

func randomID() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func hashID(id string) string {
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:])
}

func sessionID(r *http.Request) string {
	for _, name := range []string{secureSessionCookie, sessionCookie} {
		if ck, err := r.Cookie(name); err == nil && ck.Value != "" {
			return ck.Value
		}
	}
	return ""
}

// create stores a new session of p's token and returns its ID.
func (ss *sessions) create(ctx context.Context, p *licensing.Principal) (string, error) {
	id, err := randomID()
	if err != nil {
		return "", err
	}
	csrf, err := randomID()
	if err != nil {
		return "", err
	}
	key := sessionKey(hashID(id))
	_, err = ss.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		pipe.HSet(ctx, key, "token_id", p.TokenID, "csrf", csrf, "created", time.Now().Unix())
		pipe.Expire(ctx, key, ss.idle)
		return nil
	})
	return id, err
}

// load returns the request's session, or nil when it has none or it ended.
// It renews the idle timeout.
func (ss *sessions) load(r *http.Request) (*session, error) {
	id := sessionID(r)
	if id == "" || len(id) > 100 {
		return nil, nil
	}
	ctx := r.Context()
	h := hashID(id)
	key := sessionKey(h)
	vals, err := ss.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return nil, err
	}
	if len(vals) == 0 {
		return nil, nil
	}
	tok, err1 := strconv.ParseInt(vals["token_id"], 10, 64)
	created, err2 := strconv.ParseInt(vals["created"], 10, 64)
	if err1 != nil || err2 != nil || vals["csrf"] == "" {
		return nil, nil
	}
	s := &session{key: key, hash: h, tokenID: tok, csrf: vals["csrf"], created: time.Unix(created, 0)}
	left := time.Until(s.created.Add(ss.max))
	if left <= 0 {
		_ = ss.delete(ctx, s)
		return nil, nil
	}
	ttl := min(ss.idle, left)
	if err := ss.rdb.Expire(ctx, key, ttl).Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// ttl is how long a key tied to s may live: as long as s may.
func (ss *sessions) ttl(s *session) time.Duration {
	return min(ss.idle, max(time.Second, time.Until(s.created.Add(ss.max))))
}

func (ss *sessions) delete(ctx context.Context, s *session) error {
	keys, err := ss.rdb.SMembers(ctx, s.key+":selections").Result()
	if err != nil {
		return err
	}
	return ss.rdb.Del(ctx, append(keys, s.key, s.key+":selections")...).Err()
}

func (s *session) validCSRF(r *http.Request) bool {
	got := r.Header.Get("X-CSRF-Token")
	if got == "" {
		got = r.PostFormValue("csrf")
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

func (c *Console) setSessionCookie(w http.ResponseWriter, r *http.Request, id string) {
	name := sessionCookie
	if c.secure(r) {
		name = secureSessionCookie
	}
	// #nosec G124 -- Secure follows the request (c.secure: TLS, or a trusted proxy that says so), since the console also serves plain HTTP on a private address; HttpOnly and SameSite=Strict are always set
	http.SetCookie(w, &http.Cookie{Name: name, Value: id, Path: "/", HttpOnly: true, Secure: c.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: int(c.cfg.MaxLifetime.Seconds())})
}

func (c *Console) clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	for _, name := range []string{sessionCookie, secureSessionCookie} {
		if _, err := r.Cookie(name); err == nil {
			// #nosec G124 -- Secure follows the request (c.secure: TLS, or a trusted proxy that says so), since the console also serves plain HTTP on a private address; HttpOnly and SameSite=Strict are always set
			http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: "/", HttpOnly: true, Secure: name == secureSessionCookie || c.secure(r),
				SameSite: http.SameSiteStrictMode, MaxAge: -1})
		}
	}
}

// preSessionCSRF returns the sign-in form's CSRF token: a random value in
// a cookie of its own that the form repeats (double submit), so that no
// other site can sign a browser in to an account of its choosing.
func (c *Console) preSessionCSRF(w http.ResponseWriter, r *http.Request) (string, error) {
	if ck, err := r.Cookie(preCSRFCookie); err == nil && len(ck.Value) == 43 {
		return ck.Value, nil
	}
	v, err := randomID()
	if err != nil {
		return "", err
	}
	// #nosec G124 -- Secure follows the request (c.secure: TLS, or a trusted proxy that says so), since the console also serves plain HTTP on a private address; HttpOnly and SameSite=Strict are always set
	http.SetCookie(w, &http.Cookie{Name: preCSRFCookie, Value: v, Path: "/console/", HttpOnly: true, Secure: c.secure(r),
		SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	return v, nil
}

func validPreSessionCSRF(r *http.Request) bool {
	ck, err := r.Cookie(preCSRFCookie)
	got := r.PostFormValue("csrf")
	return err == nil && ck.Value != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ck.Value)) == 1
}

// selection is the set of selected users of one customer in a session.
type selection struct {
	ss  *sessions
	s   *session
	key string
}

func (c *Console) selection(s *session, customerID string) selection {
	return selection{ss: c.sessions, s: s, key: selectionPrefix + "{" + s.hash + "}:" + customerID}
}

func (sel selection) count(ctx context.Context) (int, error) {
	n, err := sel.ss.rdb.SCard(ctx, sel.key).Result()
	return int(n), err
}

func (sel selection) ids(ctx context.Context) ([]string, error) {
	return sel.ss.rdb.SMembers(ctx, sel.key).Result()
}

// contains reports for each of ids whether it is selected.
func (sel selection) contains(ctx context.Context, ids []string) ([]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	m := make([]any, len(ids))
	for i, id := range ids {
		m[i] = id
	}
	return sel.ss.rdb.SMIsMember(ctx, sel.key, m...).Result()
}

func (sel selection) add(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	ttl := sel.ss.ttl(sel.s)
	_, err := sel.ss.rdb.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		for start := 0; start < len(ids); start += 10_000 {
			chunk := ids[start:min(start+10_000, len(ids))]
			m := make([]any, len(chunk))
			for i, id := range chunk {
				m[i] = id
			}
			pipe.SAdd(ctx, sel.key, m...)
		}
		pipe.Expire(ctx, sel.key, ttl)
		pipe.SAdd(ctx, sel.s.key+":selections", sel.key)
		pipe.Expire(ctx, sel.s.key+":selections", ttl)
		return nil
	})
	return err
}

func (sel selection) remove(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	m := make([]any, len(ids))
	for i, id := range ids {
		m[i] = id
	}
	return sel.ss.rdb.SRem(ctx, sel.key, m...).Err()
}

func (sel selection) clear(ctx context.Context) error {
	return sel.ss.rdb.Del(ctx, sel.key).Err()
}

func itoa(n int) string     { return strconv.Itoa(n) }
func itoa64(n int64) string { return strconv.FormatInt(n, 10) }
