package login_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/login"
)

// TestParallelWrongPasswords fires wrong passwords for one account all at
// once: each attempt is counted before it is checked, so exactly the
// threshold of them are checked and the rest are throttled, and then even
// the right password is refused until the lock ends.
func TestParallelWrongPasswords(t *testing.T) {
	const threshold, attempts = 5, 20
	e := newEnv(t, func(o *envOptions) {
		o.login = func(c *login.Config) {
			c.Limits = login.DefaultLimits()
			c.Limits.PasswordPerAccount = []login.Tier{{Threshold: threshold, Window: time.Hour, LockFor: time.Hour}}
			c.Limits.PasswordPerSource = []login.Tier{{Threshold: 1000, Window: time.Hour, LockFor: time.Hour}}
		}
	})
	e.createUser("frank", "a long enough passphrase")
	c := e.createClient(nil)
	b := newBrowser(t)
	b.authorize(c)
	action, fields := b.form("password-form")
	fields.Set("username", "frank")
	fields.Set("password", "not the passphrase")

	answers := b.postAtOnce(attempts, func(int) (string, url.Values) { return action, fields })
	refused := outcome{http.StatusUnauthorized, "Invalid username or password."}
	throttled := outcome{http.StatusTooManyRequests, "Too many attempts"}
	got := tally(t, answers, refused, throttled)
	if got[refused] != threshold || got[throttled] != attempts-threshold {
		t.Fatalf("%d refused and %d throttled, want %d and %d", got[refused], got[throttled], threshold, attempts-threshold)
	}
	signIns := func(result string) float64 {
		return e.metric("latchkey_login_signins_total", map[string]string{"method": "password", "result": result})
	}
	if got := signIns("failure"); got != threshold {
		t.Errorf("failures counted %v, want %d", got, threshold)
	}
	if got := signIns("throttled"); got != attempts-threshold {
		t.Errorf("throttled counted %v, want %d", got, attempts-threshold)
	}

	// The account is locked: the right password is not even checked.
	b.signIn("frank", "a long enough passphrase")
	if b.code != http.StatusTooManyRequests || !b.has("Too many attempts") {
		t.Fatalf("the right password while locked: %d\n%s", b.code, b.body)
	}
	if got := signIns("success"); got != 0 {
		t.Errorf("successes counted %v, want 0", got)
	}
}
