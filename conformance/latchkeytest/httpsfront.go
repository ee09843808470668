package latchkeytest

import (
	"net/http"
	"net/url"
)

// HTTPSFront is an http.RoundTripper that stands in for a TLS-terminating
// proxy in front of a test server: a request for Host (the host of an https
// issuer) goes over plain HTTP to Target, while the client, its cookie jar
// above all, sees the https URL it asked for. Requests for other hosts go
// out unchanged. Tests use it to see what Latchkey does behind an https
// issuer (Secure cookies) without certificates.
type HTTPSFront struct {
	Host   string
	Target *url.URL
	// Next sends the requests; nil is http.DefaultTransport.
	Next http.RoundTripper
}

func (f HTTPSFront) RoundTrip(req *http.Request) (*http.Response, error) {
	next := f.Next
	if next == nil {
		next = http.DefaultTransport
	}
	if req.URL.Host != f.Host {
		return next.RoundTrip(req)
	}
	out := req.Clone(req.Context())
	out.URL.Scheme, out.URL.Host = f.Target.Scheme, f.Target.Host
	out.Host = f.Host
	return next.RoundTrip(out)
}
