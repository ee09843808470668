package provider_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

// logoutReceiver is a relying party's backchannel_logout_uri. It records
// every request and answers them with its statuses in turn, then 200.
type logoutReceiver struct {
	t   *testing.T
	srv *httptest.Server

	mu       sync.Mutex
	statuses []int
	got      []logoutRequest
}

// logoutRequest is one request the receiver got, and what it answered.
type logoutRequest struct {
	method, contentType string
	form                url.Values
	answered            int
}

func newLogoutReceiver(t *testing.T, statuses ...int) *logoutReceiver {
	rc := &logoutReceiver{t: t, statuses: statuses}
	rc.srv = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *logoutReceiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, "unreadable", http.StatusInternalServerError)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		form = nil
	}
	rc.mu.Lock()
	status := http.StatusOK
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	rc.got = append(rc.got, logoutRequest{method: r.Method, contentType: r.Header.Get("Content-Type"), form: form, answered: status})
	rc.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// answer makes the receiver answer status from now on.
func (rc *logoutReceiver) answer(status int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.statuses = nil
	for range 1000 {
		rc.statuses = append(rc.statuses, status)
	}
}

func (rc *logoutReceiver) requests() []logoutRequest {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.got)
}

// uri is the receiver's backchannel_logout_uri, with a query of its own,
// which the specification allows.
func (rc *logoutReceiver) uri() string { return rc.srv.URL + "/backchannel?tenant=t1" }

// fastLogouts makes the back-channel logout worker poll and retry within
// milliseconds and count into reg.
func fastLogouts(reg prometheus.Registerer) func(*provider.Config) {
	return func(c *provider.Config) {
		c.BackchannelLogout = provider.BackchannelLogoutConfig{
			PollInterval: 10 * time.Millisecond,
			RetryMin:     10 * time.Millisecond,
			RetryMax:     40 * time.Millisecond,
		}
		c.Registerer = reg
	}
}

// run starts the provider's background work until the returned stop is
// called or the test ends; stop returns once it has stopped.
func (e *env) run() (stop func()) {
	return runProvider(e.t, e.p)
}

func runProvider(t testing.TB, p *provider.Provider) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing t after a generous deadline.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// queued lists the back-channel logouts still queued in s.
func queued(t testing.TB, s *store.Store) []*store.BackchannelLogout {
	t.Helper()
	ls, err := s.ListBackchannelLogouts(context.Background())
	if err != nil {
		t.Fatalf("list queued logouts: %v", err)
	}
	return ls
}

// deliveries reads latchkey_backchannel_logout_deliveries_total by result.
func deliveries(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "latchkey_backchannel_logout_deliveries_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					out[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	if len(out) != 3 {
		t.Fatalf("deliveries counter has results %v, want delivered, retry and failed", out)
	}
	return out
}

// logoutClient registers a code-flow client whose backchannel_logout_uri is
// rc's, requiring sid.
func (e *env) logoutClient(id string, rc *logoutReceiver) *store.Client {
	e.t.Helper()
	c := &store.Client{
		ID:                     id,
		GrantTypes:             []string{"authorization_code"},
		ResponseTypes:          []string{"code"},
		Scope:                  "openid profile",
		PostLogoutRedirectURIs: []string{loggedOut},
	}
	if rc != nil {
		c.BackchannelLogoutURI = rc.uri()
		c.BackchannelLogoutSessionRequired = true
	}
	return e.createClient(c, testSecret)
}

// publishedKeys fetches the provider's JWKS as a relying party does.
func publishedKeys(t *testing.T, e *env) jose.JSONWebKeySet {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.issuer()+"/.well-known/jwks.json", nil)
	if err != nil {
		t.Fatal(err)
	}
	a := do(t, req)
	var set jose.JSONWebKeySet
	if a.Status != http.StatusOK || json.Unmarshal(a.Body, &set) != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS: %d %s", a.Status, a.Body)
	}
	return set
}

// checkLogoutRequest checks one back-channel logout request as a relying
// party must (Back-Channel Logout 1.0 §2.5, §2.6): a form POST carrying a
// logout token signed by a key in set, with typ logout+jwt, for clientID,
// naming sid and alice, with the logout event and without a nonce. It
// returns the token's claims.
func checkLogoutRequest(t *testing.T, e *env, set jose.JSONWebKeySet, req logoutRequest, clientID, sid string) map[string]any {
	t.Helper()
	return checkLogoutRequestFor(t, e, set, req, clientID, sid, alice.subject)
}

// checkLogoutRequestFor is checkLogoutRequest for a client that knows the
// user as sub.
func checkLogoutRequestFor(t *testing.T, e *env, set jose.JSONWebKeySet, req logoutRequest, clientID, sid, sub string) map[string]any {
	t.Helper()
	if req.method != http.MethodPost {
		t.Errorf("method %s, want POST", req.method)
	}
	if req.contentType != "application/x-www-form-urlencoded" {
		t.Errorf("Content-Type %q, want application/x-www-form-urlencoded", req.contentType)
	}
	if len(req.form) != 1 || len(req.form["logout_token"]) != 1 {
		t.Fatalf("form %v, want exactly one logout_token", req.form)
	}
	raw := req.form.Get("logout_token")
	jws, err := jose.ParseSigned(raw)
	if err != nil {
		t.Fatalf("parse logout token: %v", err)
	}
	hdr := jws.Signatures[0].Header
	if typ, _ := hdr.ExtraHeaders["typ"].(string); typ != "logout+jwt" {
		t.Errorf("typ header %q, want logout+jwt", typ)
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("logout token kid %q is not published once (%d)", hdr.KeyID, len(keys))
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("verify logout token: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	aud := claims["aud"]
	if list, ok := aud.([]any); ok && len(list) == 1 {
		aud = list[0]
	}
	iat, _ := claims["iat"].(float64)
	exp, _ := claims["exp"].(float64)
	events, _ := claims["events"].(map[string]any)
	event, isObject := events["http://schemas.openid.net/event/backchannel-logout"].(map[string]any)
	switch {
	case claims["iss"] != e.issuer():
		t.Errorf("iss %v, want %s", claims["iss"], e.issuer())
	case aud != clientID:
		t.Errorf("aud %v, want %s", claims["aud"], clientID)
	case iat == 0 || exp <= iat || exp-iat > 120:
		t.Errorf("iat %v exp %v: want a lifetime of at most two minutes", claims["iat"], claims["exp"])
	case claims["jti"] == nil || claims["jti"] == "":
		t.Errorf("no jti: %v", claims)
	case !isObject || len(event) != 0 || len(events) != 1:
		t.Errorf("events %v, want only the back-channel logout event with an empty object", claims["events"])
	case claims["sid"] != sid || sid == "":
		t.Errorf("sid %v, want %q", claims["sid"], sid)
	case claims["sub"] != sub || sub == "":
		t.Errorf("sub %v, want %q", claims["sub"], sub)
	}
	if _, ok := claims["nonce"]; ok {
		t.Errorf("the logout token has a nonce: %v", claims)
	}
	return claims
}

// TestBackchannelLogoutOnRPInitiatedLogout signs in to two clients in one
// browser, one with a backchannel_logout_uri, and logs out from it: exactly
// one logout token reaches that client, and it is valid.
func TestBackchannelLogoutOnRPInitiatedLogout(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, fastLogouts(reg), loopbackRPs)
	rc := newLogoutReceiver(t)
	withURI := e.logoutClient("bc-app", rc)
	without := e.logoutClient("plain-app", nil)
	b := newBrowser(t)
	hint := e.signIn(b, withURI)
	if !e.signedIn(b, without) {
		t.Fatal("the second client's sign-in was not single sign-on")
	}
	claims, _ := e.idTokenClaims(hint)
	sid, _ := claims["sid"].(string)
	if sid == "" {
		t.Fatalf("the ID token has no sid: %v", claims)
	}

	res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}, "state": {"bc-state"}}))
	if res.Mode != "query" || res.Params.Get("state") != "bc-state" {
		t.Fatalf("logout: %d %v %.300s", res.Status, res.Params, res.Body)
	}
	// Nothing has run the worker yet: the session's end queued exactly one
	// logout, for the client with a back-channel URI.
	q := queued(t, e.store)
	if len(q) != 1 || q[0].ClientID != withURI.ID || q[0].SID != sid || q[0].Subject != alice.subject {
		t.Fatalf("queued logouts: %+v", q)
	}
	if n := len(rc.requests()); n != 0 {
		t.Fatalf("%d logout requests before any worker ran", n)
	}

	e.run()
	waitFor(t, "the logout is delivered and leaves the queue", func() bool {
		return len(rc.requests()) > 0 && len(queued(t, e.store)) == 0
	})
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d logout requests, want 1: %+v", len(got), got)
	}
	lt := checkLogoutRequest(t, e, publishedKeys(t, e), got[0], withURI.ID, sid)
	if lt["jti"] != q[0].ID {
		t.Errorf("jti %v, want the queued %s", lt["jti"], q[0].ID)
	}
	if d := deliveries(t, reg); d["delivered"] != 1 || d["retry"] != 0 || d["failed"] != 0 {
		t.Errorf("deliveries counter = %v, want 1 delivered", d)
	}
}

// TestBackchannelLogoutRetries has the relying party fail first: the
// provider tries again, resending the same token claims, until it
// delivers.
func TestBackchannelLogoutRetries(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, fastLogouts(reg), loopbackRPs)
	rc := newLogoutReceiver(t, http.StatusInternalServerError, http.StatusServiceUnavailable, http.StatusOK)
	c := e.logoutClient("bc-app", rc)
	e.run()
	b := newBrowser(t)
	hint := e.signIn(b, c)
	claims, _ := e.idTokenClaims(hint)
	sid, _ := claims["sid"].(string)
	if res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}})); res.Status != http.StatusOK {
		t.Fatalf("logout: %d %.300s", res.Status, res.Body)
	}
	waitFor(t, "the logout is delivered", func() bool {
		got := rc.requests()
		return len(got) > 0 && got[len(got)-1].answered == http.StatusOK && len(queued(t, e.store)) == 0
	})
	got := rc.requests()
	if len(got) != 3 {
		t.Fatalf("%d logout requests, want 3 (500, 503, then 200): %+v", len(got), got)
	}
	set := publishedKeys(t, e)
	var jtis []any
	for _, req := range got {
		jtis = append(jtis, checkLogoutRequest(t, e, set, req, c.ID, sid)["jti"])
	}
	if jtis[0] != jtis[1] || jtis[1] != jtis[2] {
		t.Errorf("the retries carry other jtis: %v", jtis)
	}
	if d := deliveries(t, reg); d["retry"] != 2 || d["delivered"] != 1 || d["failed"] != 0 {
		t.Errorf("deliveries counter = %v, want 2 retries then 1 delivered", d)
	}
}

// TestBackchannelLogoutGivesUp stops retrying when the relying party says
// the request failed (400), and when the retry period ends.
func TestBackchannelLogoutGivesUp(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		giveUp    time.Duration
		wantRetry bool
	}{
		{"400 is final", http.StatusBadRequest, 0, false},
		{"the retry period ends", http.StatusServiceUnavailable, 300 * time.Millisecond, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			e := newEnv(t, fastLogouts(reg), loopbackRPs, func(c *provider.Config) { c.BackchannelLogout.GiveUpAfter = tt.giveUp })
			rc := newLogoutReceiver(t)
			rc.answer(tt.status)
			c := e.logoutClient("bc-app", rc)
			e.run()
			b := newBrowser(t)
			hint := e.signIn(b, c)
			if res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}})); res.Status != http.StatusOK {
				t.Fatalf("logout: %d %.300s", res.Status, res.Body)
			}
			waitFor(t, "the provider gives up", func() bool {
				return deliveries(t, reg)["failed"] == 1 && len(queued(t, e.store)) == 0
			})
			got := rc.requests()
			d := deliveries(t, reg)
			if d["delivered"] != 0 || float64(len(got)) != d["retry"]+1 {
				t.Errorf("deliveries counter = %v after %d requests", d, len(got))
			}
			if retried := d["retry"] > 0; retried != tt.wantRetry {
				t.Errorf("retried = %v, want %v (%d requests)", retried, tt.wantRetry, len(got))
			}
		})
	}
}

// TestBackchannelLogoutSurvivesRestart ends sessions while no provider can
// deliver their logouts, stops that provider and starts another on the same
// database: the logouts still arrive.
func TestBackchannelLogoutSurvivesRestart(t *testing.T) {
	// restart starts another provider on e's database with e's
	// configuration, which delivers to rc.
	restart := func(t *testing.T, e *env, rc *logoutReceiver) *provider.Provider {
		t.Helper()
		e.restart()
		runProvider(t, e.p)
		waitFor(t, "the second provider delivers the logout", func() bool {
			got := rc.requests()
			return len(got) > 0 && got[len(got)-1].answered == http.StatusOK && len(queued(t, e.store)) == 0
		})
		return e.p
	}
	t.Run("queued while no worker ran", func(t *testing.T) {
		e := newEnv(t, fastLogouts(prometheus.NewRegistry()), loopbackRPs)
		rc := newLogoutReceiver(t)
		c := e.logoutClient("bc-app", rc)
		b := newBrowser(t)
		hint := e.signIn(b, c)
		claims, _ := e.idTokenClaims(hint)
		if res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}})); res.Status != http.StatusOK {
			t.Fatalf("logout: %d %.300s", res.Status, res.Body)
		}
		if q := queued(t, e.store); len(q) != 1 || len(rc.requests()) != 0 {
			t.Fatalf("before the restart: %d requests, queue %+v", len(rc.requests()), q)
		}
		set := publishedKeys(t, e)
		p := restart(t, e, rc)
		got := rc.requests()
		if len(got) != 1 {
			t.Fatalf("%d logout requests, want 1", len(got))
		}
		if !sameKeys(set, p.Keys().PublicKeys()) {
			t.Error("the second provider publishes other keys")
		}
		checkLogoutRequest(t, e, set, got[0], c.ID, claims["sid"].(string))
	})
	t.Run("relying party down until after the restart", func(t *testing.T) {
		e := newEnv(t, fastLogouts(prometheus.NewRegistry()), loopbackRPs)
		rc := newLogoutReceiver(t)
		rc.answer(http.StatusServiceUnavailable)
		c := e.logoutClient("bc-app", rc)
		stop := e.run()
		b := newBrowser(t)
		hint := e.signIn(b, c)
		claims, _ := e.idTokenClaims(hint)
		if res := b.get(e.logoutURL(url.Values{"id_token_hint": {hint}})); res.Status != http.StatusOK {
			t.Fatalf("logout: %d %.300s", res.Status, res.Body)
		}
		waitFor(t, "the first provider tried", func() bool { return len(rc.requests()) > 0 })
		stop()
		if q := queued(t, e.store); len(q) != 1 || q[0].Attempts < 1 {
			t.Fatalf("after the first provider stopped: %+v", q)
		}
		tried := len(rc.requests())
		rc.answer(http.StatusOK)
		set := publishedKeys(t, e)
		restart(t, e, rc)
		got := rc.requests()
		if len(got) <= tried {
			t.Fatalf("%d requests, none after the restart", len(got))
		}
		first := checkLogoutRequest(t, e, set, got[0], c.ID, claims["sid"].(string))
		last := checkLogoutRequest(t, e, set, got[len(got)-1], c.ID, claims["sid"].(string))
		if first["jti"] != last["jti"] {
			t.Errorf("the delivered token's jti %v differs from the first attempt's %v", last["jti"], first["jti"])
		}
	})
}

// sameKeys reports whether two key sets hold the same key IDs.
func sameKeys(a, b jose.JSONWebKeySet) bool {
	ids := func(s jose.JSONWebKeySet) []string {
		var out []string
		for _, k := range s.Keys {
			out = append(out, k.KeyID)
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(ids(a), ids(b))
}

// TestBackchannelLogoutOnAdminRevocation revokes a subject's sessions
// through the admin API: each session's client gets a logout token naming
// that session.
func TestBackchannelLogoutOnAdminRevocation(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, fastLogouts(reg), loopbackRPs)
	rc := newLogoutReceiver(t)
	c := e.logoutClient("bc-app", rc)
	e.run()
	var sids []string
	for range 2 {
		claims, _ := e.idTokenClaims(e.signIn(newBrowser(t), c))
		sid, _ := claims["sid"].(string)
		sids = append(sids, sid)
	}
	if sids[0] == "" || sids[0] == sids[1] {
		t.Fatalf("two browsers, sids %q", sids)
	}
	a := adminCall(t, e, http.MethodDelete, "/admin/subjects/"+url.PathEscape(alice.subject)+"/sessions", nil)
	var revoked provider.SessionsRevoked
	adminDecode(t, a, http.StatusOK, &revoked)
	if !sameSet(revoked.SIDs, sids) {
		t.Fatalf("revoked %v, want %v", revoked.SIDs, sids)
	}
	waitFor(t, "both logouts are delivered", func() bool {
		return len(rc.requests()) >= 2 && len(queued(t, e.store)) == 0
	})
	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("%d logout requests, want 2", len(got))
	}
	set := publishedKeys(t, e)
	var delivered []string
	for _, req := range got {
		jws, err := jose.ParseSigned(req.form.Get("logout_token"))
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			SID string `json:"sid"`
		}
		if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
			t.Fatal(err)
		}
		checkLogoutRequest(t, e, set, req, c.ID, claims.SID)
		delivered = append(delivered, claims.SID)
	}
	if !sameSet(delivered, sids) {
		t.Errorf("logout tokens for sessions %v, want %v", delivered, sids)
	}
	if d := deliveries(t, reg); d["delivered"] != 2 {
		t.Errorf("deliveries counter = %v, want 2 delivered", d)
	}
}
