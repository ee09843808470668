package login

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// ACR values the login app reports, and the acr_values that ask for a
// second factor.
const (
	acrPassword = "urn:latchkey:acr:pwd"
	acrMFA      = "urn:latchkey:acr:mfa"
)

// mfaACRs are acr_values that make the login app ask for a second factor.
var mfaACRs = []string{acrMFA, "mfa", "http://schemas.openid.net/pape/policies/2007/06/multi-factor"}

// signInProgress is what a sign-in has proved so far, sealed in a cookie
// between its steps. It is bound to the login challenge it serves (empty
// for a sign-in to the account page).
type signInProgress struct {
	Challenge string   `json:"c,omitempty"`
	UserID    string   `json:"u"`
	Method    string   `json:"f"` // first factor: password, passkey, upstream
	AMR       []string `json:"m"`
	AuthTime  int64    `json:"t"`
	Remember  bool     `json:"r,omitempty"`
	Next      string   `json:"n,omitempty"`
}

// progressTTL is how long a user has to finish the second step.
const progressTTL = 10 * time.Minute

// signInData is the sign-in page's data.
type signInData struct {
	Challenge string
	Next      string
	Client    string
	Username  string
	Remember  bool
	Upstreams []upstreamLink
	// PasskeyOptions start a passwordless sign-in.
	PasskeyOptions string
}

type upstreamLink struct{ Name, DisplayName string }

// signInPage shows the sign-in form, for a login challenge or, without one,
// for the account page.
func (a *App) signInPage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("login_challenge")
	ch, err := a.loginChallenge(r.Context(), id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	a.showSignIn(w, r, http.StatusOK, ch, safeNext(q.Get("next")), a.usernameHint(r.Context(), ch), false, "")
}

// loginChallenge fetches the login challenge a sign-in serves; a sign-in
// to the account page has none (nil, nil).
func (a *App) loginChallenge(ctx context.Context, id string) (*challenge, error) {
	if id == "" {
		return nil, nil
	}
	return a.admin.get(ctx, kindLogin, id)
}

// usernameHint pre-fills the username from login_hint, or from the user the
// provider's session already names.
func (a *App) usernameHint(ctx context.Context, ch *challenge) string {
	if ch == nil {
		return ""
	}
	if ch.OIDCContext.LoginHint != "" {
		return ch.OIDCContext.LoginHint
	}
	if ch.Subject != "" {
		if u, err := a.store.GetUser(ctx, ch.Subject); err == nil {
			return u.Username
		}
	}
	return ""
}

func (a *App) showSignIn(w http.ResponseWriter, r *http.Request, status int, ch *challenge, next, username string, remember bool, msg string) {
	d := signInData{Next: next, Username: username, Remember: remember}
	if ch != nil {
		d.Challenge, d.Client = ch.Challenge, ch.Client.displayName()
	}
	for name, u := range a.upstreams {
		d.Upstreams = append(d.Upstreams, upstreamLink{Name: name, DisplayName: u.DisplayName()})
	}
	slices.SortFunc(d.Upstreams, func(x, y upstreamLink) int { return strings.Compare(x.Name, y.Name) })
	v := view{Title: "Sign in", Error: msg}
	if a.passkeys != nil {
		var err error
		d.PasskeyOptions, err = a.beginCeremony(w, ceremony{Purpose: "passwordless", Challenge: d.Challenge}, a.passkeys.BeginDiscoverableLogin)
		if err != nil {
			a.serverError(w, r, err)
			return
		}
		v.Scripts = []string{"webauthn.js"}
	}
	v.CSRF, v.Data = a.cookies.csrfToken(w, r), d
	a.pages.render(w, status, "signin", v)
}

// signInPassword checks a username and password.
func (a *App) signInPassword(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	ctx := r.Context()
	id := r.PostFormValue("login_challenge")
	next := safeNext(r.PostFormValue("next"))
	remember := r.PostFormValue("remember") != ""
	ch, err := a.loginChallenge(ctx, id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	username := r.PostFormValue("username")
	user, wait, err := a.checkPassword(ctx, sourceAddress(r), username, r.PostFormValue("password"))
	switch {
	case err != nil:
		a.serverError(w, r, err)
		return
	case wait > 0:
		a.showSignIn(w, r, http.StatusTooManyRequests, ch, next, username, remember, waitMessage(wait))
		return
	case user == nil:
		a.showSignIn(w, r, http.StatusUnauthorized, ch, next, username, remember, "Invalid username or password.")
		return
	}
	p := &signInProgress{
		Challenge: id, UserID: user.ID, Method: "password", AMR: []string{"pwd"},
		AuthTime: a.cfg.Now().Unix(), Remember: remember, Next: next,
	}
	a.advance(w, r, p, ch, user)
}

// checkPassword verifies a user's password under the throttles. It returns
// the user on success; nil and how long to wait when throttled; nil and 0
// for wrong credentials, with the same cost whether or not the user
// exists. source is the client's address, or "" to skip the per-source
// limit (the password grant, where the provider is the caller).
func (a *App) checkPassword(ctx context.Context, source, username, password string) (*store.User, time.Duration, error) {
	lim := a.cfg.Limits
	method := methodPassword
	if source == "" {
		method = methodPasswordGrant
	}
	// Both tiers count the attempt before the password is checked, so that
	// of many at once only as many as the limits allow are checked. The
	// source tier counts failures only: its count of an attempt that is
	// not one is taken back.
	srcKey := "password:source:" + source
	if source != "" {
		wait, err := a.throttle.reserve(ctx, "password_source", srcKey, lim.PasswordPerSource)
		if err != nil || wait > 0 {
			if wait > 0 {
				a.metrics.signIns.WithLabelValues(method, resultThrottled).Inc()
			}
			return nil, wait, err
		}
	}
	notFailed := func() error {
		if source == "" {
			return nil
		}
		return a.throttle.undo(ctx, srcKey, lim.PasswordPerSource)
	}
	acctKey := "password:account:" + store.NormalizeUsername(username)
	wait, err := a.throttle.reserve(ctx, "password", acctKey, lim.PasswordPerAccount)
	if err == nil && wait > 0 {
		a.metrics.signIns.WithLabelValues(method, resultThrottled).Inc()
		err = notFailed()
	}
	if err != nil || wait > 0 {
		return nil, wait, err
	}
	user, err := a.store.GetUserByUsername(ctx, username)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, 0, err
	}
	ok := false
	if user != nil && user.PasswordHash != "" {
		if ok, err = a.cfg.Passwords.Verify(ctx, user.PasswordHash, password); err != nil {
			a.cfg.Log.WarnContext(ctx, "stored password hash unusable", "user", user.ID, "error", err)
			ok = false
		}
	} else if err := a.cfg.Passwords.VerifyDummy(ctx, password); err != nil {
		return nil, 0, err
	}
	if !ok || user.Disabled {
		a.metrics.signIns.WithLabelValues(method, resultFailure).Inc()
		return nil, 0, nil
	}
	if err := a.throttle.clear(ctx, acctKey, lim.PasswordPerAccount); err != nil {
		return nil, 0, err
	}
	if err := notFailed(); err != nil {
		return nil, 0, err
	}
	if a.cfg.Passwords.NeedsRehash(user.PasswordHash) {
		if h, err := a.cfg.Passwords.Hash(ctx, password); err == nil {
			if err := a.store.SetPasswordHash(ctx, user.ID, h); err != nil {
				a.cfg.Log.WarnContext(ctx, "rehash password", "user", user.ID, "error", err)
			}
		}
	}
	return user, 0, nil
}

// advance moves a sign-in on after a first factor: to the second-factor
// step when one is needed and not yet given, else to its end.
func (a *App) advance(w http.ResponseWriter, r *http.Request, p *signInProgress, ch *challenge, user *store.User) {
	need, err := a.needsSecondFactor(r.Context(), user, ch)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if !need || slices.Contains(p.AMR, "mfa") {
		a.finish(w, r, p)
		return
	}
	if err := a.cookies.setSealed(w, cookieProgress, p, progressTTL); err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/login/second-factor"))
}

// needsSecondFactor: users who enrolled one always give it; others when the
// client requires it or the request's acr_values ask for it.
func (a *App) needsSecondFactor(ctx context.Context, user *store.User, ch *challenge) (bool, error) {
	if ch != nil {
		if ch.Client != nil && ch.Client.RequireMFA {
			return true, nil
		}
		for _, acr := range ch.OIDCContext.ACRValues {
			if slices.Contains(mfaACRs, acr) {
				return true, nil
			}
		}
	}
	f, err := a.factorsOf(ctx, user)
	if err != nil {
		return false, err
	}
	return f.TOTP || f.Passkeys > 0, nil
}

// factors are the second factors a user can give.
type factors struct {
	TOTP          bool
	Passkeys      int
	RecoveryCodes int
	Email         string // masked address; empty when codes cannot be sent
}

func (a *App) factorsOf(ctx context.Context, user *store.User) (factors, error) {
	var f factors
	enr, err := a.store.GetTOTPEnrolment(ctx, user.ID)
	switch {
	case err == nil:
		f.TOTP = enr.Confirmed
	case !errors.Is(err, store.ErrNotFound):
		return f, err
	}
	creds, err := a.store.ListWebAuthnCredentials(ctx, user.ID)
	if err != nil {
		return f, err
	}
	f.Passkeys = len(creds)
	if f.RecoveryCodes, err = a.store.CountUnusedRecoveryCodes(ctx, user.ID); err != nil {
		return f, err
	}
	if a.cfg.Mail != nil && user.Email != "" {
		f.Email = maskEmail(user.Email)
	}
	return f, nil
}

// finish ends a sign-in: it starts a new account session (a fresh ID, so a
// session planted before sign-in is worthless) and, for a login challenge,
// tells the provider who signed in and how.
func (a *App) finish(w http.ResponseWriter, r *http.Request, p *signInProgress) {
	ctx := r.Context()
	if c, err := r.Cookie(cookieAccount); err == nil {
		if err := a.store.DeleteAccountSession(ctx, c.Value); err != nil {
			a.serverError(w, r, err)
			return
		}
	}
	sess := &store.AccountSession{
		ID: randomToken(), UserID: p.UserID, AMR: p.AMR,
		AuthTime: time.Unix(p.AuthTime, 0), ExpiresAt: a.cfg.Now().Add(a.cfg.SessionLifespan),
	}
	if err := a.store.CreateAccountSession(ctx, sess); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.cookies.set(w, cookieAccount, sess.ID, 0)
	a.cookies.clear(w, cookieProgress)
	a.metrics.signIns.WithLabelValues(p.Method, resultSuccess).Inc()
	if p.Challenge == "" {
		redirect(w, r, a.url(cmp.Or(p.Next, "/account")))
		return
	}
	acr := acrPassword
	if slices.Contains(p.AMR, "mfa") {
		acr = acrMFA
	}
	accept := loginAccept{Subject: p.UserID, ACR: acr, AMR: p.AMR, Remember: p.Remember}
	if p.Remember {
		accept.RememberFor = int64(a.cfg.SessionLifespan / time.Second)
	}
	to, err := a.admin.accept(ctx, kindLogin, p.Challenge, accept)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	redirect(w, r, to)
}

// progress opens the sign-in in progress; on failure it has answered.
func (a *App) progress(w http.ResponseWriter, r *http.Request) (*signInProgress, *store.User, bool) {
	var p signInProgress
	if err := a.cookies.openSealed(r, cookieProgress, &p); err != nil {
		a.pages.fail(w, r, http.StatusBadRequest, "Your sign-in took too long or was interrupted. Go back to the application and sign in again.")
		return nil, nil, false
	}
	user, err := a.store.GetUser(r.Context(), p.UserID)
	if err != nil || user.Disabled {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.serverError(w, r, err)
			return nil, nil, false
		}
		a.cookies.clear(w, cookieProgress)
		a.pages.fail(w, r, http.StatusBadRequest, "This account cannot sign in.")
		return nil, nil, false
	}
	return &p, user, true
}

// withAMR adds methods to an amr list, once each, keeping "mfa" last.
func withAMR(amr []string, methods ...string) []string {
	out := slices.Clone(amr)
	for _, m := range methods {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	if i := slices.Index(out, "mfa"); i >= 0 {
		out = append(slices.Delete(out, i, i+1), "mfa")
	}
	return out
}

// safeNext keeps a post-sign-in destination only when it is one of the
// account pages, so the parameter cannot become an open redirect.
func safeNext(next string) string {
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return ""
	}
	if u.Path != "/account" && !strings.HasPrefix(u.Path, "/account/") {
		return ""
	}
	if strings.Contains(u.Path, "..") || strings.Contains(u.Path, "//") || strings.Contains(u.Path, "\\") {
		return ""
	}
	return u.Path
}

// maskEmail shows enough of an address for its owner to recognise it.
func maskEmail(email string) string {
	local, domain, ok := strings.Cut(email, "@")
	if !ok || local == "" {
		return "your email address"
	}
	return local[:1] + "•••@" + domain
}

// userClaims are the user's standard claims for the provider's consent
// decision: the profile plus what the account itself says.
func userClaims(u *store.User) (map[string]any, error) {
	claims := map[string]any{}
	if len(u.Profile) > 0 {
		if err := json.Unmarshal(u.Profile, &claims); err != nil {
			return nil, fmt.Errorf("profile of user %q: %w", u.ID, err)
		}
	}
	claims["preferred_username"] = u.Username
	if u.Email != "" {
		claims["email"] = u.Email
		claims["email_verified"] = u.EmailVerified
	}
	claims["updated_at"] = u.UpdatedAt.Unix()
	delete(claims, "sub")
	return claims, nil
}
