package graphsim

import (
	"encoding/json"
	"net/http"
	"time"
)

// adminRoutes serve the simulator's own controls, so that a storm can be
// steered and checked from another process (the licenseops binary under
// test, a shell script) as well as through the Go methods.
func (s *Simulator) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /_sim/config", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, toWire(s.Config()))
	})
	mux.HandleFunc("PUT /_sim/config", s.handlePutConfig)
	mux.HandleFunc("GET /_sim/stats", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Stats())
	})
	mux.HandleFunc("GET /_sim/tenants/{id}", func(w http.ResponseWriter, r *http.Request) {
		st, ok := s.Tenant(r.PathValue("id"))
		if !ok {
			writeAdminError(w, http.StatusNotFound, "no such tenant")
			return
		}
		writeJSON(w, http.StatusOK, st)
	})
	mux.HandleFunc("POST /_sim/tenants/{id}/groups", s.handlePostGroup)
	mux.HandleFunc("POST /_sim/tenants/{id}/groups/{gid}/members", s.handlePostGroupMembers)
	mux.HandleFunc("POST /_sim/seed", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Seed(r.Body); err != nil {
			writeAdminError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /_sim/expire-tokens", func(w http.ResponseWriter, r *http.Request) {
		s.ExpireTokens()
		w.WriteHeader(http.StatusNoContent)
	})
}

// wireConfig is Config in JSON, durations as Go duration strings ("20ms").
type wireConfig struct {
	Latency             string  `json:"latency"`
	Jitter              string  `json:"jitter"`
	ThrottleRatio       float64 `json:"throttle_ratio"`
	RetryAfter          string  `json:"retry_after"`
	ErrorRatio          float64 `json:"error_ratio"`
	TimeoutRatio        float64 `json:"timeout_ratio"`
	HangFor             string  `json:"hang_for"`
	WriteQuotaPerSecond float64 `json:"write_quota_per_second"`
	AppWriteQuota       float64 `json:"app_write_quota_per_second"`
	TokenLifetime       string  `json:"token_lifetime"`
	RandSeed            uint64  `json:"rand_seed"`
}

func toWire(c Config) wireConfig {
	return wireConfig{
		Latency: c.Latency.String(), Jitter: c.Jitter.String(), ThrottleRatio: c.ThrottleRatio,
		RetryAfter: c.RetryAfter.String(), ErrorRatio: c.ErrorRatio, TimeoutRatio: c.TimeoutRatio,
		HangFor: c.HangFor.String(), WriteQuotaPerSecond: c.WriteQuotaPerSecond, AppWriteQuota: c.AppWriteQuotaPerSecond,
		TokenLifetime: c.TokenLifetime.String(), RandSeed: c.RandSeed,
	}
}

func fromWire(w wireConfig) (Config, error) {
	c := Config{ThrottleRatio: w.ThrottleRatio, ErrorRatio: w.ErrorRatio, TimeoutRatio: w.TimeoutRatio,
		WriteQuotaPerSecond: w.WriteQuotaPerSecond, AppWriteQuotaPerSecond: w.AppWriteQuota, RandSeed: w.RandSeed}
	for _, d := range []struct {
		s   string
		dst *time.Duration
	}{{w.Latency, &c.Latency}, {w.Jitter, &c.Jitter}, {w.RetryAfter, &c.RetryAfter}, {w.HangFor, &c.HangFor}, {w.TokenLifetime, &c.TokenLifetime}} {
		var err error
		if *d.dst, err = time.ParseDuration(d.s); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// handlePutConfig changes the knobs; fields left out keep their values.
func (s *Simulator) handlePutConfig(w http.ResponseWriter, r *http.Request) {
	wc := toWire(s.Config())
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&wc); err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	cfg, err := fromWire(wc)
	if err == nil {
		err = s.SetConfig(cfg)
	}
	if err != nil {
		writeAdminError(w, http.StatusBadRequest, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, toWire(s.Config()))
}

func writeAdminError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": "InvalidRequest", "message": msg}})
}
