package useragent

import (
	"context"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/login/totp"
)

// TestAuthenticatorNeverRepeatsAStep uses the three steps the login app
// accepts around now, then waits for the clock.
func TestAuthenticatorNeverRepeatsAStep(t *testing.T) {
	now := time.Unix(1_700_000_010, 0)
	var slept time.Duration
	a := NewAuthenticator([]byte("0123456789abcdefghij"))
	a.now = func() time.Time { return now }
	a.sleep = func(_ context.Context, d time.Duration) error { slept += d; now = now.Add(d); return nil }
	cur := totp.Step(now)
	seen := map[string]bool{}
	for i, want := range []int64{cur - 1, cur, cur + 1, cur + 2} {
		code, err := a.Code(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		wantCode, _ := totp.Code(a.secret, time.Unix(want*30, 0))
		if code != wantCode || seen[code] {
			t.Fatalf("code %d = %s, want the code of step %d (%s)", i, code, want, wantCode)
		}
		seen[code] = true
	}
	if slept == 0 || slept > totp.Period+time.Second {
		t.Errorf("slept %v before the fourth code, want up to one period", slept)
	}
}

// TestAuthenticatorAvoidsTheStepAboutToExpire does not offer the previous
// step in the last seconds of a step, when the login app may already be
// in the next step by the time the code arrives.
func TestAuthenticatorAvoidsTheStepAboutToExpire(t *testing.T) {
	now := time.Unix(1_700_000_010+28, 0) // two seconds before a step ends
	a := NewAuthenticator([]byte("0123456789abcdefghij"))
	a.now = func() time.Time { return now }
	code, err := a.Code(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, _ := totp.Code(a.secret, now)
	if code != want {
		t.Errorf("code %s, want the current step's %s", code, want)
	}
}
