package login

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"

	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/login/passkey"
	"github.com/latchkey-oidc/latchkey/login/totp"
	"github.com/latchkey-oidc/latchkey/store"
)

// ceremony is the state between the two halves of a WebAuthn ceremony or
// an upstream sign-in, sealed in a cookie.
type ceremony struct {
	Purpose   string `json:"p"` // passwordless, mfa, register, upstream
	State     []byte `json:"s,omitempty"`
	Challenge string `json:"c,omitempty"`
	Next      string `json:"n,omitempty"`
	// Upstream sign-ins.
	Upstream string `json:"u,omitempty"`
	OAuth    string `json:"o,omitempty"` // the state parameter
	Nonce    string `json:"x,omitempty"`
	Verifier string `json:"v,omitempty"`
}

// emailPurpose names sign-in codes among one-time codes.
const emailPurpose = "signin"

// secondFactorData is the second-factor page's data.
type secondFactorData struct {
	Factors        factors
	PasskeyOptions string
	Sent           bool
}

// secondFactorPage offers the factors the user can give; a user who must
// give one but has none enrolled is sent to set up TOTP.
func (a *App) secondFactorPage(w http.ResponseWriter, r *http.Request) {
	p, user, ok := a.progress(w, r)
	if !ok {
		return
	}
	a.showSecondFactor(w, r, http.StatusOK, p, user, r.URL.Query().Get("sent") != "", "")
}

func (a *App) showSecondFactor(w http.ResponseWriter, r *http.Request, status int, p *signInProgress, user *store.User, sent bool, msg string) {
	f, err := a.secondFactors(r.Context(), p, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if !f.TOTP && f.Passkeys == 0 && f.Email == "" && f.RecoveryCodes == 0 {
		redirect(w, r, a.url("/login/setup-totp"))
		return
	}
	d := secondFactorData{Factors: f, Sent: sent}
	v := view{Title: "Confirm it is you", Error: msg}
	if f.Passkeys > 0 && a.passkeys != nil {
		acct, err := a.passkeyAccount(r.Context(), user)
		if err == nil {
			d.PasskeyOptions, err = a.beginCeremony(w, ceremony{Purpose: "mfa", Challenge: p.Challenge}, func() (json.RawMessage, []byte, error) {
				return a.passkeys.BeginLogin(acct)
			})
		}
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		v.Scripts = []string{"webauthn.js"}
	}
	if sent {
		v.Notice = "We sent a code to " + f.Email + "."
	}
	v.CSRF, v.Data = a.cookies.csrfToken(w, r), d
	a.pages.render(w, status, "second-factor", v)
}

// secondFactors are the factors a sign-in in progress may still use. A
// passkey that signed in without user verification cannot also be the
// second factor: that would count one device twice.
func (a *App) secondFactors(ctx context.Context, p *signInProgress, user *store.User) (factors, error) {
	f, err := a.factorsOf(ctx, user)
	if p.Method == "passkey" {
		f.Passkeys = 0
	}
	return f, err
}

// codeStep runs the common part of a code check: the progress, the
// throttle, then check; on a wrong code the page is shown again with
// wrongMsg. check returns the methods to add, or a user-facing message.
func (a *App) codeStep(w http.ResponseWriter, r *http.Request, method string, check func(p *signInProgress, user *store.User, code string) (amr []string, msg string, err error)) {
	if !a.parseForm(w, r) {
		return
	}
	p, user, ok := a.progress(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	key := "code:account:" + user.ID
	wait, err := a.throttle.reserve(ctx, "code", key, a.cfg.Limits.CodePerAccount)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if wait > 0 {
		a.metrics.challenges.WithLabelValues(method, resultThrottled).Inc()
		a.showSecondFactor(w, r, http.StatusTooManyRequests, p, user, false, waitMessage(wait))
		return
	}
	amr, msg, err := check(p, user, strings.TrimSpace(r.PostFormValue("code")))
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if msg != "" {
		a.metrics.challenges.WithLabelValues(method, resultFailure).Inc()
		// A mistyped email code can be typed again without a new email.
		a.showSecondFactor(w, r, http.StatusUnauthorized, p, user, method == "email", msg)
		return
	}
	if err := a.throttle.clear(ctx, key, a.cfg.Limits.CodePerAccount); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.metrics.challenges.WithLabelValues(method, resultSuccess).Inc()
	p.AMR = withAMR(p.AMR, append(amr, "mfa")...)
	a.finish(w, r, p)
}

// verifyTOTP checks a code from the user's authenticator app; a code of a
// time step already used is refused.
func (a *App) verifyTOTP(w http.ResponseWriter, r *http.Request) {
	a.codeStep(w, r, "totp", func(_ *signInProgress, user *store.User, code string) ([]string, string, error) {
		ctx := r.Context()
		enr, err := a.store.GetTOTPEnrolment(ctx, user.ID)
		if errors.Is(err, store.ErrNotFound) || (err == nil && !enr.Confirmed) {
			return nil, "This account has no authenticator app set up.", nil
		}
		if err != nil {
			return nil, "", err
		}
		step, err := totp.Verify(enr.Secret, code, a.cfg.Now())
		if errors.Is(err, totp.ErrInvalidCode) {
			return nil, "That code is not right. Check your authenticator app and try again.", nil
		}
		if err != nil {
			return nil, "", err
		}
		err = a.store.UseTOTPStep(ctx, user.ID, step)
		if errors.Is(err, store.ErrTOTPStepUsed) {
			return nil, "That code was already used. Wait for the next code and enter it.", nil
		}
		if err != nil {
			return nil, "", err
		}
		return []string{"otp"}, "", nil
	})
}

// verifyRecoveryCode spends one of the user's recovery codes.
func (a *App) verifyRecoveryCode(w http.ResponseWriter, r *http.Request) {
	a.codeStep(w, r, "recovery", func(_ *signInProgress, user *store.User, code string) ([]string, string, error) {
		err := a.store.UseRecoveryCode(r.Context(), user.ID, a.recoveryHash(user.ID, code))
		if errors.Is(err, store.ErrNotFound) {
			return nil, "That recovery code is not right, or was already used.", nil
		}
		if err != nil {
			return nil, "", err
		}
		return []string{"otp"}, "", nil
	})
}

// verifyEmailCode checks the code sent by email.
func (a *App) verifyEmailCode(w http.ResponseWriter, r *http.Request) {
	a.codeStep(w, r, "email", func(_ *signInProgress, user *store.User, code string) ([]string, string, error) {
		ctx := r.Context()
		err := a.store.VerifyOneTimeCode(ctx, user.ID, emailPurpose, a.cookies.codeHash(user.ID, emailPurpose, code), a.cfg.Limits.EmailCodeAttempts)
		switch {
		case errors.Is(err, store.ErrOneTimeCodeMismatch):
			return nil, "That code is not right. Check the email and try again.", nil
		case errors.Is(err, store.ErrOneTimeCodeExhausted):
			return nil, "That code was entered wrongly too many times. Send a new code.", nil
		case errors.Is(err, store.ErrOneTimeCodeExpired):
			return nil, "That code has expired. Send a new code.", nil
		case errors.Is(err, store.ErrNotFound):
			return nil, "There is no code waiting. Send a code first.", nil
		case err != nil:
			return nil, "", err
		}
		if !user.EmailVerified {
			// The user just proved they read mail at this address.
			user.EmailVerified = true
			if err := a.store.UpdateUser(ctx, user); err != nil {
				return nil, "", err
			}
		}
		return []string{"otp"}, "", nil
	})
}

// sendEmailCode emails a new six-digit code, within the resend limit.
func (a *App) sendEmailCode(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	p, user, ok := a.progress(w, r)
	if !ok {
		return
	}
	if a.cfg.Mail == nil || user.Email == "" {
		a.showSecondFactor(w, r, http.StatusBadRequest, p, user, false, "Codes cannot be sent to this account.")
		return
	}
	ctx := r.Context()
	code, err := sixDigits()
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	lim := a.cfg.Limits
	err = a.store.CreateOneTimeCode(ctx, user.ID, emailPurpose, a.cookies.codeHash(user.ID, emailPurpose, code),
		lim.EmailCodeTTL, lim.EmailCodesPerWindow, lim.EmailCodeWindow)
	if errors.Is(err, store.ErrTooManyOneTimeCodes) {
		a.metrics.challenges.WithLabelValues("email", resultThrottled).Inc()
		a.showSecondFactor(w, r, http.StatusTooManyRequests, p, user, false,
			fmt.Sprintf("You were sent as many codes as allowed. Use the last one, or wait up to %d minutes before asking for another.", int(lim.EmailCodeWindow.Minutes())))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	msg := mail.Message{
		To:      user.Email,
		Subject: "Your " + a.cfg.ProductName + " sign-in code",
		Text: fmt.Sprintf("Your sign-in code is %s\n\nIt works for %d minutes. If you did not try to sign in, someone knows your password: change it.\n",
			code, int(lim.EmailCodeTTL.Minutes())),
	}
	if err := a.cfg.Mail.Send(ctx, msg); err != nil {
		a.serverError(w, r, fmt.Errorf("send sign-in code: %w", err))
		return
	}
	a.metrics.challenges.WithLabelValues("email", resultSent).Inc()
	redirect(w, r, a.url("/login/second-factor?sent=1"))
}

// verifyPasskey checks a WebAuthn assertion as the second factor.
func (a *App) verifyPasskey(w http.ResponseWriter, r *http.Request) {
	if a.passkeysOff(w, r) || !a.parseForm(w, r) {
		return
	}
	p, user, ok := a.progress(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	var c ceremony
	if err := a.cookies.openSealed(r, cookieCeremony, &c); err != nil || c.Purpose != "mfa" || c.Challenge != p.Challenge || p.Method == "passkey" {
		a.metrics.challenges.WithLabelValues("webauthn", resultFailure).Inc()
		a.showSecondFactor(w, r, http.StatusBadRequest, p, user, false, "The passkey request expired. Try again.")
		return
	}
	a.cookies.clear(w, cookieCeremony)
	acct, err := a.passkeyAccount(ctx, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	as, err := a.passkeys.FinishLogin(acct, c.State, []byte(r.PostFormValue("credential")))
	if err == nil {
		err = a.store.UpdateWebAuthnSignCount(ctx, as.CredentialID, as.SignCount, as.Credential)
	}
	if err != nil {
		a.cfg.Log.InfoContext(ctx, "passkey refused", "user", user.ID, "error", err)
		a.metrics.challenges.WithLabelValues("webauthn", resultFailure).Inc()
		a.showSecondFactor(w, r, http.StatusUnauthorized, p, user, false, "That passkey could not be verified. Try again or use another way.")
		return
	}
	a.metrics.challenges.WithLabelValues("webauthn", resultSuccess).Inc()
	p.AMR = withAMR(p.AMR, append(as.AMR, "mfa")...)
	a.finish(w, r, p)
}

// signInPasskey signs in with a discoverable passkey alone, from the
// sign-in page. With user verification it is two factors by itself.
func (a *App) signInPasskey(w http.ResponseWriter, r *http.Request) {
	if a.passkeysOff(w, r) || !a.parseForm(w, r) {
		return
	}
	ctx := r.Context()
	id := r.PostFormValue("login_challenge")
	next := safeNext(r.PostFormValue("next"))
	ch, err := a.loginChallenge(ctx, id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	fail := func(msg string) {
		a.metrics.signIns.WithLabelValues(methodPasskey, resultFailure).Inc()
		a.showSignIn(w, r, http.StatusUnauthorized, ch, next, "", false, msg)
	}
	var c ceremony
	if err := a.cookies.openSealed(r, cookieCeremony, &c); err != nil || c.Purpose != "passwordless" || c.Challenge != id {
		fail("The passkey request expired. Try again.")
		return
	}
	acct, as, err := a.passkeys.FinishDiscoverableLogin(ctx, c.State, []byte(r.PostFormValue("credential")),
		func(ctx context.Context, handle []byte) (passkey.Account, error) {
			u, err := a.store.GetUser(ctx, string(handle))
			if err != nil {
				return passkey.Account{}, err
			}
			return a.passkeyAccount(ctx, u)
		})
	if err == nil {
		err = a.store.UpdateWebAuthnSignCount(ctx, as.CredentialID, as.SignCount, as.Credential)
	}
	if err != nil {
		a.cfg.Log.InfoContext(ctx, "passkey sign-in refused", "error", err)
		fail("That passkey could not be verified.")
		return
	}
	if acct.User.Disabled {
		fail("This account cannot sign in.")
		return
	}
	p := &signInProgress{
		Challenge: id, UserID: acct.User.ID, Method: "passkey", AMR: withAMR(nil, as.AMR...),
		AuthTime: a.cfg.Now().Unix(), Remember: r.PostFormValue("remember") != "", Next: next,
	}
	a.advance(w, r, p, ch, acct.User)
}

// passkeyAccount is a user with their registered passkeys.
func (a *App) passkeyAccount(ctx context.Context, user *store.User) (passkey.Account, error) {
	creds, err := a.store.ListWebAuthnCredentials(ctx, user.ID)
	return passkey.Account{User: user, Credentials: creds}, err
}

// beginCeremony starts a WebAuthn ceremony with begin, seals its state
// with c into the ceremony cookie, and returns the options for the page.
func (a *App) beginCeremony(w http.ResponseWriter, c ceremony, begin func() (json.RawMessage, []byte, error)) (string, error) {
	opts, state, err := begin()
	if err != nil {
		return "", err
	}
	c.State = state
	if err := a.cookies.setSealed(w, cookieCeremony, c, progressTTL); err != nil {
		return "", err
	}
	return string(opts), nil
}

// sixDigits returns a uniformly random six-digit code.
func sixDigits() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}
