package login_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/login"
)

// The brute-force limits count in the database, so they must hold for
// guesses spread over replicas exactly as for guesses at one. Each test
// here runs two replicas (provider and login app, each with its own store
// on one database: PostgreSQL when LATCHKEY_TEST_DATABASE_URL is set, else
// a shared SQLite file) and fires a burst of requests at once, alternating
// between them. The counts asserted are exact: a limit of 5 counted per
// replica would let 10 of the burst through.

// burst is how many guesses each test fires at once.
const burst = 100

// replicaLimits is a two-replica environment with the default limits
// changed by edit.
func replicaLimits(t *testing.T, edit func(*login.Limits)) *env {
	return newEnv(t, withReplicas(2), withLimits(edit))
}

// spread sends the i-th request of a burst to replica i mod 2; u is a URL
// under the issuer.
func (e *env) spread(i int, u string) string {
	return e.replicas[i%len(e.replicas)].at(u)
}

// TestReplicasWrongPasswords: of a burst of wrong passwords, exactly the
// threshold are checked, then even the right password is refused on every
// replica; for one account (the per-account tier) and for many accounts
// from one address (the per-source tier, successes not counted).
func TestReplicasWrongPasswords(t *testing.T) {
	const threshold = 5
	for _, tc := range []struct {
		name            string
		account, source int // the tiers' thresholds
		lockout         string
		username        func(i int) string
	}{
		{"per account", threshold, 1000, "password", func(int) string { return "frank" }},
		{"per source", 1000, threshold, "password_source", func(i int) string { return fmt.Sprintf("user%03d", i) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := replicaLimits(t, func(l *login.Limits) {
				l.PasswordPerAccount = []login.Tier{{Threshold: tc.account, Window: time.Hour, LockFor: time.Hour}}
				l.PasswordPerSource = []login.Tier{{Threshold: tc.source, Window: time.Hour, LockFor: time.Hour}}
			})
			users := map[string]bool{}
			for i := range burst {
				users[tc.username(i)] = true
			}
			for u := range users {
				e.createUser(u, mfaPassword)
			}
			c := e.createClient(nil)
			b := newBrowser(t)
			b.authorize(c)
			action, hidden := b.form("password-form")
			answers := b.postAtOnce(burst, func(i int) (string, url.Values) {
				f := url.Values{"username": {tc.username(i)}, "password": {"not the passphrase"}}
				for k, v := range hidden {
					f[k] = v
				}
				return e.spread(i, action), f
			})
			refused := outcome{http.StatusUnauthorized, "Invalid username or password."}
			throttled := outcome{http.StatusTooManyRequests, "Too many attempts"}
			got := tally(t, answers, refused, throttled)
			if got[refused] != threshold || got[throttled] != burst-threshold {
				t.Fatalf("%d refused and %d throttled, want %d and %d", got[refused], got[throttled], threshold, burst-threshold)
			}
			for result, want := range map[string]float64{"failure": threshold, "throttled": burst - threshold} {
				if got := e.metricSum("latchkey_login_signins_total", map[string]string{"method": "password", "result": result}); got != want {
					t.Errorf("sign-ins %s counted %v over the replicas, want %v", result, got, want)
				}
			}
			if got := e.metricSum("latchkey_login_lockouts_total", map[string]string{"kind": tc.lockout}); got != 1 {
				t.Errorf("%s lockouts counted %v over the replicas, want 1", tc.lockout, got)
			}

			// Locked: the right password is not even checked, on any replica.
			for i, r := range e.replicas {
				fields := url.Values{"username": {tc.username(0)}, "password": {mfaPassword}}
				for k, v := range hidden {
					fields[k] = v
				}
				b.post(r.at(action), fields)
				if b.code != http.StatusTooManyRequests || !b.has("Too many attempts") {
					t.Errorf("the right password at replica %d while locked: %d\n%s", i, b.code, b.body)
				}
			}
			if got := e.metricSum("latchkey_login_signins_total", map[string]string{"method": "password", "result": "success"}); got != 0 {
				t.Errorf("successes counted %v, want 0", got)
			}
		})
	}
}

// TestReplicasWrongCodes: of a burst of wrong second-factor codes, exactly
// the limit are checked, and afterwards the right code is refused on every
// replica. TOTP codes are limited by the account's code throttle; an email
// code by its own count of wrong tries, held on the code's row.
func TestReplicasWrongCodes(t *testing.T) {
	t.Run("totp", func(t *testing.T) {
		const threshold = 5
		e := replicaLimits(t, func(l *login.Limits) {
			l.CodePerAccount = []login.Tier{{Threshold: threshold, Window: 15 * time.Minute, LockFor: 2 * time.Minute}}
		})
		secret := e.enrolTOTP(e.createUser("bob", mfaPassword))
		c := e.createClient(nil)
		b := newBrowser(t)
		b.authorize(c)
		b.signIn("bob", mfaPassword)
		action, fields := b.form("totp-form")
		fields.Set("code", wrongCode(currentCode(t, secret, time.Now())))
		answers := b.postAtOnce(burst, func(i int) (string, url.Values) { return e.spread(i, action), fields })
		wrong := outcome{http.StatusUnauthorized, "That code is not right"}
		throttled := outcome{http.StatusTooManyRequests, "Too many attempts"}
		got := tally(t, answers, wrong, throttled)
		if got[wrong] != threshold || got[throttled] != burst-threshold {
			t.Fatalf("%d wrong and %d throttled, want %d and %d", got[wrong], got[throttled], threshold, burst-threshold)
		}
		for result, want := range map[string]float64{"failure": threshold, "throttled": burst - threshold, "success": 0} {
			if got := e.metricSum("latchkey_login_mfa_challenges_total", map[string]string{"method": "totp", "result": result}); got != want {
				t.Errorf("TOTP %s counted %v over the replicas, want %v", result, got, want)
			}
		}
		if got := e.metricSum("latchkey_login_lockouts_total", map[string]string{"kind": "code"}); got != 1 {
			t.Errorf("code lockouts counted %v over the replicas, want 1", got)
		}
		for i, r := range e.replicas {
			fields.Set("code", currentCode(t, secret, time.Now()))
			b.post(r.at(action), fields)
			if b.code != http.StatusTooManyRequests || !b.has("Too many attempts") {
				t.Errorf("the right code at replica %d while locked: %d\n%s", i, b.code, b.body)
			}
		}
	})

	t.Run("email", func(t *testing.T) {
		// The account's code throttle is raised so that the code's own
		// limit is what stops the guesses.
		e := replicaLimits(t, func(l *login.Limits) {
			l.CodePerAccount = []login.Tier{{Threshold: 1000, Window: 15 * time.Minute, LockFor: 2 * time.Minute}}
		})
		tries := login.DefaultLimits().EmailCodeAttempts
		e.createUser("carol", mfaPassword)
		c := e.createClient(map[string]any{"latchkey_require_mfa": true})
		b := newBrowser(t)
		emailStep(t, b, c, "carol")
		code := emailCodes(t, e, "carol@example.test")[0]
		action, fields := b.form("email-form")
		fields.Set("code", wrongCode(code))
		answers := b.postAtOnce(burst, func(i int) (string, url.Values) { return e.spread(i, action), fields })
		// The last try that counts already says the code is spent.
		wrong := outcome{http.StatusUnauthorized, "That code is not right"}
		spent := outcome{http.StatusUnauthorized, "entered wrongly too many times"}
		got := tally(t, answers, wrong, spent)
		if got[wrong] != tries-1 || got[spent] != burst-tries+1 {
			t.Fatalf("%d wrong and %d spent, want %d and %d", got[wrong], got[spent], tries-1, burst-tries+1)
		}
		for i, r := range e.replicas {
			fields.Set("code", code)
			b.post(r.at(action), fields)
			if b.code != http.StatusUnauthorized || !b.has("entered wrongly too many times") {
				t.Errorf("the right code at replica %d after the burst: %d\n%s", i, b.code, b.body)
			}
		}
		if got := e.metricSum("latchkey_login_mfa_challenges_total", map[string]string{"method": "email", "result": "success"}); got != 0 {
			t.Errorf("email successes counted %v, want 0", got)
		}
	})
}

// TestReplicasEmailCodeResend: of a burst of requests for an email code,
// exactly EmailCodesPerWindow send one; the others are told to wait.
func TestReplicasEmailCodeResend(t *testing.T) {
	e := newEnv(t, withReplicas(2))
	limit := login.DefaultLimits().EmailCodesPerWindow
	e.createUser("carol", mfaPassword)
	c := e.createClient(map[string]any{"latchkey_require_mfa": true})
	b := newBrowser(t)
	b.authorize(c)
	b.signIn("carol", mfaPassword)
	action, fields := b.form("email-send-form")
	answers := b.postAtOnce(burst, func(i int) (string, url.Values) { return e.spread(i, action), fields })
	sent := outcome{http.StatusSeeOther, ""}
	refused := outcome{http.StatusTooManyRequests, "You were sent as many codes as allowed"}
	got := tally(t, answers, sent, refused)
	if got[sent] != limit || got[refused] != burst-limit {
		t.Fatalf("%d sent and %d refused, want %d and %d", got[sent], got[refused], limit, burst-limit)
	}
	if codes := emailCodes(t, e, "carol@example.test"); len(codes) != limit {
		t.Errorf("mailed %d codes, want %d", len(codes), limit)
	}
	for result, want := range map[string]float64{"sent": float64(limit), "throttled": float64(burst - limit)} {
		if got := e.metricSum("latchkey_login_mfa_challenges_total", map[string]string{"method": "email", "result": result}); got != want {
			t.Errorf("email %s counted %v over the replicas, want %v", result, got, want)
		}
	}
}

// deviceChallenge opens the verification URI at replica i, as a device's
// user would, and returns the device challenge the login app is sent.
func (e *env) deviceChallenge(i int) string {
	e.t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.spread(i, e.issuer()+"/oauth2/device"))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	id := loc.Query().Get("device_challenge")
	if resp.StatusCode != http.StatusSeeOther || err != nil || id == "" {
		e.t.Fatalf("verification URI: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return id
}

// TestReplicasDeviceUserCodes guesses user codes (RFC 8628 §5.1) through
// the login app's device page of two replicas, each calling its own
// provider. A burst on one challenge gets exactly the challenge's tries
// (5), after which it is over even for the right code; a burst over many
// challenges gets exactly what is left of the global budget of wrong codes
// (100 per window), which the first burst spent exactly 5 of. Sequential
// behaviour is provider/device_test.go's.
func TestReplicasDeviceUserCodes(t *testing.T) {
	const tries, global = 5, 100
	e := newEnv(t, withReplicas(2))
	dev := newDeviceClient(e)
	da := dev.start(t)
	b := newBrowser(t)
	b.get(e.issuer() + "/oauth2/device")
	action, hidden := b.form("device-form")
	guess := func(challenge, code string) url.Values {
		f := url.Values{"device_challenge": {challenge}, "user_code": {code}}
		f.Set("csrf", hidden.Get("csrf"))
		return f
	}
	wrong := outcome{http.StatusBadRequest, "That code is not right"}
	tooMany := outcome{http.StatusTooManyRequests, "Too many wrong codes"}
	over := outcome{http.StatusNotFound, "expired or was already used"}
	// The attempt that ends the challenge is sent on to the provider's
	// page saying so (TestDeviceTooManyWrongCodes follows it).
	ended := outcome{http.StatusSeeOther, ""}

	// One challenge: the fifth wrong code, or a later one, rejects it; the
	// others find it decided.
	id := hidden.Get("device_challenge")
	answers := b.postAtOnce(burst, func(i int) (string, url.Values) { return e.spread(i, action), guess(id, "QQQQ-QQQQ") })
	got := tally(t, answers, wrong, ended, over)
	if got[wrong] != tries-1 || got[ended] != 1 || got[over] != burst-tries {
		t.Fatalf("one challenge: %d wrong, %d ended, %d over; want %d, 1, %d", got[wrong], got[ended], got[over], tries-1, burst-tries)
	}
	for i, r := range e.replicas {
		b.post(r.at(action), guess(id, da.UserCode))
		if b.code != http.StatusNotFound {
			t.Errorf("the right code at replica %d on the rejected challenge: %d\n%s", i, b.code, b.body)
		}
	}

	// Many challenges, one wrong code each: the global budget.
	ids := make([]string, burst)
	for i := range ids {
		ids[i] = e.deviceChallenge(i)
	}
	answers = b.postAtOnce(burst, func(i int) (string, url.Values) { return e.spread(i, action), guess(ids[i], "QQQQ-QQQQ") })
	got = tally(t, answers, wrong, tooMany)
	if left := global - tries; got[wrong] != left || got[tooMany] != burst-left {
		t.Fatalf("many challenges: %d wrong and %d too many, want %d and %d", got[wrong], got[tooMany], left, burst-left)
	}
	// The global lock ends no challenge, and holds on every replica even
	// for the right code.
	for _, id := range ids {
		e.adminCall(http.MethodGet, "/admin/device?challenge="+url.QueryEscape(id), nil, http.StatusOK, nil)
	}
	for i, r := range e.replicas {
		b.post(r.at(action), guess(e.deviceChallenge(i), da.UserCode))
		if b.code != http.StatusTooManyRequests || !b.has("Too many wrong codes") {
			t.Errorf("the right code at replica %d while locked: %d\n%s", i, b.code, b.body)
		}
	}
}
