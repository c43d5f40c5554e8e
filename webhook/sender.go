package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
	"unicode/utf8"
)

// SenderConfig tunes a Sender.
type SenderConfig struct {
	// Timeout bounds one attempt, connection to last byte read; 0 means 10 s.
	Timeout time.Duration
	// LookupIP resolves a host name; nil means the system resolver. Tests
	// set it to point a name at an address of their choice.
	LookupIP func(ctx context.Context, host string) ([]netip.Addr, error)
	// UserAgent is sent with every delivery.
	UserAgent string
}

// Sender posts signed events to webhooks. It never follows redirects,
// never uses a proxy (the guard must see the receiver's address, not a
// proxy's) and refuses every connection to a refused address.
type Sender struct {
	client *http.Client
	ua     string
}

// maxResponseRead is how much of a receiver's answer is read: enough for
// an error message in the delivery log, never a large download.
const maxResponseRead = 1 << 10

// NewSender builds a sender.
func NewSender(cfg SenderConfig) *Sender {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "licenseops-webhooks/1"
	}
	dialer := &net.Dialer{Timeout: cfg.Timeout, Control: guardDial}
	lookup := cfg.LookupIP
	if lookup == nil {
		lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	transport := &http.Transport{
		Proxy:                 nil,
		DialContext:           resolvingDial(dialer, lookup),
		TLSHandshakeTimeout:   cfg.Timeout,
		ResponseHeaderTimeout: cfg.Timeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &Sender{ua: cfg.UserAgent, client: &http.Client{
		Transport: transport,
		Timeout:   cfg.Timeout,
		// A redirect is the receiver's answer, not a new target: following
		// it would let a receiver point licenseops at any address.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// resolvingDial resolves the host with lookup and dials its addresses in
// turn with dialer, whose Control hook refuses the ones webhooks may not
// call; the first refusal is the error when none connects.
func resolvingDial(dialer *net.Dialer, lookup func(context.Context, string) ([]netip.Addr, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = lookup(ctx, host); err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
		if len(ips) == 0 {
			return nil, fmt.Errorf("resolve %s: no address", host)
		}
		var errs []error
		for _, ip := range ips {
			conn, err := dialer.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
			if err == nil {
				return conn, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
}

// Message is one delivery attempt's content.
type Message struct {
	// ID is the webhook-id header: the same on every attempt, so that a
	// receiver can drop a message it has already handled.
	ID     string
	URL    string
	Secret string
	Body   []byte
}

// Result is what an attempt got: the HTTP status (0 when there was no
// answer) and, unless the receiver answered 2xx, an error that says why.
type Result struct {
	Status int
	Err    error
}

// Send makes one attempt at a message, signed at now.
func (s *Sender) Send(ctx context.Context, m Message, now time.Time) Result {
	sig, err := Sign(m.Secret, m.ID, now, m.Body)
	if err != nil {
		return Result{Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return Result{Err: fmt.Errorf("build request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.ua)
	req.Header.Set("webhook-id", m.ID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(now.Unix(), 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.client.Do(req) // #nosec G107 G704 -- the URL is the partner's webhook, checked by CheckURL and guardDial
	if err != nil {
		return Result{Err: err}
	}
	defer resp.Body.Close()
	excerpt, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseRead))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return Result{Status: resp.StatusCode}
	}
	msg := fmt.Sprintf("the receiver answered %s", resp.Status)
	if loc := resp.Header.Get("Location"); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		msg += " (redirects are not followed; give the final URL)"
	}
	if len(excerpt) > 0 && utf8.Valid(excerpt) {
		msg += ": " + string(bytes.TrimSpace(excerpt))
	}
	return Result{Status: resp.StatusCode, Err: errors.New(msg)}
}
