package login_test

import (
	"html"
	"io"
	"net/http"
	"strings"
	"sync"
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
	body := fields.Encode()

	type answer struct {
		status int
		page   string
		err    error
	}
	answers := make([]answer, attempts)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range answers {
		wg.Go(func() {
			req, err := http.NewRequest(http.MethodPost, action, strings.NewReader(body))
			if err != nil {
				answers[i].err = err
				return
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			<-start
			resp, err := b.client.Do(req)
			if err != nil {
				answers[i].err = err
				return
			}
			defer resp.Body.Close()
			page, err := io.ReadAll(resp.Body)
			answers[i] = answer{resp.StatusCode, html.UnescapeString(string(page)), err}
		})
	}
	close(start)
	wg.Wait()

	var refused, throttled int
	for i, a := range answers {
		switch {
		case a.err != nil:
			t.Errorf("attempt %d: %v", i, a.err)
		case a.status == http.StatusUnauthorized && strings.Contains(a.page, "Invalid username or password."):
			refused++
		case a.status == http.StatusTooManyRequests && strings.Contains(a.page, "Too many attempts"):
			throttled++
		default:
			t.Errorf("attempt %d: %d\n%s", i, a.status, a.page)
		}
	}
	if refused != threshold || throttled != attempts-threshold {
		t.Fatalf("%d refused and %d throttled, want %d and %d", refused, throttled, threshold, attempts-threshold)
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
