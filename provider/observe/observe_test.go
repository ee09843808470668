package observe_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/provider/observe"
)

// logLines is a JSON log that tests read back line by line.
type logLines struct {
	latchkeytest.Output
}

func (l *logLines) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.String()), "\n") {
		if line == "" {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, rec)
	}
	return out
}

// server serves a small router through Handler, with a log and metrics.
type server struct {
	*httptest.Server
	log   *logLines
	reg   *prometheus.Registry
	ready error
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{log: &logLines{}, reg: prometheus.NewRegistry()}
	log := slog.New(observe.LogHandler(slog.NewJSONHandler(s.log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	m, err := observe.NewHTTPMetrics(s.reg)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	r.HandleFunc("/things/{id}", func(w http.ResponseWriter, r *http.Request) {
		log.InfoContext(r.Context(), "handling a thing")
		w.WriteHeader(http.StatusCreated)
	}).Methods(http.MethodPost)
	r.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	r.Use(observe.NameRoutes(func(t string) string { return "/base" + t }))
	s.Server = httptest.NewServer(observe.Handler(r, observe.Options{
		Listener: "public", Log: log, Metrics: m,
		Ready: func(context.Context) error { return s.ready },
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) do(t *testing.T, method, path string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, s.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestRequestIDsAndAccessLog(t *testing.T) {
	s := newServer(t)
	resp := s.do(t, http.MethodPost, "/things/42?code=secret-code-value")
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusCreated || len(id) != 24 {
		t.Fatalf("status %d, request ID %q", resp.StatusCode, id)
	}
	// A proxy's plain request ID is kept; anything else is replaced.
	if got := s.do(t, http.MethodPost, "/things/1", "X-Request-Id", "lb-0123456789").Header.Get("X-Request-Id"); got != "lb-0123456789" {
		t.Errorf("a plain incoming request ID became %q", got)
	}
	for _, bad := range []string{"short", "has space in it", "quote\"d-0123456789", strings.Repeat("x", 65)} {
		if got := s.do(t, http.MethodPost, "/things/1", "X-Request-Id", bad).Header.Get("X-Request-Id"); got == bad || len(got) != 24 {
			t.Errorf("incoming request ID %q became %q", bad, got)
		}
	}

	recs := s.log.records(t)
	var handled, access map[string]any
	for _, r := range recs {
		if r["request_id"] != id {
			continue
		}
		switch r["msg"] {
		case "handling a thing":
			handled = r
		case "request":
			access = r
		}
	}
	if handled == nil {
		t.Errorf("the handler's log line lacks the request ID %s: %v", id, recs)
	}
	if access == nil {
		t.Fatalf("no access log line with request ID %s: %v", id, recs)
	}
	for k, want := range map[string]any{
		"listener": "public", "method": "POST", "route": "/base/things/{id}", "path": "/things/42", "status": float64(201),
	} {
		if access[k] != want {
			t.Errorf("access log %s = %v, want %v", k, access[k], want)
		}
	}
	if strings.Contains(s.log.String(), "secret-code-value") {
		t.Error("the query string reached the log")
	}
}

// gatherSeries reads reg's series as "name label=value …" → value (a
// histogram's sample count).
func gatherSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			switch {
			case m.Counter != nil:
				got[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				got[key] = float64(m.Histogram.GetSampleCount())
			case m.Gauge != nil:
				got[key] = m.Gauge.GetValue()
			}
		}
	}
	return got
}

func TestHTTPMetricsByRoute(t *testing.T) {
	s := newServer(t)
	s.do(t, http.MethodPost, "/things/1")
	s.do(t, http.MethodPost, "/things/2")
	s.do(t, http.MethodGet, "/nowhere/abc")
	s.do(t, "BREW", "/things/3")

	got := gatherSeries(t, s.reg)
	for key, want := range map[string]float64{
		// Route templates, never raw paths: two IDs, one series.
		"latchkey_http_requests_total code=201 listener=public method=POST route=/base/things/{id}": 2,
		"latchkey_http_request_duration_seconds listener=public route=/base/things/{id}":            2,
		"latchkey_http_requests_total code=404 listener=public method=GET route=unmatched":          1,
		// An unknown method is bounded to "other".
		"latchkey_http_requests_total code=405 listener=public method=other route=unmatched": 1,
		"latchkey_http_requests_in_flight listener=public":                                   0,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (have %v)", key, got[key], want, got)
		}
	}
}

func TestHealth(t *testing.T) {
	s := newServer(t)
	for _, path := range []string{observe.PathAlive, observe.PathReady} {
		if resp := s.do(t, http.MethodGet, path); resp.StatusCode != http.StatusOK {
			t.Errorf("%s: %d", path, resp.StatusCode)
		}
	}
	s.ready = errors.New("database: connection refused")
	if resp := s.do(t, http.MethodGet, observe.PathReady); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("ready while the database is down: %d", resp.StatusCode)
	}
	// Alive says only that the process serves.
	if resp := s.do(t, http.MethodGet, observe.PathAlive); resp.StatusCode != http.StatusOK {
		t.Errorf("alive while the database is down: %d", resp.StatusCode)
	}
	resp, err := http.Get(s.URL + observe.PathReady)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body["status"] != "unavailable" || !strings.Contains(body["error"], "database") {
		t.Errorf("ready body %v (%v)", body, err)
	}
}

func TestPanicIsA500(t *testing.T) {
	s := newServer(t)
	resp := s.do(t, http.MethodGet, "/panic")
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("a panicking handler answered %d", resp.StatusCode)
	}
	id := resp.Header.Get("X-Request-Id")
	found := false
	for _, r := range s.log.records(t) {
		if r["msg"] == "handler panicked" && r["request_id"] == id && r["panic"] == "boom" {
			found = true
		}
	}
	if !found {
		t.Error("the panic was not logged with its request ID")
	}
}

// TestBodyLimit: a body declared longer than MaxBodyBytes is refused with
// 413 in the OAuth error shape before any handler runs; a longer body
// without a declared length fails to read in the handler; one within the
// bound arrives whole.
func TestBodyLimit(t *testing.T) {
	var read []byte
	var readErr error
	h := observe.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		read, readErr = io.ReadAll(r.Body)
		if readErr != nil {
			http.Error(w, "too long", http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}), observe.Options{MaxBodyBytes: 16})

	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(strings.Repeat("a", 17))))
	var out map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != http.StatusRequestEntityTooLarge ||
		out["error"] != "invalid_request" || !strings.Contains(out["error_description"], "16 bytes") {
		t.Errorf("declared 17 bytes: %d %s, want 413 invalid_request naming the bound", rec.Code, rec.Body)
	}
	if read != nil {
		t.Error("the handler ran for a body over the bound")
	}

	req := httptest.NewRequest(http.MethodPost, "/x", io.MultiReader(strings.NewReader(strings.Repeat("a", 17))))
	req.ContentLength = -1 // chunked: the length is not known before reading
	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var tooLarge *http.MaxBytesError
	if !errors.As(readErr, &tooLarge) || rec.Code != http.StatusBadRequest {
		t.Errorf("undeclared 17 bytes: read error %v, status %d; want the handler to fail reading", readErr, rec.Code)
	}

	rec = httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(strings.Repeat("a", 16))))
	if rec.Code != http.StatusNoContent || len(read) != 16 {
		t.Errorf("16 bytes: %d, read %d bytes; want them all", rec.Code, len(read))
	}
}

// TestRequestTimeout: with RequestTimeout every request's context has that
// deadline, so work that waits on it (the database) ends; without it there
// is none.
func TestRequestTimeout(t *testing.T) {
	for _, timeout := range []time.Duration{0, 50 * time.Millisecond} {
		var deadline time.Time
		var hasDeadline bool
		var ended error
		h := observe.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			deadline, hasDeadline = r.Context().Deadline()
			if hasDeadline {
				<-r.Context().Done() // a database call that does not answer
				ended = r.Context().Err()
			}
			w.WriteHeader(http.StatusNoContent)
		}), observe.Options{RequestTimeout: timeout})
		start := time.Now()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/x", nil))
		switch {
		case timeout == 0 && hasDeadline:
			t.Errorf("no RequestTimeout, yet the request has a deadline")
		case timeout > 0 && (!hasDeadline || deadline.Before(start.Add(timeout)) || deadline.After(time.Now())):
			t.Errorf("RequestTimeout %v: deadline %v (set: %v), want %v after the start", timeout, deadline, hasDeadline, timeout)
		case timeout > 0 && !errors.Is(ended, context.DeadlineExceeded):
			t.Errorf("RequestTimeout %v: the request's context ended with %v", timeout, ended)
		}
	}
}

// TestNameRoutesBefore: an answer given in front of the router (a refused
// authentication) is counted under the route the request asked for; a
// request for no route, or with a method the route does not take, stays
// unmatched.
func TestNameRoutesBefore(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := observe.NewHTTPMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	r.HandleFunc("/admin/things/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }).Methods(http.MethodGet)
	refuse := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUnauthorized) })
	h := observe.Handler(observe.NameRoutesBefore(r, nil)(refuse), observe.Options{Listener: "admin", Metrics: m})
	for _, req := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/admin/things/1", nil),
		httptest.NewRequest(http.MethodGet, "/admin/things/2", nil),
		httptest.NewRequest(http.MethodGet, "/admin/nothing", nil),
		httptest.NewRequest(http.MethodPost, "/admin/things/3", nil),
	} {
		h.ServeHTTP(httptest.NewRecorder(), req)
	}
	got := gatherSeries(t, reg)
	for key, want := range map[string]float64{
		"latchkey_http_requests_total code=401 listener=admin method=GET route=/admin/things/{id}": 2,
		"latchkey_http_requests_total code=401 listener=admin method=GET route=unmatched":          1,
		"latchkey_http_requests_total code=401 listener=admin method=POST route=unmatched":         1,
	} {
		if got[key] != want {
			t.Errorf("%s = %v, want %v (have %v)", key, got[key], want, got)
		}
	}
}
