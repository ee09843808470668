package provider_test

import (
	"bytes"
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/latchkey-oidc/latchkey/provider"
	"github.com/latchkey-oidc/latchkey/store"
)

const deviceGrant = "urn:ietf:params:oauth:grant-type:device_code"

// deviceClient registers a public device client.
func (e *env) deviceClient(scope string) *store.Client {
	e.t.Helper()
	return e.createClient(&store.Client{
		GrantTypes: []string{deviceGrant, "refresh_token"},
		Scope:      scope,
	}, "")
}

// oauth2Config is the relying party's view of the provider, without
// discovery.
func (e *env) oauth2Config(clientID, secret string, style oauth2.AuthStyle, scopes ...string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: secret,
		Endpoint: oauth2.Endpoint{
			AuthURL:       e.issuer() + "/oauth2/auth",
			TokenURL:      e.issuer() + "/oauth2/token",
			DeviceAuthURL: e.issuer() + "/oauth2/device/auth",
			AuthStyle:     style,
		},
		RedirectURL: rpRedirect,
		Scopes:      scopes,
	}
}

// verifyIDToken checks an ID token with go-oidc against the provider's
// published keys.
func (e *env) verifyIDToken(clientID, raw string) *oidc.IDToken {
	e.t.Helper()
	var keys []crypto.PublicKey
	for _, k := range e.p.Keys().PublicKeys().Keys {
		keys = append(keys, k.Key)
	}
	v := oidc.NewVerifier(e.issuer(), &oidc.StaticKeySet{PublicKeys: keys},
		&oidc.Config{ClientID: clientID, SupportedSigningAlgs: e.p.Keys().Algs()})
	idt, err := v.Verify(context.Background(), raw)
	if err != nil {
		e.t.Fatalf("verify ID token: %v", err)
	}
	return idt
}

// postForm posts a form, with Basic credentials when user is set, and
// decodes the JSON answer.
func postForm(t testing.TB, u string, form url.Values, user, pass string) (int, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("POST %s: %d, not JSON: %q", u, resp.StatusCode, b)
	}
	return resp.StatusCode, out
}

// poll makes one device token request for a public client.
func (e *env) poll(clientID, deviceCode string) (int, map[string]any) {
	e.t.Helper()
	return postForm(e.t, e.issuer()+"/oauth2/token", url.Values{
		"grant_type": {deviceGrant}, "device_code": {deviceCode}, "client_id": {clientID},
	}, "", "")
}

// adminCall calls the admin API as the login app does and decodes the answer.
func (e *env) adminCall(method, path string, body any) (int, map[string]any, http.Header) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.admin.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			e.t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, b)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// acceptUserCode is the login app submitting a user code for a device
// challenge.
func (e *env) acceptUserCode(challenge, code string) (int, map[string]any) {
	e.t.Helper()
	status, out, _ := e.adminCall(http.MethodPut, "/admin/device/accept?challenge="+url.QueryEscape(challenge),
		map[string]string{"user_code": code})
	return status, out
}

// noFollow is a browser that stops at the first redirect, to see where
// the provider sends it.
func noFollow(jar http.CookieJar) *http.Client {
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func newJar(t testing.TB) http.CookieJar {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return jar
}

// startDeviceChallenge opens the verification page in a browser that
// stops before the login app, and returns the device challenge and that
// browser.
func (e *env) startDeviceChallenge(userCode string) (string, *http.Client) {
	e.t.Helper()
	c := noFollow(newJar(e.t))
	u := e.issuer() + "/oauth2/device"
	if userCode != "" {
		u += "?user_code=" + url.QueryEscape(userCode)
	}
	resp, err := c.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil || !strings.HasPrefix(loc.String(), e.login.srv.URL+"/device?") {
		e.t.Fatalf("verification page: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Query().Get("user_code"); got != userCode {
		e.t.Errorf("login app got user_code %q, want %q", got, userCode)
	}
	id := loc.Query().Get("device_challenge")
	if id == "" {
		e.t.Fatal("no device_challenge")
	}
	return id, c
}

func errorCode(out map[string]any) string {
	s, _ := out["error"].(string)
	return s
}

// TestDeviceFlow runs the device authorization grant end to end with
// golang.org/x/oauth2 as the device and a browser approving it: pending
// before approval, then an access token, a refresh token that works and an
// ID token go-oidc accepts; the device code works once.
func TestDeviceFlow(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.DevicePollInterval = 500 * time.Millisecond })
	ctx := context.Background()
	c := e.deviceClient("openid profile email offline_access")
	conf := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, oidc.ScopeOpenID, "profile", "offline_access")

	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatalf("device authorization: %v", err)
	}
	if da.VerificationURI != e.issuer()+"/oauth2/device" {
		t.Errorf("verification_uri = %q", da.VerificationURI)
	}
	if da.VerificationURIComplete != da.VerificationURI+"?user_code="+da.UserCode {
		t.Errorf("verification_uri_complete = %q", da.VerificationURIComplete)
	}
	if len(da.UserCode) != 8 || strings.Trim(da.UserCode, "BCDFGHJKLMNPQRSTVWXZ") != "" {
		t.Errorf("user_code = %q", da.UserCode)
	}
	if da.Interval != 1 {
		t.Errorf("interval = %d, want 1 (500ms rounded up)", da.Interval)
	}
	if time.Until(da.Expiry) < 9*time.Minute {
		t.Errorf("expires %v", da.Expiry)
	}

	if status, out := e.poll(c.ID, da.DeviceCode); status != http.StatusBadRequest || errorCode(out) != "authorization_pending" {
		t.Fatalf("poll before approval: %d %v", status, out)
	}

	b := newBrowser(t)
	res := b.get(da.VerificationURIComplete)
	if res.Status != http.StatusOK || !strings.Contains(res.Body, "Device connected") {
		t.Fatalf("verification: %d %s", res.Status, res.Body)
	}
	if got := e.login.seenKinds(); !slices.Equal(got, []string{"device", "login", "consent"}) {
		t.Errorf("login app saw %v", got)
	}
	if v := e.login.lastSeen("device"); v.UserCode != da.UserCode {
		t.Errorf("device challenge user_code = %q, want %q", v.UserCode, da.UserCode)
	}
	if v := e.login.lastSeen("consent"); !slices.Equal(v.RequestedScope, conf.Scopes) || v.Client == nil || v.Client.ID != c.ID {
		t.Errorf("consent view = %+v", v)
	}

	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	if tok.AccessToken == "" || tok.RefreshToken == "" {
		t.Fatalf("token = %+v", tok)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt := e.verifyIDToken(c.ID, raw)
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != alice.subject {
		t.Errorf("sub = %q", idt.Subject)
	}
	for _, name := range []string{"auth_time", "sid", "at_hash", "acr", "amr"} {
		if claims[name] == nil {
			t.Errorf("ID token lacks %s: %v", name, claims)
		}
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}

	// The refresh token works.
	tok.Expiry = time.Now().Add(-time.Minute)
	fresh, err := conf.TokenSource(ctx, tok).Token()
	if err != nil || fresh.AccessToken == "" || fresh.AccessToken == tok.AccessToken {
		t.Errorf("refresh: %v %+v", err, fresh)
	}

	// The device code is single-use.
	time.Sleep(600 * time.Millisecond)
	if status, out := e.poll(c.ID, da.DeviceCode); status != http.StatusBadRequest || errorCode(out) != "invalid_grant" {
		t.Errorf("reused device code: %d %v", status, out)
	}

	// A second device in the same browser needs no new sign-in.
	da2, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res := b.get(da2.VerificationURIComplete); res.Status != http.StatusOK {
		t.Fatalf("second verification: %d %s", res.Status, res.Body)
	}
	if got := e.login.seenKinds(); !slices.Equal(got[3:], []string{"device", "consent"}) {
		t.Errorf("second device flow: login app saw %v", got)
	}
	if _, err := conf.DeviceAccessToken(ctx, da2); err != nil {
		t.Errorf("second device access token: %v", err)
	}
}

// TestDeviceWithoutOpenID issues tokens without an ID token when openid
// was not asked for.
func TestDeviceWithoutOpenID(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.DevicePollInterval = 500 * time.Millisecond })
	ctx := context.Background()
	c := e.deviceClient("api:read")
	conf := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "api:read")
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res := newBrowser(t).get(da.VerificationURIComplete); res.Status != http.StatusOK {
		t.Fatalf("verification: %d %s", res.Status, res.Body)
	}
	tok, err := conf.DeviceAccessToken(ctx, da)
	if err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken == "" || tok.Extra("id_token") != nil || tok.RefreshToken != "" {
		t.Errorf("token = %+v id_token %v", tok, tok.Extra("id_token"))
	}
}

// TestDeviceSlowDown answers slow_down to a device polling faster than the
// interval (fosite never does by itself).
func TestDeviceSlowDown(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.DevicePollInterval = 300 * time.Millisecond })
	c := e.deviceClient("openid")
	da, err := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid").DeviceAuth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"authorization_pending", "slow_down"} {
		if status, out := e.poll(c.ID, da.DeviceCode); status != http.StatusBadRequest || errorCode(out) != want {
			t.Errorf("poll %d: %d %v, want %s", i+1, status, out, want)
		}
	}
	time.Sleep(350 * time.Millisecond)
	if status, out := e.poll(c.ID, da.DeviceCode); errorCode(out) != "authorization_pending" {
		t.Errorf("poll after the interval: %d %v", status, out)
	}
}

// TestDeviceDenied gives the device access_denied when the user says no at
// any step, and shows the user that the device was not connected.
func TestDeviceDenied(t *testing.T) {
	tests := []struct {
		name   string
		refuse func(d *loginDouble)
		kinds  []string
	}{
		{"device challenge rejected", func(d *loginDouble) {
			d.device = func(provider.ChallengeView) (string, bool) { return "", true }
		}, []string{"device"}},
		{"login rejected", func(d *loginDouble) {
			d.login = func(provider.ChallengeView) any { return provider.Rejection{Error: "access_denied"} }
		}, []string{"device", "login"}},
		{"consent rejected", func(d *loginDouble) {
			d.consent = func(provider.ChallengeView) any { return provider.Rejection{Error: "access_denied"} }
		}, []string{"device", "login", "consent"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, func(c *provider.Config) { c.DevicePollInterval = 500 * time.Millisecond })
			ctx := context.Background()
			c := e.deviceClient("openid")
			conf := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid")
			da, err := conf.DeviceAuth(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tt.refuse(e.login)
			res := newBrowser(t).get(da.VerificationURIComplete)
			if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "Device not connected") {
				t.Errorf("page: %d %s", res.Status, res.Body)
			}
			if got := e.login.seenKinds(); !slices.Equal(got, tt.kinds) {
				t.Errorf("login app saw %v, want %v", got, tt.kinds)
			}
			_, err = conf.DeviceAccessToken(ctx, da)
			var re *oauth2.RetrieveError
			if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
				t.Errorf("device access token: %v", err)
			}
		})
	}
}

// TestDeviceCodeExpired answers expired_token to a device whose user never
// decided before the code expired (fosite would say authorization_pending
// for ever), and refuses the expired user code.
func TestDeviceCodeExpired(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.DeviceCodeLifespan = time.Second })
	c := e.deviceClient("openid")
	da, err := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid").DeviceAuth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2100 * time.Millisecond)
	if status, out := e.poll(c.ID, da.DeviceCode); status != http.StatusBadRequest || errorCode(out) != "expired_token" {
		t.Errorf("poll after expiry: %d %v", status, out)
	}
	id, _ := e.startDeviceChallenge(da.UserCode)
	if status, out := e.acceptUserCode(id, da.UserCode); status != http.StatusBadRequest || errorCode(out) != "invalid_user_code" {
		t.Errorf("expired user code: %d %v", status, out)
	}
}

// TestDeviceWrongUserCode keeps the challenge usable after a wrong code,
// and accepts the right one however the user formats it.
func TestDeviceWrongUserCode(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.DevicePollInterval = 500 * time.Millisecond })
	ctx := context.Background()
	c := e.deviceClient("openid")
	conf := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid")
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The user opens verification_uri and types a wrong code: the login
	// app is told so (the double turns the 400 into a 502).
	e.login.device = func(provider.ChallengeView) (string, bool) { return "WRONG-CODE", false }
	b := newBrowser(t)
	if res := b.get(da.VerificationURI); res.Status != http.StatusBadGateway {
		t.Fatalf("wrong code: %d %s", res.Status, res.Body)
	}
	v := e.login.lastSeen("device")
	if v.UserCode != "" {
		t.Errorf("view has user_code %q without one in the URL", v.UserCode)
	}
	status, out := e.acceptUserCode(v.Challenge, "QQQQ QQQQ")
	if status != http.StatusBadRequest || errorCode(out) != "invalid_user_code" {
		t.Errorf("wrong code: %d %v", status, out)
	}
	if status, _, _ := e.adminCall(http.MethodGet, "/admin/device?challenge="+url.QueryEscape(v.Challenge), nil); status != http.StatusOK {
		t.Errorf("challenge after wrong codes: %d", status)
	}
	// The right code, typed in lower case with a dash.
	typed := strings.ToLower(da.UserCode[:4] + "-" + da.UserCode[4:])
	status, out = e.acceptUserCode(v.Challenge, typed)
	next, _ := out["redirect_to"].(string)
	if status != http.StatusOK || !strings.HasPrefix(next, e.issuer()+"/oauth2/device/continue?device_verifier=") {
		t.Fatalf("right code: %d %v", status, out)
	}
	// A decided challenge takes no more codes.
	if status, _ := e.acceptUserCode(v.Challenge, da.UserCode); status != http.StatusConflict {
		t.Errorf("second accept: %d", status)
	}
	if res := b.get(next); res.Status != http.StatusOK || !strings.Contains(res.Body, "Device connected") {
		t.Fatalf("continue: %d %s", res.Status, res.Body)
	}
	if _, err := conf.DeviceAccessToken(ctx, da); err != nil {
		t.Errorf("device access token: %v", err)
	}
	// The code is used now: another challenge cannot approve it again.
	id, _ := e.startDeviceChallenge(da.UserCode)
	if status, out := e.acceptUserCode(id, da.UserCode); status != http.StatusBadRequest || errorCode(out) != "invalid_user_code" {
		t.Errorf("used code: %d %v", status, out)
	}
}

// TestDeviceUserCodeGuessing limits wrong codes per challenge and over all
// challenges (RFC 8628 §5.1).
func TestDeviceUserCodeGuessing(t *testing.T) {
	t.Run("per challenge", func(t *testing.T) {
		e := newEnv(t)
		c := e.deviceClient("openid")
		da, err := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid").DeviceAuth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		id, browser := e.startDeviceChallenge("")
		for i := 1; i <= 4; i++ {
			if status, out := e.acceptUserCode(id, "QQQQQQQQ"); status != http.StatusBadRequest {
				t.Fatalf("wrong code %d: %d %v", i, status, out)
			}
		}
		status, out := e.acceptUserCode(id, "QQQQQQQQ")
		next, _ := out["redirect_to"].(string)
		if status != http.StatusTooManyRequests || errorCode(out) != "too_many_attempts" || next == "" {
			t.Fatalf("fifth wrong code: %d %v", status, out)
		}
		// The challenge is over, even for the right code.
		if status, out := e.acceptUserCode(id, da.UserCode); status != http.StatusConflict {
			t.Errorf("right code after the limit: %d %v", status, out)
		}
		resp, err := browser.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "Too many wrong codes") {
			t.Errorf("continue: %d %s", resp.StatusCode, body)
		}
		// The device itself was not refused, and a new challenge works.
		if _, out := e.poll(c.ID, da.DeviceCode); errorCode(out) != "authorization_pending" {
			t.Errorf("poll: %v", out)
		}
		id2, _ := e.startDeviceChallenge("")
		if status, out := e.acceptUserCode(id2, da.UserCode); status != http.StatusOK {
			t.Errorf("right code on a new challenge: %d %v", status, out)
		}
	})
	t.Run("all challenges", func(t *testing.T) {
		e := newEnv(t)
		c := e.deviceClient("openid")
		da, err := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid").DeviceAuth(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		// 100 wrong codes spread over challenges, 4 each.
		for n := 0; n < 25; n++ {
			id, _ := e.startDeviceChallenge("")
			for i := 0; i < 4; i++ {
				if status, out := e.acceptUserCode(id, "QQQQQQQQ"); status != http.StatusBadRequest {
					t.Fatalf("challenge %d, wrong code %d: %d %v", n, i, status, out)
				}
			}
		}
		id, _ := e.startDeviceChallenge(da.UserCode)
		status, out, h := e.adminCall(http.MethodPut, "/admin/device/accept?challenge="+url.QueryEscape(id),
			map[string]string{"user_code": da.UserCode})
		if status != http.StatusTooManyRequests || errorCode(out) != "too_many_attempts" || h.Get("Retry-After") == "" {
			t.Fatalf("right code while locked: %d %v %v", status, out, h)
		}
		if out["redirect_to"] != nil {
			t.Errorf("a global lock ended the challenge: %v", out)
		}
		if status, _, _ := e.adminCall(http.MethodGet, "/admin/device?challenge="+url.QueryEscape(id), nil); status != http.StatusOK {
			t.Errorf("challenge after the global lock: %d", status)
		}
	})
}

// TestDeviceBasicAuthClient accepts a confidential client that
// authenticates with HTTP Basic only (fosite wants client_id in the body),
// and writes the RFC 8628 response without fosite's stray "Header" key.
func TestDeviceBasicAuthClient(t *testing.T) {
	e := newEnv(t, func(c *provider.Config) { c.DevicePollInterval = 500 * time.Millisecond })
	ctx := context.Background()
	c := e.createClient(&store.Client{
		ID:         "device client/with space",
		GrantTypes: []string{deviceGrant},
		Scope:      "openid",
	}, testSecret)
	status, out := postForm(t, e.issuer()+"/oauth2/device/auth", url.Values{"scope": {"openid"}}, c.ID, testSecret)
	if status != http.StatusOK {
		t.Fatalf("device authorization: %d %v", status, out)
	}
	var keys []string
	for k := range out {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	want := []string{"device_code", "expires_in", "interval", "user_code", "verification_uri", "verification_uri_complete"}
	if !slices.Equal(keys, want) {
		t.Errorf("response keys = %v, want %v", keys, want)
	}
	b, _ := json.Marshal(out)
	var da oauth2.DeviceAuthResponse
	if err := json.Unmarshal(b, &da); err != nil {
		t.Fatal(err)
	}
	if res := newBrowser(t).get(da.VerificationURIComplete); res.Status != http.StatusOK {
		t.Fatalf("verification: %d %s", res.Status, res.Body)
	}
	tok, err := e.oauth2Config(c.ID, testSecret, oauth2.AuthStyleInHeader, "openid").DeviceAccessToken(ctx, &da)
	if err != nil {
		t.Fatalf("device access token: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	e.verifyIDToken(c.ID, raw)
}

// TestDeviceAuthorizationErrors answers bad device authorization requests
// with RFC 6749 errors, never a server error.
func TestDeviceAuthorizationErrors(t *testing.T) {
	e := newEnv(t)
	pub := e.deviceClient("openid")
	conf := e.createClient(&store.Client{ID: "confidential", GrantTypes: []string{deviceGrant}, Scope: "openid"}, testSecret)
	web := e.createClient(&store.Client{ID: "web", GrantTypes: []string{"authorization_code"}, Scope: "openid"}, "")
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		code       string
	}{
		{"unknown client", url.Values{"client_id": {"nobody"}}, "", "", http.StatusUnauthorized, "invalid_client"},
		{"wrong secret", url.Values{"scope": {"openid"}}, conf.ID, "wrong", http.StatusUnauthorized, "invalid_client"},
		{"client_id differs from Basic", url.Values{"client_id": {pub.ID}}, conf.ID, testSecret, http.StatusBadRequest, "invalid_request"},
		{"no device grant", url.Values{"client_id": {web.ID}}, "", "", http.StatusBadRequest, "unauthorized_client"},
		{"scope not allowed", url.Values{"client_id": {pub.ID}, "scope": {"admin"}}, "", "", http.StatusBadRequest, "invalid_scope"},
		{"empty body", url.Values{}, "", "", http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := postForm(t, e.issuer()+"/oauth2/device/auth", tt.form, tt.user, tt.pass)
			if status != tt.status || errorCode(out) != tt.code {
				t.Errorf("got %d %v, want %d %s", status, out, tt.status, tt.code)
			}
		})
	}
	resp, err := http.Get(e.issuer() + "/oauth2/device/auth")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", resp.StatusCode)
	}
}

// TestDeviceContinueChecks refuses continue links that are unknown, used,
// or opened in another browser than the one that started.
func TestDeviceContinueChecks(t *testing.T) {
	e := newEnv(t)
	c := e.deviceClient("openid")
	da, err := e.oauth2Config(c.ID, "", oauth2.AuthStyleInParams, "openid").DeviceAuth(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"/oauth2/device/continue", "/oauth2/device/continue?device_verifier=nope"} {
		if res := newBrowser(t).get(e.issuer() + u); res.Status != http.StatusBadRequest {
			t.Errorf("%s: %d", u, res.Status)
		}
	}
	id, _ := e.startDeviceChallenge(da.UserCode)
	status, out := e.acceptUserCode(id, da.UserCode)
	next, _ := out["redirect_to"].(string)
	if status != http.StatusOK {
		t.Fatalf("accept: %d %v", status, out)
	}
	res := newBrowser(t).get(next)
	if res.Status != http.StatusForbidden || !strings.Contains(res.Body, "another browser") {
		t.Errorf("continue in another browser: %d %s", res.Status, res.Body)
	}
	if e.login.seenKinds() != nil {
		t.Errorf("the other browser reached the login app: %v", e.login.seenKinds())
	}
	if _, out := e.poll(c.ID, da.DeviceCode); errorCode(out) != "authorization_pending" {
		t.Errorf("poll: %v", out)
	}
}
