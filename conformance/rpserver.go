package conformance

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// rpServer is the runner's own web server, the part of a relying party the
// provider calls: it receives back-channel logout requests (OpenID Connect
// Back-Channel Logout 1.0 §2.5) at /backchannel_logout and serves the
// documents registered clients point at (jwks_uri, request_uri,
// sector_identifier_uri) under /doc/.
type rpServer struct {
	mux *http.ServeMux

	mu       sync.Mutex
	received []backchannelRequest
	arrived  chan struct{}
	docs     map[string]document
}

// document is something the runner serves.
type document struct {
	contentType string
	body        []byte
}

// backchannelRequest is one request the provider sent to the back-channel
// logout URI.
type backchannelRequest struct {
	method, contentType string
	form                url.Values
	err                 error
}

func newRPServer() *rpServer {
	s := &rpServer{arrived: make(chan struct{}, 1), docs: map[string]document{}, mux: http.NewServeMux()}
	s.mux.HandleFunc("/backchannel_logout", s.backchannelLogout)
	s.mux.HandleFunc("GET /doc/{id}", s.document)
	return s
}

// serve serves on ln until ctx ends.
func (s *rpServer) serve(ctx context.Context, ln net.Listener) {
	srv := &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
}

// publish serves body at path, replacing what was there.
func (s *rpServer) publish(path, contentType string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.docs[path] = document{contentType: contentType, body: body}
}

func (s *rpServer) document(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	d, ok := s.docs[r.URL.Path]
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", d.contentType)
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(d.body)
}

// backchannelLogout records the request and answers 200, as §2.8 asks of
// a relying party that logged the session out.
func (s *rpServer) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	req := backchannelRequest{method: r.Method, contentType: r.Header.Get("Content-Type")}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err == nil {
		req.form, err = url.ParseQuery(string(body))
	}
	req.err = err
	s.mu.Lock()
	s.received = append(s.received, req)
	s.mu.Unlock()
	select {
	case s.arrived <- struct{}{}:
	default:
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// waitBackchannel waits for a logout request carrying a logout token whose
// sid or sub matches, until the deadline.
func (s *rpServer) waitBackchannel(ctx context.Context, match func(backchannelRequest) bool, timeout time.Duration) (backchannelRequest, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		for _, r := range s.received {
			if match(r) {
				s.mu.Unlock()
				return r, nil
			}
		}
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return backchannelRequest{}, ctx.Err()
		case <-deadline.C:
			return backchannelRequest{}, errors.New("no back-channel logout request arrived")
		case <-s.arrived:
		}
	}
}
