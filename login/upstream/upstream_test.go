package upstream

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

const testRedirectURL = "https://login.latchkey.test/upstream/acme/callback"

// headerTransport marks every request as made with the client under test.
type headerTransport struct{}

func (headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set(clientHeader, "1")
	return http.DefaultTransport.RoundTrip(r)
}

func testConfig(op *fakeOP) Config {
	return Config{
		Name:         "acme",
		DisplayName:  "Sign in with Acme",
		Issuer:       op.issuer(),
		ClientID:     testClientID,
		ClientSecret: testClientSecret,
		HTTPClient:   &http.Client{Transport: headerTransport{}, Timeout: 10 * time.Second},
	}
}

func newUpstream(t *testing.T, cfg Config) *Upstream {
	t.Helper()
	u, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return u
}

// signIn is one sign-in: AuthURL, the browser's visit to the provider, and
// the code it brings back. It returns the code and the values the login app
// keeps for the callback.
func signIn(t *testing.T, u *Upstream) (code, nonce, verifier string) {
	t.Helper()
	state, nonce, verifier := NewState()
	authURL, err := u.AuthURL(context.Background(), testRedirectURL, state, nonce, verifier)
	if err != nil {
		t.Fatalf("AuthURL: %v", err)
	}
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(authURL)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: %s", resp.Status)
	}
	back, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := back.Query().Get("state"); got != state {
		t.Fatalf("state came back as %q, want %q", got, state)
	}
	return back.Query().Get("code"), nonce, verifier
}

func TestAuthURL(t *testing.T) {
	op := newFakeOP(t)
	tests := []struct {
		name      string
		scopes    []string
		wantScope string
	}{
		{"default scopes", nil, "openid email profile"},
		{"openid added", []string{"email"}, "openid email"},
		{"custom", []string{"openid", "groups"}, "openid groups"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(op)
			cfg.Scopes = tt.scopes
			u := newUpstream(t, cfg)
			state, nonce, verifier := NewState()
			raw, err := u.AuthURL(context.Background(), testRedirectURL, state, nonce, verifier)
			if err != nil {
				t.Fatal(err)
			}
			got, err := url.Parse(raw)
			if err != nil {
				t.Fatal(err)
			}
			if base := got.Scheme + "://" + got.Host + got.Path; base != op.issuer()+"/authorize" {
				t.Errorf("endpoint = %s", base)
			}
			sum := sha256.Sum256([]byte(verifier))
			want := map[string]string{
				"response_type":         "code",
				"client_id":             testClientID,
				"redirect_uri":          testRedirectURL,
				"scope":                 tt.wantScope,
				"state":                 state,
				"nonce":                 nonce,
				"code_challenge":        base64.RawURLEncoding.EncodeToString(sum[:]),
				"code_challenge_method": "S256",
			}
			q := got.Query()
			for k, v := range want {
				if q.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, q.Get(k), v)
				}
			}
			if q.Has("code_verifier") {
				t.Error("AuthURL reveals the code verifier")
			}
		})
	}
}

func TestExchange(t *testing.T) {
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	editClaims := func(f func(map[string]any)) func(*fakeOP) {
		return func(op *fakeOP) { op.idClaims = f }
	}
	tests := []struct {
		name     string
		provider func(op *fakeOP)                            // provider behaviour
		callback func(code, nonce, verifier *string)         // what the callback passes to Exchange
		wantErr  error                                       // sentinel, or nil
		check    func(t *testing.T, op *fakeOP, id Identity) // on success
	}{
		{
			name: "ok",
			check: func(t *testing.T, op *fakeOP, id Identity) {
				want := Identity{Issuer: op.issuer(), Subject: testSubject, Email: "ann@acme.test", EmailVerified: true, Name: "Ann Example", PreferredUsername: "ann"}
				got := id
				got.Claims = nil
				if !reflect.DeepEqual(got, want) {
					t.Errorf("identity = %+v, want %+v", got, want)
				}
				if id.Claims["sub"] != testSubject || id.Claims["aud"] != testClientID {
					t.Errorf("claims = %v", id.Claims)
				}
			},
		},
		{
			name:     "email_verified as a string",
			provider: editClaims(func(c map[string]any) { c["email_verified"] = "true" }),
			check: func(t *testing.T, _ *fakeOP, id Identity) {
				if !id.EmailVerified {
					t.Error("EmailVerified = false")
				}
			},
		},
		{
			name:     "unverified email",
			provider: editClaims(func(c map[string]any) { c["email_verified"] = false }),
			check: func(t *testing.T, _ *fakeOP, id Identity) {
				if id.Email != "ann@acme.test" || id.EmailVerified {
					t.Errorf("email = %q verified %v", id.Email, id.EmailVerified)
				}
			},
		},
		{name: "wrong nonce", callback: func(_, nonce, _ *string) { *nonce = "another-" + *nonce }, wantErr: ErrInvalidIDToken},
		{name: "no nonce in the ID token", provider: editClaims(func(c map[string]any) { delete(c, "nonce") }), wantErr: ErrInvalidIDToken},
		{name: "wrong audience", provider: editClaims(func(c map[string]any) { c["aud"] = "someone-else" }), wantErr: ErrInvalidIDToken},
		{name: "wrong issuer", provider: editClaims(func(c map[string]any) { c["iss"] = "https://evil.test" }), wantErr: ErrInvalidIDToken},
		{name: "expired", provider: editClaims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), wantErr: ErrInvalidIDToken},
		{name: "wrong access token hash", provider: editClaims(func(c map[string]any) { c["at_hash"] = "AAAAAAAAAAAAAAAAAAAAAA" }), wantErr: ErrInvalidIDToken},
		{name: "bad signature", provider: func(op *fakeOP) { op.signWith = otherKey }, wantErr: ErrInvalidIDToken},
		{name: "no ID token", provider: func(op *fakeOP) { op.noIDToken = true }, wantErr: ErrInvalidIDToken},
		{name: "PKCE mismatch", callback: func(_, _, verifier *string) { *verifier = strings.Repeat("x", 43) }, wantErr: ErrExchange},
		{name: "unknown code", callback: func(code, _, _ *string) { *code = "forged" }, wantErr: ErrExchange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newFakeOP(t)
			if tt.provider != nil {
				op.set(tt.provider)
			}
			u := newUpstream(t, testConfig(op))
			code, nonce, verifier := signIn(t, u)
			if tt.callback != nil {
				tt.callback(&code, &nonce, &verifier)
			}
			id, err := u.Exchange(context.Background(), testRedirectURL, code, verifier, nonce)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Exchange = %+v, %v; want %v", id, err, tt.wantErr)
				}
				t.Logf("Exchange: %v", err)
				if !strings.Contains(err.Error(), `"acme"`) {
					t.Errorf("error %q does not name the upstream", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if tt.check != nil {
				tt.check(t, op, id)
			}
		})
	}
}

func TestExchangeWrongClientSecret(t *testing.T) {
	op := newFakeOP(t)
	cfg := testConfig(op)
	u := newUpstream(t, cfg)
	code, nonce, verifier := signIn(t, u)
	cfg.ClientSecret = "wrong"
	wrong := newUpstream(t, cfg)
	if _, err := wrong.Exchange(context.Background(), testRedirectURL, code, verifier, nonce); !errors.Is(err, ErrExchange) {
		t.Fatalf("Exchange = %v, want ErrExchange", err)
	}
}

func TestExchangeUserInfo(t *testing.T) {
	noEmail := func(c map[string]any) {
		delete(c, "email")
		delete(c, "email_verified")
		delete(c, "name")
	}
	tests := []struct {
		name     string
		userinfo map[string]any
		want     Identity
	}{
		{
			name:     "same subject",
			userinfo: map[string]any{"sub": testSubject, "email": "ann@acme.test", "email_verified": true, "name": "Ann Example"},
			want:     Identity{Email: "ann@acme.test", EmailVerified: true, Name: "Ann Example"},
		},
		{
			name:     "email_verified as a string",
			userinfo: map[string]any{"sub": testSubject, "email": "ann@acme.test", "email_verified": "true"},
			want:     Identity{Email: "ann@acme.test", EmailVerified: true},
		},
		{
			name:     "another subject is ignored",
			userinfo: map[string]any{"sub": "someone-else", "email": "victim@acme.test", "email_verified": true, "name": "Victim"},
			want:     Identity{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			op := newFakeOP(t)
			op.set(func(op *fakeOP) {
				op.idClaims = noEmail
				op.userinfo = tt.userinfo
			})
			u := newUpstream(t, testConfig(op))
			code, nonce, verifier := signIn(t, u)
			id, err := u.Exchange(context.Background(), testRedirectURL, code, verifier, nonce)
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			if id.Subject != testSubject || id.Email != tt.want.Email || id.EmailVerified != tt.want.EmailVerified || id.Name != tt.want.Name {
				t.Errorf("identity = %+v, want email %q verified %v name %q", id, tt.want.Email, tt.want.EmailVerified, tt.want.Name)
			}
		})
	}
}

func TestDiscovery(t *testing.T) {
	t.Run("retried after failure, then cached", func(t *testing.T) {
		op := newFakeOP(t)
		op.set(func(op *fakeOP) { op.discoveryFailures = 1 })
		u := newUpstream(t, testConfig(op))
		state, nonce, verifier := NewState()
		if _, err := u.AuthURL(context.Background(), testRedirectURL, state, nonce, verifier); !errors.Is(err, ErrDiscovery) {
			t.Fatalf("first AuthURL = %v, want ErrDiscovery", err)
		}
		if _, err := u.AuthURL(context.Background(), testRedirectURL, state, nonce, verifier); err != nil {
			t.Fatalf("second AuthURL: %v", err)
		}
		code, nonce, verifier := signIn(t, u)
		if _, err := u.Exchange(context.Background(), testRedirectURL, code, verifier, nonce); err != nil {
			t.Fatalf("Exchange: %v", err)
		}
		op.set(func(op *fakeOP) {
			if op.discoveryHits != 2 {
				t.Errorf("discovery fetched %d times, want 2", op.discoveryHits)
			}
		})
	})
	t.Run("issuer mismatch", func(t *testing.T) {
		op := newFakeOP(t)
		op.set(func(op *fakeOP) { op.discoveryIssuer = "https://evil.test" })
		u := newUpstream(t, testConfig(op))
		state, nonce, verifier := NewState()
		if _, err := u.AuthURL(context.Background(), testRedirectURL, state, nonce, verifier); !errors.Is(err, ErrDiscovery) {
			t.Fatalf("AuthURL = %v, want ErrDiscovery", err)
		}
	})
	t.Run("concurrent first use", func(t *testing.T) {
		op := newFakeOP(t)
		u := newUpstream(t, testConfig(op))
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				code, nonce, verifier := signIn(t, u)
				if _, err := u.Exchange(context.Background(), testRedirectURL, code, verifier, nonce); err != nil {
					t.Errorf("Exchange: %v", err)
				}
			})
		}
		wg.Wait()
		op.set(func(op *fakeOP) {
			if op.discoveryHits != 1 {
				t.Errorf("discovery fetched %d times, want 1", op.discoveryHits)
			}
		})
	})
	t.Run("without the configured client", func(t *testing.T) {
		// The fake provider refuses requests not made with testConfig's
		// client; this shows that guard is real.
		op := newFakeOP(t)
		cfg := testConfig(op)
		cfg.HTTPClient = nil
		u := newUpstream(t, cfg)
		state, nonce, verifier := NewState()
		if _, err := u.AuthURL(context.Background(), testRedirectURL, state, nonce, verifier); !errors.Is(err, ErrDiscovery) {
			t.Fatalf("AuthURL = %v, want ErrDiscovery", err)
		}
	})
	t.Run("cancelled context", func(t *testing.T) {
		op := newFakeOP(t)
		u := newUpstream(t, testConfig(op))
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		state, nonce, verifier := NewState()
		if _, err := u.AuthURL(ctx, testRedirectURL, state, nonce, verifier); !errors.Is(err, ErrDiscovery) || !errors.Is(err, context.Canceled) {
			t.Fatalf("AuthURL = %v, want ErrDiscovery and context.Canceled", err)
		}
	})
}

func TestNewValidates(t *testing.T) {
	valid := Config{Name: "acme", Issuer: "https://acme.test", ClientID: "id", ClientSecret: "secret"}
	tests := []struct {
		name string
		edit func(c *Config)
		ok   bool
	}{
		{"valid", func(*Config) {}, true},
		{"http to loopback", func(c *Config) { c.Issuer = "http://127.0.0.1:5556/dex" }, true},
		{"http to localhost", func(c *Config) { c.Issuer = "http://localhost:5556" }, true},
		{"upper-case name", func(c *Config) { c.Name = "Acme" }, false},
		{"name with a slash", func(c *Config) { c.Name = "acme/x" }, false},
		{"empty name", func(c *Config) { c.Name = "" }, false},
		{"http to a remote host", func(c *Config) { c.Issuer = "http://acme.test" }, false},
		{"relative issuer", func(c *Config) { c.Issuer = "acme.test" }, false},
		{"issuer with a query", func(c *Config) { c.Issuer = "https://acme.test/?tenant=1" }, false},
		{"no client ID", func(c *Config) { c.ClientID = "" }, false},
		{"no client secret", func(c *Config) { c.ClientSecret = "" }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.edit(&cfg)
			if _, err := New(cfg); (err == nil) != tt.ok {
				t.Errorf("New = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

func TestNewState(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		state, nonce, verifier := NewState()
		if len(state) < 22 || len(nonce) < 22 || len(verifier) < 43 {
			t.Fatalf("short values %q %q %q", state, nonce, verifier)
		}
		for _, v := range []string{state, nonce, verifier} {
			if seen[v] {
				t.Fatalf("%q repeated", v)
			}
			seen[v] = true
		}
	}
}
