package login

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"errors"
	"html/template"
	"net/http"
	"strings"
	"time"

	"github.com/latchkey-oidc/latchkey/login/totp"
	"github.com/latchkey-oidc/latchkey/store"
)

// recentAuth is how fresh a sign-in must be to change how the account signs in.
const recentAuth = 15 * time.Minute

// recoveryCodeCount is how many recovery codes a user gets at a time.
const recoveryCodeCount = 10

// accountData is the account page's data.
type accountData struct {
	User        *store.User
	Name        string
	Factors     factors
	TOTPPending bool
	Passkeys    []store.WebAuthnCredential
	Linked      []store.FederatedIdentity
	PasskeysOn  bool
	// RecoveryCodes are shown once, right after they were generated.
	RecoveryCodes []string
}

// accountSession returns the signed-in account session and its user, or
// sends the browser to sign in and returns false. fresh asks for a sign-in
// within recentAuth, for changes to how the account signs in.
func (a *App) accountSession(w http.ResponseWriter, r *http.Request, fresh bool) (*store.AccountSession, *store.User, bool) {
	ctx := r.Context()
	toSignIn := func() {
		// After signing in the browser comes back with a GET, which only
		// the pages (not the forms) answer.
		next := "/account"
		if r.Method == http.MethodGet {
			next = cmp.Or(safeNext(r.URL.Path), next)
		}
		redirect(w, r, a.url("/login?next="+next))
	}
	c, err := r.Cookie(cookieAccount)
	if err != nil {
		toSignIn()
		return nil, nil, false
	}
	sess, err := a.store.GetAccountSession(ctx, c.Value)
	if errors.Is(err, store.ErrNotFound) {
		a.cookies.clear(w, cookieAccount)
		toSignIn()
		return nil, nil, false
	}
	if err != nil {
		a.serverError(w, r, err)
		return nil, nil, false
	}
	user, err := a.store.GetUser(ctx, sess.UserID)
	if err != nil || user.Disabled {
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			a.serverError(w, r, err)
			return nil, nil, false
		}
		_ = a.store.DeleteAccountSession(ctx, sess.ID)
		a.cookies.clear(w, cookieAccount)
		toSignIn()
		return nil, nil, false
	}
	if fresh && a.cfg.Now().Sub(sess.AuthTime) > recentAuth {
		// Changing how the account signs in needs a recent sign-in.
		toSignIn()
		return nil, nil, false
	}
	return sess, user, true
}

// accountPage shows the user's account.
func (a *App) accountPage(w http.ResponseWriter, r *http.Request) {
	_, user, ok := a.accountSession(w, r, false)
	if !ok {
		return
	}
	a.showAccount(w, r, http.StatusOK, user, nil, r.URL.Query().Get("done"), "")
}

// accountNotices are the messages a finished account change leaves.
var accountNotices = map[string]string{
	"password":        "Your password was changed. Other sign-ins to your account were ended.",
	"totp":            "Your authenticator app is set up.",
	"totp-removed":    "Your authenticator app was removed.",
	"passkey":         "Your passkey was added.",
	"passkey-removed": "The passkey was removed.",
	"unlinked":        "The account was unlinked.",
}

func (a *App) showAccount(w http.ResponseWriter, r *http.Request, status int, user *store.User, codes []string, done, msg string) {
	ctx := r.Context()
	f, err := a.factorsOf(ctx, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	d := accountData{User: user, Factors: f, RecoveryCodes: codes, PasskeysOn: a.passkeys != nil}
	if d.Passkeys, err = a.store.ListWebAuthnCredentials(ctx, user.ID); err != nil {
		a.serverError(w, r, err)
		return
	}
	if d.Linked, err = a.store.ListFederatedIdentities(ctx, user.ID); err != nil {
		a.serverError(w, r, err)
		return
	}
	if claims, err := userClaims(user); err == nil {
		d.Name, _ = claims["name"].(string)
	}
	a.pages.render(w, status, "account", view{
		Title: "Your account", CSRF: a.cookies.csrfToken(w, r), Error: msg, Notice: accountNotices[done], Data: d,
	})
}

// changePassword sets a new password after checking the current one.
func (a *App) changePassword(w http.ResponseWriter, r *http.Request, sess *store.AccountSession, user *store.User) {
	ctx := r.Context()
	if user.PasswordHash != "" {
		checked, wait, err := a.checkPassword(ctx, sourceAddress(r), user.Username, r.PostFormValue("current"))
		switch {
		case err != nil:
			a.serverError(w, r, err)
			return
		case wait > 0:
			a.showAccount(w, r, http.StatusTooManyRequests, user, nil, "", waitMessage(wait))
			return
		case checked == nil || checked.ID != user.ID:
			a.showAccount(w, r, http.StatusUnauthorized, user, nil, "", "Your current password is not right.")
			return
		}
	}
	pw := r.PostFormValue("new")
	if pw != r.PostFormValue("confirm") {
		a.showAccount(w, r, http.StatusBadRequest, user, nil, "", "The new passwords do not match.")
		return
	}
	if err := a.cfg.Policy.Check(pw, user.Username, user.Email); err != nil {
		a.showAccount(w, r, http.StatusBadRequest, user, nil, "", err.Error())
		return
	}
	hash, err := a.cfg.Passwords.Hash(ctx, pw)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.store.SetPasswordHash(ctx, user.ID, hash); err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.endOtherSessions(r, sess, user); err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/account?done=password"))
}

// totpSetupData is the TOTP enrolment page's data.
type totpSetupData struct {
	// QRCode is a data: URL the app made itself, so it is marked safe for
	// the img src html/template would otherwise blank.
	QRCode         template.URL
	Manual, Action string
}

// totpSetupPage starts (or restarts) a TOTP enrolment from the account page.
func (a *App) totpSetupPage(w http.ResponseWriter, r *http.Request) {
	_, user, ok := a.accountSession(w, r, true)
	if !ok {
		return
	}
	a.showTOTPSetup(w, r, http.StatusOK, user, "/account/totp", "")
}

// showTOTPSetup stores a new unconfirmed seed and shows it. A user with a
// confirmed enrolment must remove it first.
func (a *App) showTOTPSetup(w http.ResponseWriter, r *http.Request, status int, user *store.User, action, msg string) {
	ctx := r.Context()
	key, err := totp.Generate(a.cfg.ProductName, user.Username)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	err = a.store.SaveTOTPEnrolment(ctx, user.ID, key.Secret)
	if errors.Is(err, store.ErrAlreadyExists) {
		redirect(w, r, a.url("/account"))
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.pages.render(w, status, "totp-setup", view{
		Title: "Set up an authenticator app", CSRF: a.cookies.csrfToken(w, r), Error: msg,
		Data: totpSetupData{QRCode: template.URL(key.QRCode), Manual: key.Manual, Action: action},
	})
}

// confirmTOTP checks the first code from a new enrolment and confirms it;
// the code's step counts as used.
func (a *App) confirmTOTP(r *http.Request, user *store.User) (string, error) {
	ctx := r.Context()
	enr, err := a.store.GetTOTPEnrolment(ctx, user.ID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && enr.Confirmed) {
		return "Start the set-up again.", nil
	}
	if err != nil {
		return "", err
	}
	step, err := totp.Verify(enr.Secret, r.PostFormValue("code"), a.cfg.Now())
	if errors.Is(err, totp.ErrInvalidCode) {
		return "That code is not right. Scan the new code below and try again.", nil
	}
	if err != nil {
		return "", err
	}
	if err := a.store.ConfirmTOTP(ctx, user.ID, step); err != nil {
		return "", err
	}
	return "", nil
}

// totpSetup confirms an enrolment started on the account page.
func (a *App) totpSetup(w http.ResponseWriter, r *http.Request, sess *store.AccountSession, user *store.User) {
	msg, err := a.confirmTOTP(r, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if msg != "" {
		a.showTOTPSetup(w, r, http.StatusBadRequest, user, "/account/totp", msg)
		return
	}
	if err := a.endOtherSessions(r, sess, user); err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/account?done=totp"))
}

// signInTOTPSetupPage and signInTOTPSetup enrol TOTP in the middle of a
// sign-in, for users who must give a second factor but have none.
func (a *App) signInTOTPSetupPage(w http.ResponseWriter, r *http.Request) {
	p, user, ok := a.progress(w, r)
	if !ok {
		return
	}
	f, err := a.secondFactors(r.Context(), p, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if f.TOTP || f.Passkeys > 0 || f.Email != "" || f.RecoveryCodes > 0 {
		redirect(w, r, a.url("/login/second-factor"))
		return
	}
	a.showTOTPSetup(w, r, http.StatusOK, user, "/login/setup-totp", "")
}

func (a *App) signInTOTPSetup(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	p, user, ok := a.progress(w, r)
	if !ok {
		return
	}
	msg, err := a.confirmTOTP(r, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if msg != "" {
		a.metrics.challenges.WithLabelValues("totp", resultFailure).Inc()
		a.showTOTPSetup(w, r, http.StatusBadRequest, user, "/login/setup-totp", msg)
		return
	}
	a.metrics.challenges.WithLabelValues("totp", resultSuccess).Inc()
	p.AMR = withAMR(p.AMR, "otp", "mfa")
	a.finish(w, r, p)
}

// removeTOTP deletes the user's TOTP enrolment.
func (a *App) removeTOTP(w http.ResponseWriter, r *http.Request, _ *store.AccountSession, user *store.User) {
	if err := a.store.DeleteTOTPEnrolment(r.Context(), user.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/account?done=totp-removed"))
}

type passkeyData struct{ Options string }

// passkeyNewPage starts registering a passkey.
func (a *App) passkeyNewPage(w http.ResponseWriter, r *http.Request) {
	if a.passkeysOff(w, r) {
		return
	}
	_, user, ok := a.accountSession(w, r, true)
	if !ok {
		return
	}
	a.showPasskeyNew(w, r, http.StatusOK, user, "")
}

func (a *App) showPasskeyNew(w http.ResponseWriter, r *http.Request, status int, user *store.User, msg string) {
	acct, err := a.passkeyAccount(r.Context(), user)
	var opts string
	if err == nil {
		opts, err = a.beginCeremony(w, ceremony{Purpose: "register"}, func() (json.RawMessage, []byte, error) {
			return a.passkeys.BeginRegistration(acct)
		})
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	a.pages.render(w, status, "passkey-new", view{
		Title: "Add a passkey", CSRF: a.cookies.csrfToken(w, r), Error: msg,
		Scripts: []string{"webauthn.js"}, Data: passkeyData{Options: opts},
	})
}

// passkeyRegister finishes registering a passkey.
func (a *App) passkeyRegister(w http.ResponseWriter, r *http.Request, sess *store.AccountSession, user *store.User) {
	if a.passkeysOff(w, r) {
		return
	}
	ctx := r.Context()
	var c ceremony
	if err := a.cookies.openSealed(r, cookieCeremony, &c); err != nil || c.Purpose != "register" {
		a.showPasskeyNew(w, r, http.StatusBadRequest, user, "The request expired. Try again.")
		return
	}
	a.cookies.clear(w, cookieCeremony)
	acct, err := a.passkeyAccount(ctx, user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	nc, err := a.passkeys.FinishRegistration(acct, c.State, []byte(r.PostFormValue("credential")))
	if err != nil {
		a.cfg.Log.InfoContext(ctx, "passkey registration refused", "user", user.ID, "error", err)
		a.showPasskeyNew(w, r, http.StatusBadRequest, user, "The passkey could not be registered. Try again.")
		return
	}
	name := strings.TrimSpace(r.PostFormValue("name"))
	if name == "" {
		name = "Passkey added " + a.cfg.Now().Format("2 Jan 2006")
	}
	if len(name) > 100 {
		name = name[:100]
	}
	err = a.store.AddWebAuthnCredential(ctx, user.ID, nc.ID, name, nc.Credential, nc.SignCount)
	if errors.Is(err, store.ErrAlreadyExists) {
		a.showPasskeyNew(w, r, http.StatusConflict, user, "That passkey is already registered.")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if err := a.endOtherSessions(r, sess, user); err != nil {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/account?done=passkey"))
}

// passkeyRemove deletes one of the user's passkeys.
func (a *App) passkeyRemove(w http.ResponseWriter, r *http.Request, _ *store.AccountSession, user *store.User) {
	err := a.store.DeleteWebAuthnCredential(r.Context(), user.ID, r.PostFormValue("id"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/account?done=passkey-removed"))
}

// regenerateRecoveryCodes replaces the user's recovery codes and shows the
// new ones, this once.
func (a *App) regenerateRecoveryCodes(w http.ResponseWriter, r *http.Request, _ *store.AccountSession, user *store.User) {
	codes := make([]string, recoveryCodeCount)
	hashes := make([]string, recoveryCodeCount)
	for i := range codes {
		codes[i] = newRecoveryCode()
		hashes[i] = a.recoveryHash(user.ID, codes[i])
	}
	if err := a.store.ReplaceRecoveryCodes(r.Context(), user.ID, hashes); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.showAccount(w, r, http.StatusOK, user, codes, "", "")
}

// unlinkUpstream removes a link to an upstream account, unless it is the
// only way the user can sign in.
func (a *App) unlinkUpstream(w http.ResponseWriter, r *http.Request, _ *store.AccountSession, user *store.User) {
	ctx := r.Context()
	linked, err := a.store.ListFederatedIdentities(ctx, user.ID)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if user.PasswordHash == "" && len(linked) <= 1 {
		a.showAccount(w, r, http.StatusBadRequest, user, nil, "", "Set a password before you unlink your only way to sign in.")
		return
	}
	err = a.store.UnlinkFederatedIdentity(ctx, user.ID, r.PostFormValue("provider"), r.PostFormValue("subject"))
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		a.serverError(w, r, err)
		return
	}
	redirect(w, r, a.url("/account?done=unlinked"))
}

// accountSignOut ends the account session.
func (a *App) accountSignOut(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	if err := a.endAccountSession(w, r); err != nil {
		a.serverError(w, r, err)
		return
	}
	a.pages.render(w, http.StatusOK, "signed-out", view{Title: "Signed out"})
}

// accountForm reads an account page's form and checks the session (signed
// in within recentAuth when fresh) before h runs.
func (a *App) accountForm(fresh bool, h func(w http.ResponseWriter, r *http.Request, sess *store.AccountSession, user *store.User)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !a.parseForm(w, r) {
			return
		}
		if sess, user, ok := a.accountSession(w, r, fresh); ok {
			h(w, r, sess, user)
		}
	}
}

// endOtherSessions ends the user's account sessions in other browsers
// after a change to how the account signs in: a session that began with
// the old password, or before the new second factor, no longer counts.
func (a *App) endOtherSessions(r *http.Request, sess *store.AccountSession, user *store.User) error {
	_, err := a.store.DeleteAccountSessions(r.Context(), user.ID, sess.ID)
	return err
}

// endAccountSession deletes the browser's account session, if any.
func (a *App) endAccountSession(w http.ResponseWriter, r *http.Request) error {
	c, err := r.Cookie(cookieAccount)
	if err != nil {
		return nil
	}
	a.cookies.clear(w, cookieAccount)
	return a.store.DeleteAccountSession(r.Context(), c.Value)
}

// recoveryAlphabet leaves out letters that read like digits.
const recoveryAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"

// newRecoveryCode returns a code like "k7dm-q2rx-9hwe": 12 symbols of a
// 31-letter alphabet, about 59 bits.
func newRecoveryCode() string {
	var b strings.Builder
	for i := range 12 {
		if i > 0 && i%4 == 0 {
			b.WriteByte('-')
		}
		b.WriteByte(recoveryAlphabet[randIndex(len(recoveryAlphabet))])
	}
	return b.String()
}

// randIndex returns a uniform random index below n (n ≤ 256).
func randIndex(n int) int {
	limit := 256 - 256%n
	var b [1]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if int(b[0]) < limit {
			return int(b[0]) % n
		}
	}
}

// recoveryHash is the stored form of a recovery code: keyed, and blind to
// case, spaces and dashes.
func (a *App) recoveryHash(userID, code string) string {
	code = strings.ToLower(strings.NewReplacer(" ", "", "-", "").Replace(code))
	return a.cookies.codeHash(userID, "recovery", code)
}
