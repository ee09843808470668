package login_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/latchkey-oidc/latchkey/login"
	"github.com/latchkey-oidc/latchkey/login/upstream"
)

// upstreamLinkRe finds the "Sign in with …" link on the sign-in page.
var upstreamLinkRe = regexp.MustCompile(`href="([^"]*/login/upstream/acme\?[^"]*)"`)

// TestUpstreamSignIn signs in at one Latchkey through another Latchkey
// acting as the upstream OpenID provider: a real OIDC server with its own
// login app.
func TestUpstreamSignIn(t *testing.T) {
	for _, tc := range []struct {
		name        string
		linkByEmail bool
		localUser   bool // a local user with the upstream user's email exists
		wantLinked  bool // the upstream account is linked to that local user
	}{
		{"first sign-in creates the user", false, false, false},
		{"linked by verified email", true, true, true},
		{"email not linked unless configured", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := newEnv(t)
			upBob := up.createUser("bob", "bob's upstream passphrase")
			var upClient *rp
			down := newEnv(t, func(o *envOptions) {
				o.login = func(c *login.Config) {
					upClient = up.createClient(map[string]any{
						"client_name":   "Downstream Latchkey",
						"redirect_uris": []string{c.PublicURL + "/login/upstream/acme/callback"},
					})
					c.Upstreams = []upstream.Config{{
						Name: "acme", DisplayName: "Sign in with Acme", Issuer: up.issuer(),
						ClientID: upClient.ID, ClientSecret: upClient.Secret, LinkByEmail: tc.linkByEmail,
					}}
				}
			})
			var local string
			if tc.localUser {
				local = down.createUser("robert", "robert's local passphrase", func(u *storeUser) { u.Email = "bob@example.test" }).ID
			}
			c := down.createClient(nil)

			signInThroughAcme := func(b *browser) string {
				t.Helper()
				state, verifier := b.authorize(c)
				m := upstreamLinkRe.FindStringSubmatch(b.body)
				if m == nil {
					t.Fatalf("no Acme link on the sign-in page:\n%s", b.body)
				}
				b.get(unescape(m[1]))
				// The upstream's own sign-in page, then consent at the
				// upstream and here, where they are asked.
				b.signIn("bob", "bob's upstream passphrase")
				for b.has(`id="consent-form"`) {
					b.submit("consent-form", map[string]string{"decision": "allow", "remember": "1"})
				}
				_, idt := b.tokens(c, state, verifier)
				claims := claimsOf(t, idt)
				if amr := amrOf(t, claims); !slices.Contains(amr, "fed") {
					t.Fatalf("amr %v lacks fed", amr)
				}
				return idt.Subject
			}
			first := signInThroughAcme(newBrowser(t))
			if first == upBob.ID {
				t.Fatal("the downstream subject is the upstream's: accounts must be local")
			}
			if tc.wantLinked && first != local {
				t.Fatalf("signed in as %q, want the local user %q linked by email", first, local)
			}
			if !tc.wantLinked && first == local {
				t.Fatal("linked to the local user by email although linking is off")
			}
			u, err := down.store.GetUser(context.Background(), first)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.wantLinked && (u.Email != "bob@example.test" || !u.EmailVerified || u.PasswordHash != "") {
				t.Fatalf("created user %+v: want the upstream's verified email and no password", u)
			}
			ids, err := down.store.ListFederatedIdentities(context.Background(), first)
			if err != nil || len(ids) != 1 || ids[0].Provider != up.issuer() || ids[0].UpstreamSubject != upBob.ID {
				t.Fatalf("linked identities %+v, %v; want the upstream's issuer and subject", ids, err)
			}
			// Signing in again, from another browser, finds the same user.
			if again := signInThroughAcme(newBrowser(t)); again != first {
				t.Fatalf("second sign-in is %q, first was %q", again, first)
			}
		})
	}
}
