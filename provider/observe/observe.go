// Package observe is what an operator sees of a running Latchkey server: a
// request ID on every request and on every log line written while serving
// it, an access log, HTTP metrics by route template, and the health
// endpoints. The provider and the login app name their routes with
// NameRoutes; cmd wraps each listener in Handler.
package observe

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/felixge/httpsnoop"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
)

// Health endpoint paths, served on every listener Handler wraps.
const (
	PathAlive = "/health/alive"
	PathReady = "/health/ready"
)

// routeUnmatched is the route label of requests no route matched.
const routeUnmatched = "unmatched"

// readyTimeout bounds one readiness check: a probe must get an answer
// before its own timeout, also when the database hangs.
const readyTimeout = 2 * time.Second

// HTTPMetrics are the per-route HTTP metrics of every listener of a process.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight *prometheus.GaugeVec
}

// NewHTTPMetrics builds the HTTP metrics and registers them with reg.
func NewHTTPMetrics(reg prometheus.Registerer) (*HTTPMetrics, error) {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_http_requests_total",
			Help: "HTTP requests answered, by listener, route template, method and status code.",
		}, []string{"listener", "route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "latchkey_http_request_duration_seconds",
			Help:    "Time from a request's arrival to its handler's return, by listener and route template.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"listener", "route"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "latchkey_http_requests_in_flight",
			Help: "HTTP requests being served, by listener.",
		}, []string{"listener"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.inFlight} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("http metrics: %w", err)
		}
	}
	return m, nil
}

// Options configure Handler for one listener.
type Options struct {
	// Listener names the listener in metrics and logs: public, admin,
	// login or metrics.
	Listener string
	// Log gets the access log, one line per request (health checks at
	// debug level). Nil logs nothing.
	Log *slog.Logger
	// Metrics records the requests; nil records none.
	Metrics *HTTPMetrics
	// Ready answers /health/ready: nil error means ready. Nil is always
	// ready.
	Ready func(context.Context) error
	// MaxBodyBytes bounds every request body; 0 means no bound. A request
	// that declares a longer body is answered 413 before any handler runs,
	// and reading past the bound fails in the handler.
	MaxBodyBytes int64
	// RequestTimeout is every request's deadline; 0 means none. Work that
	// honours the request's context (the database) gives up when it
	// passes, and the request is answered 503 temporarily_unavailable
	// rather than left hanging.
	RequestTimeout time.Duration
}

// Handler serves next on one listener: it answers the health endpoints
// itself, gives each request an ID (a sane incoming X-Request-Id, else a
// new one) that it returns in X-Request-Id and that LogHandler adds to
// every log line, turns a panic into a 500, and records the access log and
// the metrics under the route the inner router named (NameRoutes).
func Handler(next http.Handler, o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	var inFlight prometheus.Gauge
	if o.Metrics != nil {
		inFlight = o.Metrics.inFlight.WithLabelValues(o.Listener)
	}
	serve := func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathAlive:
			setRoute(r.Context(), PathAlive)
			writeHealth(w, nil)
		case PathReady:
			setRoute(r.Context(), PathReady)
			writeHealth(w, checkReady(r.Context(), o.Ready))
		default:
			next.ServeHTTP(w, r)
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &requestInfo{id: requestID(r.Header.Get("X-Request-Id"))}
		w.Header().Set("X-Request-Id", info.id)
		r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
		if inFlight != nil {
			inFlight.Inc()
			defer inFlight.Dec()
		}
		m := httpsnoop.CaptureMetrics(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			defer recoverPanic(w, r, o.Log)
			if o.MaxBodyBytes > 0 {
				if r.ContentLength > o.MaxBodyBytes {
					writeTooLarge(w, o.MaxBodyBytes)
					return
				}
				r.Body = http.MaxBytesReader(w, r.Body, o.MaxBodyBytes)
			}
			if o.RequestTimeout > 0 {
				ctx, cancel := context.WithTimeout(r.Context(), o.RequestTimeout)
				defer cancel()
				r = r.WithContext(ctx)
			}
			serve(w, r)
		}), w, r)

		route := info.route
		if route == "" {
			route = routeUnmatched
		}
		if o.Metrics != nil {
			o.Metrics.requests.WithLabelValues(o.Listener, route, method(r.Method), strconv.Itoa(m.Code)).Inc()
			o.Metrics.duration.WithLabelValues(o.Listener, route).Observe(m.Duration.Seconds())
		}
		level := slog.LevelInfo
		if route == PathAlive || route == PathReady {
			level = slog.LevelDebug
		}
		// The path, never the query: queries carry codes, tokens and
		// challenge IDs.
		o.Log.LogAttrs(r.Context(), level, "request",
			slog.String("listener", o.Listener),
			slog.String("method", r.Method),
			slog.String("route", route),
			slog.String("path", r.URL.Path),
			slog.Int("status", m.Code),
			slog.Int64("bytes", m.Written),
			slog.Float64("duration_ms", float64(m.Duration.Microseconds())/1000),
			slog.String("remote", r.RemoteAddr),
		)
	})
}

// recoverPanic turns a handler's panic into a logged 500, so one bad
// request neither drops the connection without an answer nor goes
// unnoticed. http.ErrAbortHandler keeps its meaning.
func recoverPanic(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	v := recover()
	if v == nil {
		return
	}
	if v == http.ErrAbortHandler {
		panic(v)
	}
	log.ErrorContext(r.Context(), "handler panicked", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusInternalServerError)
	_, _ = w.Write([]byte(`{"error":"server_error","error_description":"The server failed to handle the request."}` + "\n"))
}

// checkReady runs ready with a deadline.
func checkReady(ctx context.Context, ready func(context.Context) error) error {
	if ready == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	return ready(ctx)
}

// writeHealth answers a health check: 200 {"status":"ok"}, or 503 with
// what is wrong.
// writeTooLarge answers a request whose body is over the bound: 413, in
// the OAuth error shape every JSON endpoint uses, and the connection is
// closed rather than the body read.
func writeTooLarge(w http.ResponseWriter, limit int64) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	_ = json.NewEncoder(w).Encode(map[string]string{
		"error":             "invalid_request",
		"error_description": fmt.Sprintf("The request body is larger than the %d bytes this server accepts.", limit),
	})
}

func writeHealth(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	body := map[string]string{"status": "ok"}
	status := http.StatusOK
	if err != nil {
		body = map[string]string{"status": "unavailable", "error": err.Error()}
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// NameRoutes is a gorilla/mux middleware that names the matched route for
// the metrics and the access log: label turns the route's path template
// into the name (nil keeps the template).
func NameRoutes(label func(template string) string) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if route := mux.CurrentRoute(r); route != nil {
				nameRoute(r.Context(), route, label)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// NameRoutesBefore names the route router would match, for the handlers in
// front of router that may answer without it (an authentication check):
// their answers are counted under the route asked for, not as unmatched.
// label is as for NameRoutes.
func NameRoutesBefore(router *mux.Router, label func(template string) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var m mux.RouteMatch
			if router.Match(r, &m) && m.MatchErr == nil && m.Route != nil {
				nameRoute(r.Context(), m.Route, label)
			}
			next.ServeHTTP(w, r)
		})
	}
}

// nameRoute names the request ctx belongs to after route's path template,
// through label when it is not nil.
func nameRoute(ctx context.Context, route *mux.Route, label func(template string) string) {
	t, err := route.GetPathTemplate()
	if err != nil {
		return
	}
	if label != nil {
		t = label(t)
	}
	setRoute(ctx, t)
}

// requestInfo is what Handler keeps about a request in its context. The
// route is set by the router inside, after Handler has passed the request
// on, hence a pointer.
type requestInfo struct {
	id    string
	route string
}

type infoKey struct{}

func setRoute(ctx context.Context, route string) {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		info.route = route
	}
}

// RequestID returns the ID Handler gave the request ctx belongs to, or "".
func RequestID(ctx context.Context) string {
	if info, ok := ctx.Value(infoKey{}).(*requestInfo); ok {
		return info.id
	}
	return ""
}

// requestID keeps an incoming ID a proxy set if it is short and plain,
// else makes a new one: a client must not be able to put arbitrary text
// into every log line.
func requestID(incoming string) string {
	if n := len(incoming); n >= 8 && n <= 64 {
		ok := true
		for _, c := range []byte(incoming) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
				ok = false
				break
			}
		}
		if ok {
			return incoming
		}
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// method bounds the method label: anything unusual is "other".
func method(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete,
		http.MethodPatch, http.MethodOptions:
		return m
	}
	return "other"
}

// LogHandler adds the request_id of the request being served to every
// record logged with its context.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, rec slog.Record) error {
	if id := RequestID(ctx); id != "" {
		rec.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, rec)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs)}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name)}
}
