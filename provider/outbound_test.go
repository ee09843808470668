package provider_test

import (
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// The outbound address policy: the provider's calls to URLs that clients
// choose refuse private and special addresses, checked on the address
// dialled.

// loopback are the prefixes that let the provider reach the tests'
// relying parties, which listen on loopback.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}

// loopbackRPs lets the provider's outbound calls reach relying parties
// the tests run on loopback, which the outbound address policy refuses by
// default.
func loopbackRPs(c *provider.Config) { c.OutboundAllow = append(c.OutboundAllow, loopback...) }

func TestOutboundAddressPolicy(t *testing.T) {
	const (
		refused = iota
		notifyOnly
		both
	)
	cases := []struct {
		addr string
		want int
	}{
		// Public unicast.
		{"8.8.8.8", both},
		{"1.1.1.1", both},
		{"9.255.255.255", both}, // just below 10.0.0.0/8
		{"11.0.0.0", both},      // just above
		{"172.15.255.255", both},
		{"172.32.0.0", both},
		{"100.63.255.255", both},
		{"100.128.0.0", both},
		{"169.253.255.255", both},
		{"223.255.255.255", both},
		{"2606:4700:4700::1111", both},
		{"2a00:1450:4001:81b::200e", both},
		{"::ffff:8.8.8.8", both},
		{"64:ff9b::808:808", both}, // NAT64 of 8.8.8.8
		{"2002:808:808::1", both},  // 6to4 of 8.8.8.8
		// Loopback, in every spelling.
		{"127.0.0.1", refused},
		{"127.255.255.254", refused},
		{"::1", refused},
		{"::ffff:127.0.0.1", refused},
		{"::127.0.0.1", refused}, // IPv4-compatible
		{"64:ff9b::7f00:1", refused},
		{"2002:7f00:1::1", refused},
		// Unspecified and "this network".
		{"0.0.0.0", refused},
		{"0.255.255.255", refused},
		{"::", refused},
		{"::ffff:0.0.0.0", refused},
		// Link-local: the cloud metadata service.
		{"169.254.169.254", refused},
		{"169.254.0.0", refused},
		{"169.254.255.255", refused},
		{"::ffff:169.254.169.254", refused},
		{"64:ff9b::a9fe:a9fe", refused},
		{"fe80::1", refused},
		{"fe80::1%eth0", refused},
		{"febf:ffff::1", refused},
		// Multicast and broadcast.
		{"224.0.0.1", refused},
		{"239.255.255.250", refused},
		{"255.255.255.255", refused},
		{"240.0.0.1", refused},
		{"ff02::1", refused},
		{"ff05::1:3", refused},
		{"2001::1", refused}, // Teredo
		// Private: the intranet, where relying parties take logouts.
		{"10.0.0.1", notifyOnly},
		{"10.255.255.255", notifyOnly},
		{"172.16.0.1", notifyOnly},
		{"172.31.255.255", notifyOnly},
		{"192.168.0.1", notifyOnly},
		{"192.168.255.255", notifyOnly},
		{"::ffff:192.168.1.1", notifyOnly},
		{"64:ff9b::a00:1", notifyOnly},
		{"2002:a00:1::1", notifyOnly},
		{"100.64.0.1", notifyOnly},
		{"100.127.255.255", notifyOnly},
		{"fc00::1", notifyOnly},
		{"fd12:3456:789a::1", notifyOnly},
		{"fec0::1", notifyOnly},
		{"64:ff9b:1::a00:1", notifyOnly},
		{"198.18.0.1", notifyOnly},
		// Other special-purpose ranges: no public documents there.
		{"192.0.0.8", notifyOnly},
		{"192.0.2.1", notifyOnly},
		{"198.51.100.7", notifyOnly},
		{"203.0.113.9", notifyOnly},
		{"192.88.99.1", notifyOnly},
		{"2001:db8::1", notifyOnly},
		{"3fff::1", notifyOnly},
		{"100::1", notifyOnly},  // discard-only, outside 2000::/3
		{"4000::1", notifyOnly}, // IPv6 outside 2000::/3 is not allocated
	}
	for _, tc := range cases {
		t.Run(tc.addr, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			if got, want := provider.OutboundPermits("fetch", nil, false, a), tc.want == both; got != want {
				t.Errorf("fetch permits %s: %v, want %v", a, got, want)
			}
			if got, want := provider.OutboundPermits("notify", nil, false, a), tc.want != refused; got != want {
				t.Errorf("notify permits %s: %v, want %v", a, got, want)
			}
		})
	}
	t.Run("the zero address", func(t *testing.T) {
		for _, purpose := range []string{"fetch", "notify"} {
			if provider.OutboundPermits(purpose, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, true, netip.Addr{}) {
				t.Errorf("%s permits the zero netip.Addr", purpose)
			}
		}
	})
}

func TestOutboundAllowList(t *testing.T) {
	p := netip.MustParsePrefix
	cases := []struct {
		name  string
		allow []netip.Prefix
		dev   bool
		addr  string
		want  bool // for both purposes
	}{
		{"private prefix allows its addresses", []netip.Prefix{p("10.0.0.0/8")}, false, "10.1.2.3", true},
		{"and their mapped form", []netip.Prefix{p("10.0.0.0/8")}, false, "::ffff:10.1.2.3", true},
		{"and their NAT64 form", []netip.Prefix{p("10.0.0.0/8")}, false, "64:ff9b::a01:203", true},
		{"not the neighbours", []netip.Prefix{p("169.254.169.0/24")}, false, "169.254.170.1", false},
		{"not loopback", []netip.Prefix{p("10.0.0.0/8")}, false, "127.0.0.1", false},
		{"a mapped prefix means its IPv4 prefix", []netip.Prefix{p("::ffff:10.0.0.0/104")}, false, "10.9.9.9", true},
		{"an unmasked prefix is masked", []netip.Prefix{p("10.1.2.3/8")}, false, "10.200.0.1", true},
		{"loopback when listed", loopback, false, "127.0.0.1", true},
		{"loopback IPv6 when listed", loopback, false, "::1", true},
		{"one address", []netip.Prefix{p("169.254.169.254/32")}, false, "169.254.169.254", true},
		{"its neighbour", []netip.Prefix{p("169.254.169.254/32")}, false, "169.254.169.253", false},
		{"an IPv6 prefix", []netip.Prefix{p("fd00:1::/32")}, false, "fd00:1::5", true},
		{"an IPv6 prefix, zoned address", []netip.Prefix{p("fe80::/10")}, false, "fe80::1%eth0", true},
		{"dev allows loopback", nil, true, "127.0.0.1", true},
		{"dev allows IPv6 loopback", nil, true, "::1", true},
		{"dev allows localhost's mapped form", nil, true, "::ffff:127.0.0.1", true},
		{"dev does not allow the metadata service", nil, true, "169.254.169.254", false},
		{"dev does not allow the unspecified address", nil, true, "0.0.0.0", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := netip.MustParseAddr(tc.addr)
			for _, purpose := range []string{"fetch", "notify"} {
				if got := provider.OutboundPermits(purpose, tc.allow, tc.dev, a); got != tc.want {
					t.Errorf("%s with %v (dev %v) permits %s: %v, want %v", purpose, tc.allow, tc.dev, a, got, tc.want)
				}
			}
		})
	}
	// Fetches stay off the rest of the intranet, in dev mode too.
	if provider.OutboundPermits("fetch", []netip.Prefix{p("10.0.0.0/8")}, false, netip.MustParseAddr("192.168.1.1")) {
		t.Error("allowing 10.0.0.0/8 permits fetches from 192.168.1.1")
	}
	if provider.OutboundPermits("fetch", nil, true, netip.MustParseAddr("10.0.0.1")) {
		t.Error("dev mode permits fetches from 10.0.0.1")
	}
}

// countingServer is a relying party's server that counts the connections
// made to it, so a test can tell that a refused call never reached it.
type countingServer struct {
	*httptest.Server
	conns atomic.Int64
}

func newCountingServer(t *testing.T, tls bool, h http.Handler) *countingServer {
	t.Helper()
	s := &countingServer{Server: httptest.NewUnstartedServer(h)}
	s.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			s.conns.Add(1)
		}
	}
	if tls {
		s.StartTLS()
	} else {
		s.Start()
	}
	t.Cleanup(s.Close)
	return s
}

// atLocalhost is u with its host 127.0.0.1 written localhost: a name
// that resolves to loopback.
func atLocalhost(u string) string { return strings.Replace(u, "127.0.0.1", "localhost", 1) }

// TestOutboundRequestURI: a provider built as serve builds it (default
// HTTP client, not in dev mode) does not fetch a request_uri on loopback,
// by address or by name, and answers invalid_request_uri at the client's
// redirect URI; allowed, dev mode, or with the embedder's own HTTP client
// it fetches and the flow goes on.
func TestOutboundRequestURI(t *testing.T) {
	key, jwks := rpKey(t)
	var object atomic.Value
	rp := newCountingServer(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/oauth-authz-req+jwt")
		_, _ = w.Write([]byte(object.Load().(string)))
	}))
	byAddr, byName := rp.URL+"/request.jwt", atLocalhost(rp.URL)+"/request.jwt"
	setUp := func(t *testing.T, opts ...func(*provider.Config)) (*env, *store.Client) {
		e := newEnv(t, opts...)
		c := webClient(e, func(c *store.Client) {
			c.ID = "by-reference"
			c.JWKS = jwks
			c.RequestObjectSigningAlg = "ES256"
			c.RequestURIs = []string{byAddr, byName}
		})
		_, challenge := pkce()
		object.Store(requestObject(t, key, map[string]any{
			"iss": c.ID, "aud": e.issuer(), "client_id": c.ID, "response_type": "code", "redirect_uri": rpRedirect,
			"scope": "openid", "state": "by-ref-state", "code_challenge": challenge, "code_challenge_method": "S256",
		}))
		return e, c
	}
	authorize := func(e *env, c *store.Client, uri string) *authResult {
		q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid"}, "request_uri": {uri}, "redirect_uri": {rpRedirect}}
		return newBrowser(t).authorize(e.issuer(), q)
	}

	t.Run("refused by default", func(t *testing.T) {
		e, c := setUp(t)
		for _, uri := range []string{byAddr, byName} {
			before := rp.conns.Load()
			res := authorize(e, c, uri)
			if res.Mode != "query" || res.Params.Get("error") != "invalid_request_uri" {
				t.Errorf("%s: %d %q %v %.300s, want invalid_request_uri at the redirect URI", uri, res.Status, res.Mode, res.Params, res.Body)
			}
			if n := rp.conns.Load() - before; n != 0 {
				t.Errorf("%s: the provider connected to the relying party %d times", uri, n)
			}
		}
	})
	allowed := []struct {
		name string
		opts []func(*provider.Config)
	}{
		{"allowed by OutboundAllow", []func(*provider.Config){loopbackRPs}},
		{"allowed in dev mode", []func(*provider.Config){func(c *provider.Config) { c.Dev = true }}},
		{"the embedder's HTTP client", []func(*provider.Config){func(c *provider.Config) { c.HTTPClient = rp.Client() }}},
	}
	for _, tc := range allowed {
		t.Run(tc.name, func(t *testing.T) {
			e, c := setUp(t, tc.opts...)
			before := rp.conns.Load()
			res := authorize(e, c, byAddr)
			mustCode(t, res)
			if res.Params.Get("state") != "by-ref-state" {
				t.Errorf("state = %q, want the request object's", res.Params.Get("state"))
			}
			if rp.conns.Load() == before {
				t.Error("the request object came from nowhere")
			}
		})
	}
}

// TestOutboundRedirectChecked: an allowed address that redirects to a
// refused one does not take the provider there.
func TestOutboundRedirectChecked(t *testing.T) {
	target := newCountingServer(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("eyJhbGciOiJub25lIn0.e30."))
	}))
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Skipf("cannot listen on a second loopback address: %v", err)
	}
	var redirected atomic.Int64
	hop := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		redirected.Add(1)
		http.Redirect(w, r, target.URL+"/request.jwt", http.StatusFound)
	}))
	hop.Listener.Close()
	hop.Listener = ln
	hop.Start()
	t.Cleanup(hop.Close)

	e := newEnv(t, func(c *provider.Config) { c.OutboundAllow = []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")} })
	c := webClient(e, func(c *store.Client) { c.RequestURIs = []string{hop.URL + "/request.jwt"} })
	q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid"}, "request_uri": {hop.URL + "/request.jwt"}, "redirect_uri": {rpRedirect}}
	res := newBrowser(t).authorize(e.issuer(), q)
	if res.Params.Get("error") != "invalid_request_uri" {
		t.Errorf("%d %q %v %.300s, want invalid_request_uri", res.Status, res.Mode, res.Params, res.Body)
	}
	if redirected.Load() == 0 {
		t.Fatal("the allowed address was not asked: the test proves nothing")
	}
	if n := target.conns.Load(); n != 0 {
		t.Errorf("the provider followed the redirect to 127.0.0.1 (%d connections)", n)
	}
}

// TestOutboundSectorIdentifier: dynamic registration with a
// sector_identifier_uri on loopback is refused with invalid_client_metadata
// without a connection; allowed, the document is fetched and the client
// registered.
func TestOutboundSectorIdentifier(t *testing.T) {
	sectors := newCountingServer(t, true, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode([]string{rpRedirect})
	}))
	roots := x509.NewCertPool()
	roots.AddCert(sectors.Certificate())
	open := func(c *provider.Config) { c.RegistrationPolicy = provider.RegistrationOpen }
	metadata := func(sector string) map[string]any {
		return map[string]any{"redirect_uris": []string{rpRedirect}, "subject_type": "pairwise", "sector_identifier_uri": sector}
	}

	e := newEnv(t, open, provider.TrustOutbound(roots))
	for _, sector := range []string{sectors.URL + "/sector.json", atLocalhost(sectors.URL) + "/sector.json"} {
		a := regCall(t, http.MethodPost, e.issuer()+"/oauth2/register", "", metadata(sector))
		wantOAuthError(t, a, http.StatusBadRequest, "invalid_client_metadata")
		if n := sectors.conns.Load(); n != 0 {
			t.Fatalf("%s: the provider connected to the sector server %d times", sector, n)
		}
	}

	e = newEnv(t, open, provider.TrustOutbound(roots), loopbackRPs)
	got := e.register(t, metadata(sectors.URL+"/sector.json"))
	if got["sector_identifier_uri"] != sectors.URL+"/sector.json" || sectors.conns.Load() == 0 {
		t.Errorf("registered %v after %d connections", got, sectors.conns.Load())
	}
}

// TestOutboundJWKSURI: a private_key_jwt client whose jwks_uri is on
// loopback fails authentication with 401 invalid_client, without a
// connection, and a request object signed for such a client is refused
// with invalid_request_object; allowed, its keys are fetched and it gets a
// token. A jwks_uri that does not answer is the client's failure too,
// never a server error.
func TestOutboundJWKSURI(t *testing.T) {
	key, jwks := rpKey(t)
	keys := newCountingServer(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	token := func(t *testing.T, e *env, clientID string) httpAnswer {
		t.Helper()
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {clientAssertion(t, key, clientID, e.issuer()+"/oauth2/token", "jti-"+clientID)}}
		req, err := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return do(t, req)
	}
	setUp := func(e *env, id, jwksURI string) {
		e.createClient(&store.Client{ID: id, GrantTypes: []string{"client_credentials"}, Scope: "api",
			TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256", JWKSURI: jwksURI}, "")
	}

	e := newEnv(t)
	setUp(e, "by-address", keys.URL+"/jwks.json")
	setUp(e, "by-name", atLocalhost(keys.URL)+"/jwks.json")
	for _, id := range []string{"by-address", "by-name"} {
		wantOAuthError(t, token(t, e, id), http.StatusUnauthorized, "invalid_client")
		if n := keys.conns.Load(); n != 0 {
			t.Fatalf("%s: the provider connected to the jwks_uri %d times", id, n)
		}
	}
	c := webClient(e, func(c *store.Client) {
		c.ID, c.JWKSURI, c.RequestObjectSigningAlg = "signs-requests", keys.URL+"/jwks.json", "ES256"
	})
	_, challenge := pkce()
	object := requestObject(t, key, map[string]any{
		"iss": c.ID, "aud": e.issuer(), "client_id": c.ID, "response_type": "code", "redirect_uri": rpRedirect,
		"scope": "openid", "state": "ro-state-0123", "code_challenge": challenge, "code_challenge_method": "S256",
	})
	q := url.Values{"client_id": {c.ID}, "response_type": {"code"}, "scope": {"openid"}, "redirect_uri": {rpRedirect}, "request": {object}}
	// The provider shows its error page for a bad request object (the
	// redirect URI it carries is not trusted yet) or redirects; either
	// way the error is invalid_request_object.
	res := newBrowser(t).authorize(e.issuer(), q)
	if res.Params.Get("error") != "invalid_request_object" && (res.Status != http.StatusBadRequest || !strings.Contains(res.Body, "invalid_request_object")) {
		t.Errorf("request object: %d %q %v %.300s, want invalid_request_object", res.Status, res.Mode, res.Params, res.Body)
	}
	if n := keys.conns.Load(); n != 0 {
		t.Fatalf("request object: the provider connected to the jwks_uri %d times", n)
	}

	e = newEnv(t, loopbackRPs)
	setUp(e, "allowed", keys.URL+"/jwks.json")
	if a := token(t, e, "allowed"); a.Status != http.StatusOK || keys.conns.Load() == 0 {
		t.Errorf("token: %d %s after %d connections", a.Status, a.Body, keys.conns.Load())
	}
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	setUp(e, "unreachable", gone.URL+"/jwks.json")
	wantOAuthError(t, token(t, e, "unreachable"), http.StatusUnauthorized, "invalid_client")
}

// TestOutboundBackchannelLogout: a back-channel logout to a loopback
// relying party is refused by default, never connected, and counted as
// failed at once; allowed, it is delivered.
func TestOutboundBackchannelLogout(t *testing.T) {
	logOut := func(t *testing.T, opts ...func(*provider.Config)) (*countingServer, map[string]float64) {
		reg := prometheus.NewRegistry()
		e := newEnv(t, append([]func(*provider.Config){fastLogouts(reg)}, opts...)...)
		rp := newCountingServer(t, false, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
		c := e.createClient(&store.Client{ID: "bc-app", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
			Scope: "openid", BackchannelLogoutURI: rp.URL + "/backchannel"}, testSecret)
		b := newBrowser(t)
		hint := e.signIn(b, c)
		if res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}})); res.Status != http.StatusOK {
			t.Fatalf("logout: %d %.300s", res.Status, res.Body)
		}
		e.run()
		waitFor(t, "the logout leaves the queue", func() bool { return len(queued(t, e.store)) == 0 })
		return rp, deliveries(t, reg)
	}
	t.Run("refused by default", func(t *testing.T) {
		rp, d := logOut(t)
		if d["failed"] != 1 || d["delivered"] != 0 || d["retry"] != 0 {
			t.Errorf("deliveries = %v, want one failed", d)
		}
		if n := rp.conns.Load(); n != 0 {
			t.Errorf("the provider connected to the relying party %d times", n)
		}
	})
	t.Run("allowed", func(t *testing.T) {
		rp, d := logOut(t, loopbackRPs)
		if d["delivered"] != 1 || d["failed"] != 0 || rp.conns.Load() == 0 {
			t.Errorf("deliveries = %v after %d connections, want one delivered", d, rp.conns.Load())
		}
	})
}

// TestJWKSRefetchLimited: assertions naming a kid the client's key set does
// not have make the provider fetch the set again past its cache, but not
// for every assertion: once, until jwksForcedRefreshEvery has passed.
func TestJWKSRefetchLimited(t *testing.T) {
	key, jwks := rpKey(t)
	jwks.Keys[0].KeyID = "not-the-kid-the-client-signs-with"
	var fetches atomic.Int32
	keys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	t.Cleanup(keys.Close)
	e := newEnv(t, loopbackRPs)
	e.createClient(&store.Client{ID: "unknown-kid", GrantTypes: []string{"client_credentials"}, Scope: "api",
		TokenEndpointAuthMethod: "private_key_jwt", TokenEndpointAuthSigningAlg: "ES256", JWKSURI: keys.URL + "/jwks.json"}, "")
	for i := range 5 {
		form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
			"client_assertion":      {clientAssertion(t, key, "unknown-kid", e.issuer()+"/oauth2/token", "jti-"+strconv.Itoa(i))}}
		req, err := http.NewRequest(http.MethodPost, e.issuer()+"/oauth2/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		wantOAuthError(t, do(t, req), http.StatusUnauthorized, "invalid_client")
	}
	// The first fetch, and one refetch for the unknown kid.
	if n := fetches.Load(); n != 2 {
		t.Errorf("the key set was fetched %d times for 5 assertions naming an unknown kid, want 2", n)
	}
}
