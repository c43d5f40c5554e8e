package graphsim

import (
	"errors"
	"flag"
	"time"
)

// Config holds the simulator's knobs. It can be changed while the simulator
// runs (Simulator.SetConfig, or PUT /_sim/config), which is how storm tests
// turn throttling on in the middle of a rollout.
//
// Faults hit Graph endpoints only, never the token endpoint, and are drawn
// once per call: a call is throttled with ThrottleRatio, fails with
// ErrorRatio, or times out with TimeoutRatio (these must add up to at most 1).
type Config struct {
	// Latency is added to every Graph call, plus a uniform random part of up to Jitter.
	Latency time.Duration
	Jitter  time.Duration
	// ThrottleRatio of calls get 429 with Retry-After: RetryAfter, and change nothing.
	ThrottleRatio float64
	// RetryAfter is the wait that throttled calls ask for, in whole seconds
	// (at least one, as Graph sends).
	RetryAfter time.Duration
	// ErrorRatio of calls get 503 (with Retry-After) or 500, half each, and change nothing.
	ErrorRatio float64
	// TimeoutRatio of calls never answer: the simulator makes the change and
	// then hangs until the client gives up (or HangFor passes, then 504).
	// The change having happened is the point: a caller that lost the answer
	// must find out what the directory holds before trying again.
	TimeoutRatio float64
	// HangFor bounds a simulated timeout, so that a client without a
	// timeout cannot hold a handler for ever.
	HangFor time.Duration
	// WriteQuotaPerSecond is each tenant's rate of writes (assignLicense,
	// PATCH), with one second's worth of burst, like Graph's write quota;
	// writes beyond it get 429 with the Retry-After that the quota implies.
	// 0 means unlimited.
	WriteQuotaPerSecond float64
	// AppWriteQuotaPerSecond is the app's rate of writes across all its
	// tenants (by the client ID of the token), with one second's worth of
	// burst, like Graph's 70,000 writes per 5 minutes per app. 0 means
	// unlimited.
	//
	// Like Graph's identity service, every answer to a write sent while the
	// tenant or the app has used more than 0.8 of its quota over the last
	// second carries x-ms-throttle-limit-percentage (the share used), and a
	// 429 of a quota names it in x-ms-throttle-scope.
	AppWriteQuotaPerSecond float64
	// TokenLifetime is the lifetime of issued access tokens.
	TokenLifetime time.Duration
	// RandSeed seeds the random draws (faults, jitter), so that a sequence
	// of calls meets the same faults on every run. Setting the config
	// restarts the sequence. Concurrent calls draw in arrival order, which
	// only sequential callers control.
	RandSeed uint64
}

// WithDefaults returns the config with every unset field at its default.
func (c Config) WithDefaults() Config {
	if c.RetryAfter <= 0 {
		c.RetryAfter = time.Second
	}
	if c.HangFor <= 0 {
		c.HangFor = 30 * time.Second
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = time.Hour
	}
	return c
}

func (c Config) validate() error {
	for _, r := range []float64{c.ThrottleRatio, c.ErrorRatio, c.TimeoutRatio} {
		if r < 0 || r > 1 {
			return errors.New("graphsim: ratios must be between 0 and 1")
		}
	}
	if c.ThrottleRatio+c.ErrorRatio+c.TimeoutRatio > 1 {
		return errors.New("graphsim: throttle, error and timeout ratios add up to more than 1")
	}
	if c.Latency < 0 || c.Jitter < 0 || c.WriteQuotaPerSecond < 0 || c.AppWriteQuotaPerSecond < 0 {
		return errors.New("graphsim: latency, jitter and write quota cannot be negative")
	}
	return nil
}

// RegisterFlags binds the knobs to command-line flags, for
// "licenseops-dev graphsim --latency 20ms --throttle 0.3 …". The flags' defaults
// are c's current values.
func (c *Config) RegisterFlags(fs *flag.FlagSet) {
	fs.DurationVar(&c.Latency, "latency", c.Latency, "fixed latency added to every Graph call")
	fs.DurationVar(&c.Jitter, "jitter", c.Jitter, "random latency of up to this much added to every Graph call")
	fs.Float64Var(&c.ThrottleRatio, "throttle", c.ThrottleRatio, "fraction of Graph calls answered 429 with Retry-After")
	fs.DurationVar(&c.RetryAfter, "retry-after", c.RetryAfter, "Retry-After of throttled calls (whole seconds)")
	fs.Float64Var(&c.ErrorRatio, "errors", c.ErrorRatio, "fraction of Graph calls answered 503 or 500")
	fs.Float64Var(&c.TimeoutRatio, "timeouts", c.TimeoutRatio, "fraction of Graph calls applied but never answered")
	fs.DurationVar(&c.HangFor, "hang-for", c.HangFor, "how long an unanswered call hangs at most")
	fs.Float64Var(&c.WriteQuotaPerSecond, "write-quota", c.WriteQuotaPerSecond, "writes per second per tenant before 429s (0: unlimited; Graph's is 20)")
	fs.Float64Var(&c.AppWriteQuotaPerSecond, "app-write-quota", c.AppWriteQuotaPerSecond, "writes per second per app across its tenants before 429s (0: unlimited; Graph's is about 233)")
	fs.DurationVar(&c.TokenLifetime, "token-lifetime", c.TokenLifetime, "lifetime of issued access tokens")
	fs.Uint64Var(&c.RandSeed, "rand-seed", c.RandSeed, "seed of the random fault and jitter draws")
}
