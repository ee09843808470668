package provider_test

import (
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/store"
)

// signedOutPage is the page a browser ends on after a logout, with what a
// test reads from it.
type signedOutPage struct {
	status   int
	location string // set when the provider redirected to the relying party
	csp      map[string][]string
	frames   []string
	next     string // the continue link
	refresh  string // the meta refresh's content
	scripts  []string
	body     string
}

var (
	iframeSrc   = regexp.MustCompile(`<iframe[^>]* src="([^"]*)"`)
	continueRef = regexp.MustCompile(`<a id="continue" href="([^"]*)"`)
	metaRefresh = regexp.MustCompile(`<meta http-equiv="refresh" content="([^"]*)"`)
	inlineJS    = regexp.MustCompile(`(?s)<script>(.*?)</script>`)
)

// logoutPage follows u in b (through the login double) and reads the page
// it ends on.
func logoutPage(t *testing.T, b *browser, u string) signedOutPage {
	t.Helper()
	resp, err := b.client.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	pg := signedOutPage{status: resp.StatusCode, body: string(body), csp: map[string][]string{}}
	if resp.StatusCode/100 == 3 {
		pg.location = resp.Header.Get("Location")
		return pg
	}
	for _, d := range strings.Split(resp.Header.Get("Content-Security-Policy"), ";") {
		if f := strings.Fields(d); len(f) > 0 {
			pg.csp[f[0]] = f[1:]
		}
	}
	for _, m := range iframeSrc.FindAllStringSubmatch(pg.body, -1) {
		pg.frames = append(pg.frames, html.UnescapeString(m[1]))
	}
	if m := continueRef.FindStringSubmatch(pg.body); m != nil {
		pg.next = html.UnescapeString(m[1])
	}
	if m := metaRefresh.FindStringSubmatch(pg.body); m != nil {
		pg.refresh = html.UnescapeString(m[1])
	}
	for _, m := range inlineJS.FindAllStringSubmatch(pg.body, -1) {
		pg.scripts = append(pg.scripts, m[1])
	}
	return pg
}

// TestFrontchannelLogout signs in to three clients in one browser, two of
// them with a frontchannel_logout_uri, and logs out: the provider's page
// frames both URIs, adding iss and sid for the client that asked, lets its
// CSP frame exactly their origins, and continues to the registered
// post_logout_redirect_uri with state.
func TestFrontchannelLogout(t *testing.T) {
	e := newEnv(t)
	withSID := e.createClient(&store.Client{
		ID:                                "fc-sid",
		GrantTypes:                        []string{"authorization_code"},
		ResponseTypes:                     []string{"code"},
		Scope:                             "openid profile",
		PostLogoutRedirectURIs:            []string{loggedOut},
		FrontchannelLogoutURI:             "https://rp.example.test/fc-logout?app=a",
		FrontchannelLogoutSessionRequired: true,
	}, testSecret)
	plain := e.createClient(&store.Client{
		ID:                    "fc-plain",
		RedirectURIs:          []string{rpRedirect, "https://b.example.test:8443/cb"},
		GrantTypes:            []string{"authorization_code"},
		ResponseTypes:         []string{"code"},
		Scope:                 "openid profile",
		FrontchannelLogoutURI: "https://b.example.test:8443/logout",
	}, testSecret)
	none := e.logoutClient("no-fc", nil)

	signInAll := func(t *testing.T) (*browser, string, string) {
		b := newBrowser(t)
		hint := e.signIn(b, withSID)
		if !e.signedIn(b, plain) || !e.signedIn(b, none) {
			t.Fatal("the later sign-ins were not single sign-on")
		}
		claims, _ := e.idTokenClaims(hint)
		sid, _ := claims["sid"].(string)
		if sid == "" {
			t.Fatalf("no sid in the ID token: %v", claims)
		}
		return b, hint, sid
	}
	checkFrames := func(t *testing.T, pg signedOutPage, sid string) {
		t.Helper()
		if pg.status != http.StatusOK || len(pg.frames) != 2 {
			t.Fatalf("logout page: %d, frames %q, location %q\n%s", pg.status, pg.frames, pg.location, pg.body)
		}
		var withFrame string
		for _, f := range pg.frames {
			switch {
			case f == "https://b.example.test:8443/logout":
			case strings.HasPrefix(f, "https://rp.example.test/fc-logout?"):
				withFrame = f
			default:
				t.Errorf("unexpected frame %q", f)
			}
		}
		u, err := url.Parse(withFrame)
		if err != nil {
			t.Fatalf("frame %q: %v", withFrame, err)
		}
		q := u.Query()
		if len(q) != 3 || q.Get("app") != "a" || q.Get("iss") != e.issuer() || q.Get("sid") != sid {
			t.Errorf("frame %q: want its own app=a plus iss=%s and sid=%s", withFrame, e.issuer(), sid)
		}
		if got := pg.csp["frame-src"]; !sameSet(got, []string{"https://rp.example.test", "https://b.example.test:8443"}) {
			t.Errorf("CSP frame-src %q, want exactly the two frames' origins", got)
		}
		if got := pg.csp["frame-ancestors"]; !slices.Equal(got, []string{"'none'"}) {
			t.Errorf("CSP frame-ancestors %q, want 'none'", got)
		}
		if got := pg.csp["default-src"]; !slices.Equal(got, []string{"'none'"}) {
			t.Errorf("CSP default-src %q, want 'none'", got)
		}
	}

	t.Run("with post_logout_redirect_uri", func(t *testing.T) {
		b, hint, sid := signInAll(t)
		pg := logoutPage(t, b, e.logoutURL(url.Values{
			"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}, "state": {"fc-state"},
		}))
		checkFrames(t, pg, sid)
		want := loggedOut + "?state=fc-state"
		if pg.next != want {
			t.Errorf("continue link %q, want %q", pg.next, want)
		}
		if pg.refresh == "" || !strings.HasSuffix(pg.refresh, ";url="+want) {
			t.Errorf("meta refresh %q, want one to %q", pg.refresh, want)
		}
		// The page's one inline script, which continues once the frames
		// loaded, is the one its CSP allows.
		if len(pg.scripts) != 1 || !strings.Contains(pg.scripts[0], "location.replace") {
			t.Fatalf("scripts %q", pg.scripts)
		}
		sum := sha256.Sum256([]byte(pg.scripts[0]))
		if got := pg.csp["script-src"]; !slices.Equal(got, []string{"'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"}) {
			t.Errorf("CSP script-src %q does not allow exactly the page's script", got)
		}
		if e.sessionCookie(b) != "" || e.signedIn(b, withSID) {
			t.Error("still signed in after logout")
		}
	})

	t.Run("without post_logout_redirect_uri", func(t *testing.T) {
		b, _, sid := signInAll(t)
		pg := logoutPage(t, b, e.issuer()+"/oauth2/logout")
		checkFrames(t, pg, sid)
		if pg.next != "" || pg.refresh != "" || len(pg.scripts) != 0 || len(pg.csp["script-src"]) != 0 {
			t.Errorf("a page with nowhere to continue has a continue link %q, refresh %q, scripts %q, script-src %q",
				pg.next, pg.refresh, pg.scripts, pg.csp["script-src"])
		}
		if !strings.Contains(pg.body, "You are signed out") {
			t.Errorf("page: %s", pg.body)
		}
	})

	t.Run("no client with a frontchannel_logout_uri", func(t *testing.T) {
		b := newBrowser(t)
		hint := e.signIn(b, none)
		pg := logoutPage(t, b, e.logoutURL(url.Values{
			"id_token_hint": {hint}, "post_logout_redirect_uri": {loggedOut}, "state": {"s2"},
		}))
		if pg.status != http.StatusSeeOther || pg.location != loggedOut+"?state=s2" {
			t.Errorf("logout: %d to %q, want a direct 303 to the post_logout_redirect_uri", pg.status, pg.location)
		}
	})
}

// TestLogoutURIMetadata checks the logout URIs a client may register
// (Back-Channel Logout 1.0 §2.2, Front-Channel Logout 1.0 §2): absolute,
// no fragment, https unless to this machine, and for front-channel the
// scheme, host and port of a redirect URI.
func TestLogoutURIMetadata(t *testing.T) {
	e := newEnv(t)
	base := func(kv ...any) map[string]any {
		m := map[string]any{"redirect_uris": []string{"https://app.example.test/cb", "http://127.0.0.1:9000/cb"}}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name string
		meta map[string]any
		ok   bool
	}{
		{"back-channel with a query", base("backchannel_logout_uri", "https://api.example.test/bc?tenant=1", "backchannel_logout_session_required", true), true},
		{"back-channel to loopback over http", base("backchannel_logout_uri", "http://127.0.0.1:9001/bc"), true},
		{"back-channel over http elsewhere", base("backchannel_logout_uri", "http://api.example.test/bc"), false},
		{"back-channel relative", base("backchannel_logout_uri", "/bc"), false},
		{"back-channel with a fragment", base("backchannel_logout_uri", "https://api.example.test/bc#x"), false},
		{"back-channel session without URI", base("backchannel_logout_session_required", true), false},
		{"front-channel on a redirect URI's origin", base("frontchannel_logout_uri", "https://app.example.test/fc?x=1", "frontchannel_logout_session_required", true), true},
		{"front-channel with the default port spelled out", base("frontchannel_logout_uri", "https://APP.example.test:443/fc"), true},
		{"front-channel on loopback", base("frontchannel_logout_uri", "http://127.0.0.1:9000/fc"), true},
		{"front-channel on another host", base("frontchannel_logout_uri", "https://elsewhere.example.test/fc"), false},
		{"front-channel on another port", base("frontchannel_logout_uri", "http://127.0.0.1:9001/fc"), false},
		{"front-channel on another scheme", base("frontchannel_logout_uri", "http://app.example.test/fc"), false},
		{"front-channel with a fragment", base("frontchannel_logout_uri", "https://app.example.test/fc#x"), false},
		{"front-channel session without URI", base("frontchannel_logout_session_required", true), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := adminCall(t, e, http.MethodPost, "/admin/clients", tt.meta)
			switch {
			case tt.ok && a.Status != http.StatusCreated:
				t.Errorf("refused: %d %s", a.Status, a.Body)
			case !tt.ok && (a.Status != http.StatusBadRequest || a.JSON(t)["error"] != "invalid_client_metadata"):
				t.Errorf("answered %d %s, want 400 invalid_client_metadata", a.Status, a.Body)
			}
		})
	}
}
