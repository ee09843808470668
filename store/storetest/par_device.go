package storetest

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"PushedAuthorizationRequests", testPAR},
	test{"DeviceCodeLifecycle", testDeviceCodeLifecycle},
	test{"DeviceCodePolling", testDevicePolling},
	test{"ConcurrentDeviceCodeExchange", testConcurrentDeviceExchange},
	test{"PasswordGrantAuthenticate", testAuthenticate},
)

func testPAR(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	c := newClient(t, s)
	ar := fosite.NewAuthorizeRequest()
	ar.ID = "req-par"
	ar.RequestedAt = clock.Now()
	ar.Client = c
	ar.ResponseTypes = fosite.Arguments{"code", "id_token"}
	ar.RedirectURI, _ = url.Parse("https://app.example.test/cb")
	ar.State = "state-0123456789"
	ar.ResponseMode = fosite.ResponseModeFormPost
	ar.DefaultResponseMode = fosite.ResponseModeFragment
	ar.RequestedScope = fosite.Arguments{"openid"}
	ar.Form = url.Values{"nonce": {"n-0123456789"}, "claims": {`{"userinfo":{"email":null}}`}}
	sess := openid.NewDefaultSession()
	sess.SetExpiresAt(fosite.PushedAuthorizeRequestContext, clock.Now().Add(time.Minute))
	ar.Session = sess
	const uri = "urn:ietf:params:oauth:request_uri:abc123"
	if err := s.CreatePARSession(ctx, uri, ar); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetPARSession(ctx, uri)
	if err != nil {
		t.Fatal(err)
	}
	if got.GetID() != "req-par" || got.GetClient().GetID() != c.ID || !got.GetResponseTypes().Matches("code", "id_token") ||
		got.GetRedirectURI().String() != "https://app.example.test/cb" || got.GetState() != "state-0123456789" ||
		got.GetResponseMode() != fosite.ResponseModeFormPost || got.GetDefaultResponseMode() != fosite.ResponseModeFragment ||
		got.GetRequestForm().Get("claims") != `{"userinfo":{"email":null}}` || !got.GetRequestedScopes().Has("openid") {
		t.Fatalf("PAR came back as %+v", got)
	}
	// Expired requests are not found: fosite does not check expiry itself.
	clock.Add(61 * time.Second)
	if _, err := s.GetPARSession(ctx, uri); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("expired PAR: got %v, want ErrNotFound", err)
	}
	if err := s.DeletePARSession(ctx, uri); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePARSession(ctx, uri); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if _, err := s.GetPARSession(ctx, "urn:ietf:params:oauth:request_uri:unknown"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("unknown PAR: %v", err)
	}
}

func deviceRequest(c *store.Client, id string, exp time.Time) *fosite.DeviceRequest {
	d := fosite.NewDeviceRequest()
	d.ID = id
	d.RequestedAt = exp.Add(-10 * time.Minute)
	d.Client = c
	d.RequestedScope = fosite.Arguments{"openid", "offline_access"}
	sess := openid.NewDefaultSession()
	sess.SetExpiresAt(fosite.DeviceCode, exp)
	sess.SetExpiresAt(fosite.UserCode, exp)
	d.Session = sess
	return d
}

func testDeviceCodeLifecycle(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	c := newClient(t, s)
	d := deviceRequest(c, "req-dev", clock.Now().Add(10*time.Minute))
	if err := s.CreateDeviceAuthSession(ctx, "dev-sig", "user-sig", d); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateDeviceAuthSession(ctx, "dev-sig-2", "user-sig", deviceRequest(c, "req-dev-2", clock.Now())); !errors.Is(err, fosite.ErrExistingUserCodeSignature) {
		t.Fatalf("duplicate user code: got %v, want ErrExistingUserCodeSignature", err)
	}
	got, err := s.GetDeviceCodeSession(ctx, "dev-sig", openid.NewDefaultSession())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetID() != "req-dev" || got.GetUserCodeState() != fosite.UserCodeUnused || !got.GetRequestedScopes().Has("offline_access") {
		t.Fatalf("device request came back as %+v", got)
	}

	// The verification page finds it by user code and records approval.
	byUser, devSig, err := s.GetDeviceSessionByUserCode(ctx, "user-sig", openid.NewDefaultSession())
	if err != nil || devSig != "dev-sig" || byUser.GetID() != "req-dev" {
		t.Fatalf("by user code: %v %q %v", byUser, devSig, err)
	}
	if _, _, err := s.GetDeviceSessionByUserCode(ctx, "nope", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("unknown user code: %v", err)
	}
	if err := s.DecideDeviceSession(ctx, devSig, byUser); err == nil {
		t.Fatal("deciding with state unused succeeded")
	}
	byUser.SetUserCodeState(fosite.UserCodeAccepted)
	byUser.GrantScope("openid")
	byUser.GetSession().(*openid.DefaultSession).Subject = "alice"
	if err := s.DecideDeviceSession(ctx, devSig, byUser); err != nil {
		t.Fatalf("decide: %v", err)
	}
	byUser.SetUserCodeState(fosite.UserCodeRejected)
	if err := s.DecideDeviceSession(ctx, devSig, byUser); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("deciding twice: got %v, want ErrNotFound", err)
	}
	got, err = s.GetDeviceCodeSession(ctx, "dev-sig", openid.NewDefaultSession())
	if err != nil {
		t.Fatal(err)
	}
	if got.GetUserCodeState() != fosite.UserCodeAccepted || !got.GetGrantedScopes().Has("openid") || got.GetSession().GetSubject() != "alice" {
		t.Fatalf("approved device request came back as %+v", got)
	}

	if err := s.InvalidateDeviceCodeSession(ctx, "dev-sig"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetDeviceCodeSession(ctx, "dev-sig", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("used device code: got %v, want ErrNotFound (invalid_grant)", err)
	}
	if err := s.InvalidateDeviceCodeSession(ctx, "dev-sig"); !errors.Is(err, fosite.ErrInvalidatedDeviceCode) {
		t.Fatalf("invalidate twice: %v", err)
	}
	if _, _, err := s.GetDeviceSessionByUserCode(ctx, "user-sig", nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("user code of used device code: %v", err)
	}

	clock.Add(11 * time.Minute)
	removed, err := s.Janitor(ctx, store.JanitorOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if removed["device_codes"] != 1 {
		t.Fatalf("janitor removed %v, want the device code", removed)
	}
}

func testDevicePolling(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC))
	s := open(t, store.Options{Now: clock.Now})
	c := newClient(t, s)
	if err := s.CreateDeviceAuthSession(ctx, "dev-sig", "user-sig", deviceRequest(c, "req", clock.Now().Add(10*time.Minute))); err != nil {
		t.Fatal(err)
	}
	poll := func() store.DevicePoll {
		t.Helper()
		p, err := s.PollDeviceCode(ctx, "dev-sig", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	if p := poll(); p.TooFast || p.Expired {
		t.Fatalf("first poll: %+v", p)
	}
	clock.Add(time.Second)
	if p := poll(); !p.TooFast {
		t.Fatalf("poll after 1s: %+v, want TooFast (slow_down)", p)
	}
	clock.Add(5 * time.Second)
	if p := poll(); p.TooFast || p.Expired {
		t.Fatalf("poll after the interval: %+v", p)
	}
	clock.Add(10 * time.Minute)
	if p := poll(); !p.Expired {
		t.Fatalf("poll after expiry: %+v, want Expired (expired_token)", p)
	}
	if _, err := s.PollDeviceCode(ctx, "unknown", 5*time.Second); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("unknown device code: %v", err)
	}
	// A used code is not found, even polled too fast or after expiry.
	if err := s.CreateDeviceAuthSession(ctx, "used-sig", "used-user-sig", deviceRequest(c, "req-used", clock.Now().Add(10*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := s.InvalidateDeviceCodeSession(ctx, "used-sig"); err != nil {
		t.Fatal(err)
	}
	for _, wait := range []time.Duration{0, 11 * time.Minute} {
		clock.Add(wait)
		if _, err := s.PollDeviceCode(ctx, "used-sig", 5*time.Second); !errors.Is(err, fosite.ErrNotFound) {
			t.Fatalf("used device code after %v: %v", wait, err)
		}
	}
}

func testConcurrentDeviceExchange(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	if err := s.CreateDeviceAuthSession(ctx, "dev-sig", "user-sig", deviceRequest(c, "req", time.Now().Add(10*time.Minute))); err != nil {
		t.Fatal(err)
	}
	const n = 16
	errs := inParallel(n, func(int) error {
		return s.InTx(ctx, func(ctx context.Context) error {
			return s.InvalidateDeviceCodeSession(ctx, "dev-sig")
		})
	})
	if wins, _ := countErrs(t, errs, fosite.ErrInvalidatedDeviceCode); wins != 1 {
		t.Fatalf("%d of %d concurrent device code exchanges won, want 1", wins, n)
	}
}

type passwords map[string]string

func (p passwords) CheckPassword(_ context.Context, username, password string) (string, error) {
	if want, ok := p[username]; ok && want == password {
		return "sub-" + username, nil
	}
	return "", fosite.ErrNotFound
}

func testAuthenticate(t *testing.T, open Opener) {
	ctx := context.Background()
	bare := open(t, store.Options{})
	if _, err := bare.Authenticate(ctx, "alice", "pw"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("without a checker: got %v, want ErrNotFound", err)
	}
	s := open(t, store.Options{PasswordChecker: passwords{"alice": "correct horse"}})
	if sub, err := s.Authenticate(ctx, "alice", "correct horse"); err != nil || sub != "sub-alice" {
		t.Fatalf("right password: %q %v", sub, err)
	}
	if _, err := s.Authenticate(ctx, "alice", "wrong"); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("wrong password: %v", err)
	}
}
