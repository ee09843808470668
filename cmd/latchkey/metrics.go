package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/latchkey-oidc/latchkey/provider/observe"
	"github.com/latchkey-oidc/latchkey/store"
)

// telemetry is what one serve process reports: one registry for the
// provider, the login app, the database pool, Go and the process, and the
// HTTP metrics of every listener.
type telemetry struct {
	reg    *prometheus.Registry
	http   *observe.HTTPMetrics
	log    *slog.Logger
	limits requestLimits
}

// requestLimits bound what a client may send to any listener.
type requestLimits struct {
	body    int64         // --max-body-bytes
	header  int           // --max-header-bytes
	timeout time.Duration // --request-timeout
}

func newTelemetry(s *settings, log *slog.Logger, st *store.Store) (*telemetry, error) {
	var limits requestLimits
	body, err := s.positiveInt("max-body-bytes")
	if err != nil {
		return nil, err
	}
	limits.body = int64(body)
	if limits.header, err = s.positiveInt("max-header-bytes"); err != nil {
		return nil, err
	}
	if limits.timeout, err = s.duration("request-timeout"); err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "latchkey_build_info",
		Help:        "Always 1; the version label says which Latchkey runs.",
		ConstLabels: prometheus.Labels{"version": version},
	})
	buildInfo.Set(1)
	for _, c := range []prometheus.Collector{
		buildInfo,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		st.PoolCollector(),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	hm, err := observe.NewHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &telemetry{reg: reg, http: hm, log: log, limits: limits}, nil
}

// listener serves h on ln as the listener called name, with health checks
// answered by ready, the access log, the HTTP metrics and the request
// limits.
func (t *telemetry) listener(name string, ln net.Listener, h http.Handler, ready func(context.Context) error) listener {
	return listener{name, ln, observe.Handler(h, observe.Options{
		Listener: name, Log: t.log, Metrics: t.http, Ready: ready, MaxBodyBytes: t.limits.body, RequestTimeout: t.limits.timeout,
	}), t.limits.header}
}

// metricsListener opens the --metrics-addr listener serving /metrics and
// the health checks, and with --pprof Go's profiles under /debug/pprof/,
// or returns nil when it is off. Scrapes are neither logged nor counted.
func (t *telemetry) metricsListener(s *settings, ready func(context.Context) error) ([]listener, error) {
	addr := s.get("metrics-addr")
	if addr == "" || addr == "off" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	profiles, err := s.bool("pprof")
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(t.reg, promhttp.HandlerOpts{
		ErrorLog: slog.NewLogLogger(t.log.Handler(), slog.LevelWarn),
	}))
	if profiles {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return []listener{{"metrics", ln, observe.Handler(mux, observe.Options{Listener: "metrics", Ready: ready, MaxBodyBytes: t.limits.body}), t.limits.header}}, nil
}
