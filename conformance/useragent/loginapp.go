package useragent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/latchkey-oidc/latchkey/login/totp"
)

// User is a person with an account in the login app.
type User struct {
	Username, Password string
	// Authenticator answers the second-factor page; nil for a user
	// without TOTP.
	Authenticator *Authenticator
}

// Authenticator is a TOTP app holding one seed. Like a careful person it
// never types the same time step twice, because the login app refuses a
// replayed step: it uses the steps the login app accepts around now (one
// either side) in order, and waits for the clock when they are used up.
type Authenticator struct {
	secret []byte
	now    func() time.Time
	sleep  func(context.Context, time.Duration) error

	mu   sync.Mutex
	last int64
}

// stepMargin is how long before the end of a time step the authenticator
// stops offering the step before it: time for the code to reach the login
// app.
const stepMargin = 5 * time.Second

// NewAuthenticator returns an authenticator for a raw TOTP seed.
func NewAuthenticator(secret []byte) *Authenticator {
	return &Authenticator{secret: secret, now: time.Now, sleep: sleepCtx}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Code returns a code for a time step not used before.
func (a *Authenticator) Code(ctx context.Context) (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for {
		now := a.now()
		cur := totp.Step(now)
		// The previous step stops being accepted when the clock enters
		// the next one: use it only when that is not about to happen
		// before the login app checks the code.
		nextStep := time.Unix((cur+1)*int64(totp.Period/time.Second), 0)
		first := cur - 1
		if nextStep.Sub(now) < stepMargin {
			first = cur
		}
		for step := first; step <= cur+1; step++ {
			if step > a.last {
				a.last = step
				return totp.Code(a.secret, time.Unix(step*int64(totp.Period/time.Second), 0))
			}
		}
		// Every step in the window is used: wait for the next one.
		if err := a.sleep(ctx, nextStep.Sub(now)+10*time.Millisecond); err != nil {
			return "", err
		}
	}
}

// Interaction says what the person does on the login app's pages.
type Interaction struct {
	User *User
	// Remember ticks "keep me signed in".
	Remember bool
	// Deny answers the consent page with "Deny" instead of "Allow".
	Deny bool
	// Stay answers the logout confirmation with "Stay signed in".
	Stay bool
	// UserCode is typed into the device page when it is empty.
	UserCode string
	// Look, when set, sees each login app page before it is answered.
	Look func(*Page)
}

// Seen records which login app pages a walk answered.
type Seen struct {
	SignIn, SecondFactor, Consent, Logout, Device bool
}

// Login app form ids (login/templates).
const (
	formSignIn  = "password-form"
	formTOTP    = "totp-form"
	formConsent = "consent-form"
	formLogout  = "logout-form"
	formDevice  = "device-form"
)

// maxSteps bounds a walk through the login app: sign-in, second factor,
// consent, device and logout pages, each at most twice.
const maxSteps = 10

// ErrSignInRefused is returned when the login app shows the sign-in form
// again after the person's answer.
var ErrSignInRefused = errors.New("the login app refused the sign-in")

// Continue answers the login app's pages, starting with the current page,
// until the agent reaches a page that is not one of them: a relying
// party's redirect, a form_post page, the provider's error page or the
// login app's signed-out page.
func (a *Agent) Continue(ctx context.Context, in Interaction) (*Page, Seen, error) {
	var seen Seen
	for range maxSteps {
		p := a.Page
		if p == nil || p.Redirect {
			return p, seen, nil
		}
		if in.Look != nil {
			in.Look(p)
		}
		var err error
		switch {
		case has(p, formSignIn):
			if seen.SignIn && !seen.SecondFactor {
				return p, seen, fmt.Errorf("%w: %s", ErrSignInRefused, visibleError(p))
			}
			if in.User == nil {
				return p, seen, errors.New("the login app asks for a sign-in and no user was given")
			}
			seen.SignIn = true
			v := map[string]string{"username": in.User.Username, "password": in.User.Password}
			if in.Remember {
				v["remember"] = "1"
			}
			_, err = a.Submit(ctx, formSignIn, v)
		case has(p, formTOTP):
			if seen.SecondFactor {
				return p, seen, fmt.Errorf("the login app refused the TOTP code: %s", visibleError(p))
			}
			if in.User == nil || in.User.Authenticator == nil {
				return p, seen, errors.New("the login app asks for a TOTP code and the user has no authenticator")
			}
			seen.SecondFactor = true
			var code string
			if code, err = in.User.Authenticator.Code(ctx); err == nil {
				_, err = a.Submit(ctx, formTOTP, map[string]string{"code": code})
			}
		case has(p, formConsent):
			if seen.Consent {
				return p, seen, fmt.Errorf("the consent page came back: %s", visibleError(p))
			}
			seen.Consent = true
			decision := "allow"
			if in.Deny {
				decision = "deny"
			}
			_, err = a.Submit(ctx, formConsent, map[string]string{"decision": decision})
		case has(p, formLogout):
			if seen.Logout {
				return p, seen, fmt.Errorf("the logout page came back: %s", visibleError(p))
			}
			seen.Logout = true
			decision := "logout"
			if in.Stay {
				decision = "stay"
			}
			_, err = a.Submit(ctx, formLogout, map[string]string{"decision": decision})
		case has(p, formDevice):
			if seen.Device {
				return p, seen, fmt.Errorf("the device page came back: %s", visibleError(p))
			}
			seen.Device = true
			f, _ := p.Form(formDevice)
			v := map[string]string{}
			if f.Fields.Get("user_code") == "" {
				v["user_code"] = in.UserCode
			}
			_, err = a.Submit(ctx, formDevice, v)
		default:
			return p, seen, nil
		}
		if err != nil {
			return a.Page, seen, err
		}
	}
	return a.Page, seen, errors.New("the login app kept showing pages")
}

func has(p *Page, formID string) bool {
	_, ok := p.Form(formID)
	return ok
}

// visibleError returns the error message a page shows, for diagnostics.
func visibleError(p *Page) string {
	i := strings.Index(p.Body, `id="error"`)
	if i < 0 {
		return fmt.Sprintf("status %d at %s", p.Status, p.URL.Redacted())
	}
	s := p.Body[i:]
	if j := strings.Index(s, ">"); j >= 0 {
		s = s[j+1:]
	}
	if j := strings.Index(s, "<"); j >= 0 {
		s = s[:j]
	}
	return strings.TrimSpace(s)
}
