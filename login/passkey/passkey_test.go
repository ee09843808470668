package passkey

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey-oidc/latchkey/store"
)

const (
	testRPID   = "localhost"
	testOrigin = "http://localhost:8080"
)

func newTestPasskeys(t testing.TB) *Passkeys {
	t.Helper()
	p, err := New(Config{RPID: testRPID, Origins: []string{testOrigin}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func newAccount(id, username string) Account {
	return Account{User: &store.User{
		ID:       id,
		Username: username,
		Profile:  json.RawMessage(`{"name":"Alice Liddell","given_name":"Alice"}`),
	}}
}

func alice() Account { return newAccount("6f1c2b9e-0c59-4f5e-9a59-1b7d4c0c8a11", "alice") }

// register runs a registration ceremony with auth and adds the credential
// to a, as the login app would after storing it.
func register(t testing.TB, p *Passkeys, a *Account, auth *authenticator) store.WebAuthnCredential {
	t.Helper()
	options, state, err := p.BeginRegistration(*a)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	nc, err := p.FinishRegistration(*a, state, auth.create(t, options))
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	c := store.WebAuthnCredential{ID: nc.ID, UserID: a.User.ID, Name: "key", Credential: nc.Credential, SignCount: nc.SignCount}
	a.Credentials = append(a.Credentials, c)
	return c
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"localhost", Config{RPID: "localhost", Origins: []string{"http://localhost:8080"}}, ""},
		{"subdomain origin", Config{RPID: "example.com", Origins: []string{"https://id.example.com", "https://example.com/"}}, ""},
		{"no RP ID", Config{Origins: []string{"https://example.com"}}, "RP ID is empty"},
		{"IPv4 RP ID", Config{RPID: "127.0.0.1", Origins: []string{"http://127.0.0.1:8080"}}, "IP address"},
		{"IPv6 RP ID", Config{RPID: "[::1]", Origins: []string{"http://[::1]:8080"}}, "IP address"},
		{"no origins", Config{RPID: "example.com"}, "no origins"},
		{"origin elsewhere", Config{RPID: "example.com", Origins: []string{"https://example.org"}}, "not on RP ID"},
		{"origin suffix only", Config{RPID: "example.com", Origins: []string{"https://badexample.com"}}, "not on RP ID"},
		{"origin with path", Config{RPID: "example.com", Origins: []string{"https://example.com/login"}}, "not scheme://host"},
		{"origin without scheme", Config{RPID: "example.com", Origins: []string{"example.com"}}, "not scheme://host"},
		{"negative timeout", Config{RPID: "example.com", Origins: []string{"https://example.com"}, Timeout: -time.Second}, "negative timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				if p.timeout != DefaultTimeout {
					t.Errorf("timeout = %v, want %v", p.timeout, DefaultTimeout)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestRegistration(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	auth1 := newAuthenticator(testOrigin)
	first := register(t, p, &a, auth1)

	// A second registration must exclude the first credential.
	options, state, err := p.BeginRegistration(a)
	if err != nil {
		t.Fatalf("BeginRegistration: %v", err)
	}
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		t.Fatalf("options are not {publicKey: ...}: %v\n%s", err, options)
	}
	pk := o.PublicKey
	checks := []struct {
		name      string
		got, want any
	}{
		{"rp.id", pk.RP.ID, testRPID},
		{"rp.name", pk.RP.Name, "Latchkey"},
		{"user.id", pk.User.ID, b64.EncodeToString([]byte(a.User.ID))},
		{"user.name", pk.User.Name, "alice"},
		{"user.displayName", pk.User.DisplayName, "Alice Liddell"},
		{"residentKey", pk.AuthenticatorSelection.ResidentKey, "preferred"},
		{"requireResidentKey false", pk.AuthenticatorSelection.RequireResidentKey != nil && !*pk.AuthenticatorSelection.RequireResidentKey, true},
		{"attestation", pk.Attestation, "none"},
		{"userVerification", pk.AuthenticatorSelection.UserVerification, "preferred"},
		{"timeout", pk.Timeout, int(DefaultTimeout / time.Millisecond)},
		{"excluded", len(pk.ExcludeCredentials), 1},
		{"challenge length", len(pk.Challenge) >= 43 && !strings.ContainsAny(pk.Challenge, "+/="), true},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if len(pk.ExcludeCredentials) == 1 && pk.ExcludeCredentials[0].ID != first.ID {
		t.Errorf("excluded %q, want %q", pk.ExcludeCredentials[0].ID, first.ID)
	}

	// A second authenticator registers a second credential.
	auth2 := newAuthenticator(testOrigin)
	nc, err := p.FinishRegistration(a, state, auth2.create(t, options))
	if err != nil {
		t.Fatalf("FinishRegistration: %v", err)
	}
	if want := b64.EncodeToString(auth2.creds[0].id); nc.ID != want || nc.ID == first.ID {
		t.Errorf("ID = %q, want %q", nc.ID, want)
	}
	var c webauthn.Credential
	if err := json.Unmarshal(nc.Credential, &c); err != nil {
		t.Fatalf("credential is not go-webauthn JSON: %v", err)
	}
	if b64.EncodeToString(c.ID) != nc.ID || len(c.PublicKey) == 0 || nc.SignCount != 0 || c.AttestationFormat != "none" {
		t.Errorf("credential = %+v, sign count %d", c, nc.SignCount)
	}
	if len(c.Transport) != 1 || c.Transport[0] != "usb" {
		t.Errorf("transports = %v, want [usb]", c.Transport)
	}

	// The authenticator holding the first credential refuses, as a
	// browser would, so excludeCredentials names it.
	if _, err := auth1.tryCreate(options); err == nil {
		t.Error("authenticator created a credential despite excludeCredentials")
	}
}

// newAuthenticatorWith returns an authenticator holding the credential
// registered as c by from.
func newAuthenticatorWith(c store.WebAuthnCredential, from *authenticator) *authenticator {
	a := newAuthenticator(from.origin)
	for _, vc := range from.creds {
		if b64.EncodeToString(vc.id) == c.ID {
			a.creds = append(a.creds, vc)
		}
	}
	return a
}

func TestSecondFactorLogin(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	cred := register(t, p, &a, auth)

	for i := range 3 {
		options, state, err := p.BeginLogin(a)
		if err != nil {
			t.Fatalf("BeginLogin: %v", err)
		}
		var o requestOptions
		if err := json.Unmarshal(options, &o); err != nil {
			t.Fatalf("options are not {publicKey: ...}: %v\n%s", err, options)
		}
		if o.PublicKey.RPID != testRPID || o.PublicKey.UserVerification != "preferred" ||
			len(o.PublicKey.AllowCredentials) != 1 || o.PublicKey.AllowCredentials[0].ID != cred.ID ||
			!slices.Equal(o.PublicKey.AllowCredentials[0].Transports, []string{"usb"}) {
			t.Fatalf("options = %s", options)
		}
		got, err := p.FinishLogin(a, state, auth.get(t, options))
		if err != nil {
			t.Fatalf("FinishLogin %d: %v", i, err)
		}
		if got.CredentialID != cred.ID || got.SignCount != uint32(i+1) {
			t.Errorf("login %d: credential %q, sign count %d", i, got.CredentialID, got.SignCount)
		}
		var c webauthn.Credential
		if err := json.Unmarshal(got.Credential, &c); err != nil || c.Authenticator.SignCount != got.SignCount || c.Authenticator.CloneWarning {
			t.Errorf("login %d: credential JSON %s (%v)", i, got.Credential, err)
		}
		// As the store would record it.
		a.Credentials[0].SignCount = got.SignCount
		a.Credentials[0].Credential = got.Credential
	}
}

func TestConcurrentUse(t *testing.T) {
	p := newTestPasskeys(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			a := newAccount(fmt.Sprintf("00000000-0000-4000-8000-%012d", i), fmt.Sprint("user", i))
			auth := newAuthenticator(testOrigin)
			options, state, err := p.BeginRegistration(a)
			if err != nil {
				errs <- err
				return
			}
			response, err := auth.tryCreate(options)
			if err != nil {
				errs <- err
				return
			}
			nc, err := p.FinishRegistration(a, state, response)
			if err != nil {
				errs <- err
				return
			}
			a.Credentials = []store.WebAuthnCredential{{ID: nc.ID, UserID: a.User.ID, Credential: nc.Credential}}
			options, state, err = p.BeginLogin(a)
			if err != nil {
				errs <- err
				return
			}
			if response, err = auth.tryGet(options); err != nil {
				errs <- err
				return
			}
			if _, err := p.FinishLogin(a, state, response); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestSignCountReported(t *testing.T) {
	// A counter that went backwards is the store's to refuse; here it is
	// only reported.
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(t, p, &a, auth)
	a.Credentials[0].SignCount = 10

	options, state, err := p.BeginLogin(a)
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	got, err := p.FinishLogin(a, state, auth.get(t, options))
	if err != nil {
		t.Fatalf("FinishLogin: %v", err)
	}
	if got.SignCount != 1 {
		t.Errorf("sign count = %d, want the presented 1", got.SignCount)
	}
}

func TestDiscoverableLogin(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	bob := newAccount("0b0b0b0b-1111-4222-8333-444455556666", "bob")
	authA, authB := newAuthenticator(testOrigin), newAuthenticator(testOrigin)
	register(t, p, &a, authA)
	register(t, p, &bob, authB)
	accounts := map[string]Account{a.User.ID: a, bob.User.ID: bob}
	lookup := func(_ context.Context, handle []byte) (Account, error) {
		acc, ok := accounts[string(handle)]
		if !ok {
			return Account{}, fmt.Errorf("user %q: %w", handle, store.ErrNotFound)
		}
		return acc, nil
	}

	for _, tt := range []struct {
		auth *authenticator
		want Account
	}{{authA, a}, {authB, bob}} {
		options, state, err := p.BeginDiscoverableLogin()
		if err != nil {
			t.Fatalf("BeginDiscoverableLogin: %v", err)
		}
		var o requestOptions
		if err := json.Unmarshal(options, &o); err != nil || len(o.PublicKey.AllowCredentials) != 0 || o.PublicKey.Challenge == "" {
			t.Fatalf("options = %s (%v)", options, err)
		}
		got, asrt, err := p.FinishDiscoverableLogin(context.Background(), state, tt.auth.get(t, options), lookup)
		if err != nil {
			t.Fatalf("FinishDiscoverableLogin: %v", err)
		}
		if got.User.ID != tt.want.User.ID || asrt.CredentialID != tt.want.Credentials[0].ID {
			t.Errorf("signed in %q with %q, want %q with %q", got.User.ID, asrt.CredentialID, tt.want.User.ID, tt.want.Credentials[0].ID)
		}
	}
}

func TestDiscoverableLoginLookup(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(t, p, &a, auth)
	dbDown := errors.New("database is down")
	otherUser := newAccount("0b0b0b0b-1111-4222-8333-444455556666", "bob")
	withoutCredential := a
	withoutCredential.Credentials = nil

	tests := []struct {
		name    string
		lookup  func(context.Context, []byte) (Account, error)
		wantErr error
	}{
		{"no such user", func(context.Context, []byte) (Account, error) { return Account{}, store.ErrNotFound }, ErrUnknownCredential},
		{"lookup refuses", func(context.Context, []byte) (Account, error) { return Account{}, ErrUnknownCredential }, ErrUnknownCredential},
		{"lookup fails", func(context.Context, []byte) (Account, error) { return Account{}, dbDown }, dbDown},
		{"another user", func(context.Context, []byte) (Account, error) { return otherUser, nil }, ErrUnknownCredential},
		{"credential deleted", func(context.Context, []byte) (Account, error) { return withoutCredential, nil }, ErrUnknownCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			options, state, err := p.BeginDiscoverableLogin()
			if err != nil {
				t.Fatalf("BeginDiscoverableLogin: %v", err)
			}
			_, _, err = p.FinishDiscoverableLogin(context.Background(), state, auth.get(t, options), tt.lookup)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr == dbDown && errors.Is(err, ErrUnknownCredential) {
				t.Errorf("a failed lookup is reported as an unknown credential: %v", err)
			}
		})
	}
}

func TestAMR(t *testing.T) {
	tests := []struct {
		backupEligible, verifiesUser bool
		want                         []string
	}{
		{false, false, []string{"hwk"}},
		{false, true, []string{"hwk", "mfa"}},
		{true, false, []string{"swk"}},
		{true, true, []string{"swk", "mfa"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("BE=%v,UV=%v", tt.backupEligible, tt.verifiesUser), func(t *testing.T) {
			p := newTestPasskeys(t)
			a := alice()
			auth := newAuthenticator(testOrigin)
			auth.backupEligible, auth.verifiesUser = tt.backupEligible, tt.verifiesUser
			register(t, p, &a, auth)

			options, state, err := p.BeginLogin(a)
			if err != nil {
				t.Fatalf("BeginLogin: %v", err)
			}
			got, err := p.FinishLogin(a, state, auth.get(t, options))
			if err != nil {
				t.Fatalf("FinishLogin: %v", err)
			}
			if !slices.Equal(got.AMR, tt.want) || got.UserVerified != tt.verifiesUser {
				t.Errorf("AMR %v, user verified %v; want %v, %v", got.AMR, got.UserVerified, tt.want, tt.verifiesUser)
			}

			// The same holds for a passwordless login.
			options, state, err = p.BeginDiscoverableLogin()
			if err != nil {
				t.Fatalf("BeginDiscoverableLogin: %v", err)
			}
			_, got, err = p.FinishDiscoverableLogin(context.Background(), state, auth.get(t, options),
				func(context.Context, []byte) (Account, error) { return a, nil })
			if err != nil {
				t.Fatalf("FinishDiscoverableLogin: %v", err)
			}
			if !slices.Equal(got.AMR, tt.want) || got.UserVerified != tt.verifiesUser {
				t.Errorf("discoverable: AMR %v, user verified %v; want %v, %v", got.AMR, got.UserVerified, tt.want, tt.verifiesUser)
			}
		})
	}
}

func TestBackupEligibilityCannotChange(t *testing.T) {
	// A device-bound key that later claims to be a synced passkey (or the
	// reverse) is refused rather than reported with the new AMR.
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(t, p, &a, auth)
	auth.backupEligible = true

	options, state, err := p.BeginLogin(a)
	if err != nil {
		t.Fatalf("BeginLogin: %v", err)
	}
	if _, err := p.FinishLogin(a, state, auth.get(t, options)); !errors.Is(err, ErrInvalidResponse) {
		t.Fatalf("error = %v, want ErrInvalidResponse", err)
	}
}

func TestRegistrationRefused(t *testing.T) {
	p := newTestPasskeys(t)
	bob := newAccount("0b0b0b0b-1111-4222-8333-444455556666", "bob")
	_, loginState, err := p.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	_, bobState, err := p.BeginRegistration(bob)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		// change returns the account, state and response to finish with,
		// given those of a good ceremony.
		change  func(a Account, state []byte, options json.RawMessage) (Account, []byte, []byte)
		wantErr error
	}{
		{"wrong origin", func(a Account, state []byte, options json.RawMessage) (Account, []byte, []byte) {
			evil := newAuthenticator("https://evil.example")
			return a, state, evil.create(t, options)
		}, ErrInvalidResponse},
		{"state of another ceremony", func(a Account, state []byte, options json.RawMessage) (Account, []byte, []byte) {
			_, other, err := p.BeginRegistration(a)
			if err != nil {
				t.Fatal(err)
			}
			return a, other, newAuthenticator(testOrigin).create(t, options)
		}, ErrInvalidResponse},
		{"login state", func(a Account, _ []byte, options json.RawMessage) (Account, []byte, []byte) {
			return a, loginState, newAuthenticator(testOrigin).create(t, options)
		}, ErrInvalidState},
		{"state of another user", func(a Account, _ []byte, options json.RawMessage) (Account, []byte, []byte) {
			return a, bobState, newAuthenticator(testOrigin).create(t, options)
		}, ErrInvalidState},
		{"garbage state", func(a Account, _ []byte, options json.RawMessage) (Account, []byte, []byte) {
			return a, []byte("\x00garbage"), newAuthenticator(testOrigin).create(t, options)
		}, ErrInvalidState},
		{"garbage response", func(a Account, state []byte, _ json.RawMessage) (Account, []byte, []byte) {
			return a, state, []byte(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"oA"}}`)
		}, ErrInvalidResponse},
		{"assertion as response", func(a Account, state []byte, options json.RawMessage) (Account, []byte, []byte) {
			auth := newAuthenticator(testOrigin)
			auth.create(t, options)
			var o creationOptions
			if err := json.Unmarshal(options, &o); err != nil {
				t.Fatal(err)
			}
			resp, err := auth.assert(auth.creds[0], o.PublicKey.Challenge)
			if err != nil {
				t.Fatal(err)
			}
			return a, state, resp
		}, ErrInvalidResponse},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := alice()
			options, state, err := p.BeginRegistration(a)
			if err != nil {
				t.Fatalf("BeginRegistration: %v", err)
			}
			a, state, response := tt.change(a, state, options)
			if _, err := p.FinishRegistration(a, state, response); !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestLoginRefused(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(t, p, &a, auth)
	bob := newAccount("0b0b0b0b-1111-4222-8333-444455556666", "bob")
	bobAuth := newAuthenticator(testOrigin)
	register(t, p, &bob, bobAuth)
	_, regState, err := p.BeginRegistration(a)
	if err != nil {
		t.Fatal(err)
	}
	_, discoverableState, err := p.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	_, bobState, err := p.BeginLogin(bob)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		change  func(state []byte, options json.RawMessage) ([]byte, []byte)
		wantErr error
	}{
		{"wrong origin", func(state []byte, options json.RawMessage) ([]byte, []byte) {
			evil := newAuthenticatorWith(a.Credentials[0], auth)
			evil.origin = "https://evil.example"
			return state, evil.get(t, options)
		}, ErrInvalidResponse},
		{"wrong challenge", func(_ []byte, options json.RawMessage) ([]byte, []byte) {
			_, other, err := p.BeginLogin(a)
			if err != nil {
				t.Fatal(err)
			}
			return other, auth.get(t, options)
		}, ErrInvalidResponse},
		{"registration state", func(_ []byte, options json.RawMessage) ([]byte, []byte) {
			return regState, auth.get(t, options)
		}, ErrInvalidState},
		{"discoverable state", func(_ []byte, options json.RawMessage) ([]byte, []byte) {
			return discoverableState, auth.get(t, options)
		}, ErrInvalidState},
		{"state of another user", func(_ []byte, options json.RawMessage) ([]byte, []byte) {
			return bobState, auth.get(t, options)
		}, ErrInvalidState},
		{"another user's credential", func(state []byte, options json.RawMessage) ([]byte, []byte) {
			var o requestOptions
			if err := json.Unmarshal(options, &o); err != nil {
				t.Fatal(err)
			}
			resp, err := bobAuth.assert(bobAuth.creds[0], o.PublicKey.Challenge)
			if err != nil {
				t.Fatal(err)
			}
			return state, resp
		}, ErrUnknownCredential},
		{"bad signature", func(state []byte, options json.RawMessage) ([]byte, []byte) {
			resp := auth.get(t, options)
			var m map[string]any
			if err := json.Unmarshal(resp, &m); err != nil {
				t.Fatal(err)
			}
			m["response"].(map[string]any)["signature"] = b64.EncodeToString([]byte("0E\x02\x20not a signature at all........\x02\x21.not a signature either..........."))
			resp, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			return state, resp
		}, ErrInvalidResponse},
		{"empty response", func(state []byte, _ json.RawMessage) ([]byte, []byte) { return state, nil }, ErrInvalidResponse},
		{"empty state", func(_ []byte, options json.RawMessage) ([]byte, []byte) { return nil, auth.get(t, options) }, ErrInvalidState},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			options, state, err := p.BeginLogin(a)
			if err != nil {
				t.Fatalf("BeginLogin: %v", err)
			}
			state, response := tt.change(state, options)
			if _, err := p.FinishLogin(a, state, response); !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestBeginLoginWithoutCredentials(t *testing.T) {
	p := newTestPasskeys(t)
	if _, _, err := p.BeginLogin(alice()); !errors.Is(err, ErrNoCredentials) {
		t.Fatalf("error = %v, want ErrNoCredentials", err)
	}
}

func TestBadAccount(t *testing.T) {
	p := newTestPasskeys(t)
	good := alice()
	register(t, p, &good, newAuthenticator(testOrigin))
	corrupt := good
	corrupt.Credentials = []store.WebAuthnCredential{{ID: good.Credentials[0].ID, Credential: json.RawMessage(`"nope"`)}}
	mislabelled := good
	mislabelled.Credentials = []store.WebAuthnCredential{{ID: "AAAA", Credential: good.Credentials[0].Credential}}

	tests := []struct {
		name string
		a    Account
	}{
		{"no user", Account{}},
		{"no user ID", newAccount("", "alice")},
		{"user ID too long", newAccount(strings.Repeat("x", 65), "alice")},
		{"corrupt credential", corrupt},
		{"credential under another ID", mislabelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := p.BeginRegistration(tt.a); err == nil {
				t.Error("BeginRegistration succeeded")
			}
			if _, _, err := p.BeginLogin(tt.a); err == nil {
				t.Error("BeginLogin succeeded")
			}
		})
	}
}

func TestExpired(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(t, p, &a, auth)
	start := time.Now()

	tests := []struct {
		after   time.Duration
		wantErr error
	}{
		{DefaultTimeout, nil}, // the browser's timeout, within the grace
		{DefaultTimeout + expiryGrace + time.Second, ErrCeremonyExpired},
	}
	for _, tt := range tests {
		t.Run(tt.after.String(), func(t *testing.T) {
			p.now = func() time.Time { return start }
			options, state, err := p.BeginLogin(a)
			if err != nil {
				t.Fatalf("BeginLogin: %v", err)
			}
			// go-webauthn checks the expiry against the real clock too, so
			// only this package's clock moves on.
			p.now = func() time.Time { return start.Add(tt.after) }
			_, err = p.FinishLogin(a, state, auth.get(t, options))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("FinishLogin after %v: error = %v, want %v", tt.after, err, tt.wantErr)
			}
		})
	}
}

// garbage is a set of request bodies and states that must be refused
// without a panic.
var garbage = [][]byte{
	nil,
	{},
	[]byte("null"),
	[]byte("{}"),
	[]byte("[]"),
	[]byte(`"string"`),
	[]byte("{"),
	[]byte("\xff\xfe\x00"),
	[]byte(`{"ceremony":"login"}`),
	[]byte(`{"ceremony":"login","session":{"challenge":"x","expires":"2999-01-01T00:00:00Z"}}`),
	[]byte(`{"id":"","rawId":"","type":"public-key"}`),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key"}`),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{}}`),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","authenticatorData":"AA","signature":"AA"}}`),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"!!","attestationObject":"!!"}}`),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":"e30","attestationObject":"v2Rm"}}`),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key","response":{"clientDataJSON":1,"authenticatorData":[],"signature":{}}}`),
	[]byte(strings.Repeat("[", 100000)),
	[]byte(`{"id":"AQ","rawId":"AQ","type":"public-key"} trailing`),
}

func TestGarbage(t *testing.T) {
	p := newTestPasskeys(t)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(t, p, &a, auth)
	_, regState, err := p.BeginRegistration(a)
	if err != nil {
		t.Fatal(err)
	}
	loginOptions, loginState, err := p.BeginLogin(a)
	if err != nil {
		t.Fatal(err)
	}
	_, discState, err := p.BeginDiscoverableLogin()
	if err != nil {
		t.Fatal(err)
	}
	goodAssertion := auth.get(t, loginOptions)
	lookup := func(context.Context, []byte) (Account, error) { return a, nil }
	ctx := context.Background()
	refusal := func(err error) bool {
		return errors.Is(err, ErrInvalidResponse) || errors.Is(err, ErrInvalidState) || errors.Is(err, ErrUnknownCredential)
	}

	for i, g := range garbage {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			// As a response, with good state.
			if _, err := p.FinishRegistration(a, regState, g); !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("FinishRegistration(response %q) = %v", g, err)
			}
			if _, err := p.FinishLogin(a, loginState, g); !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("FinishLogin(response %q) = %v", g, err)
			}
			if _, _, err := p.FinishDiscoverableLogin(ctx, discState, g, lookup); !errors.Is(err, ErrInvalidResponse) {
				t.Errorf("FinishDiscoverableLogin(response %q) = %v", g, err)
			}
			// As state, with a response.
			if _, err := p.FinishRegistration(a, g, goodAssertion); !errors.Is(err, ErrInvalidState) {
				t.Errorf("FinishRegistration(state %q) = %v", g, err)
			}
			if _, err := p.FinishLogin(a, g, goodAssertion); !errors.Is(err, ErrInvalidState) {
				t.Errorf("FinishLogin(state %q) = %v", g, err)
			}
			if _, _, err := p.FinishDiscoverableLogin(ctx, g, goodAssertion, lookup); !errors.Is(err, ErrInvalidState) {
				t.Errorf("FinishDiscoverableLogin(state %q) = %v", g, err)
			}
			// Both.
			if _, err := p.FinishLogin(a, g, g); !refusal(err) {
				t.Errorf("FinishLogin(%q, %q) = %v", g, g, err)
			}
		})
	}
}
