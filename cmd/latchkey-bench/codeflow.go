package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// totpForm is the id of the login app's TOTP form (login/templates).
const totpForm = "totp-form"

// errSecondFactor is a login app that asks the user for a TOTP code.
var errSecondFactor = errors.New("the login app asked for a second factor (TOTP)")

// codeClientMeta is the metadata of the code flow scenarios' clients.
func codeClientMeta(name, redirectURI string) map[string]any {
	return map[string]any{
		"client_name":                "latchkey-bench " + name,
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "client_secret_basic",
		"scope":                      "openid offline_access profile",
	}
}

// codeFlow is the authorization code flow of one client: what a relying
// party does around the login app's pages.
type codeFlow struct {
	t           *target
	c           client
	redirectURI string
	scope       string
}

// run walks one authorization request with PKCE (S256), state and nonce
// in browser a, answering the login app's pages as in says, up to the
// redirect back to the client (which is not loaded), and exchanges the
// code at the token endpoint.
func (f *codeFlow) run(ctx context.Context, a *useragent.Agent, in useragent.Interaction) (*tokenAnswer, error) {
	verifier := rand.Text() + rand.Text() // 52 characters of [A-Z2-7]
	sum := sha256.Sum256([]byte(verifier))
	state, nonce := rand.Text(), rand.Text()
	u, err := url.Parse(f.t.meta.AuthorizationEndpoint)
	if err != nil {
		return nil, fmt.Errorf("authorization_endpoint: %w", err)
	}
	q := u.Query()
	for k, v := range map[string]string{
		"response_type": "code", "client_id": f.c.ID, "redirect_uri": f.redirectURI, "scope": f.scope,
		"state": state, "nonce": nonce,
		"code_challenge": base64.RawURLEncoding.EncodeToString(sum[:]), "code_challenge_method": "S256",
	} {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	if _, err := a.Get(ctx, u.String()); err != nil {
		return nil, agentFailure(err)
	}
	p, _, err := a.Continue(ctx, in)
	if err != nil {
		if p != nil {
			if _, ok := p.Form(totpForm); ok && (in.User == nil || in.User.Authenticator == nil) {
				return nil, &failure{kind: "second_factor", detail: errSecondFactor.Error()}
			}
			if p.Status == http.StatusTooManyRequests && errors.Is(err, useragent.ErrSignInRefused) {
				// The login app's per-account or per-source throttle.
				return nil, &failure{kind: "sign_in_throttled", detail: err.Error()}
			}
		}
		return nil, agentFailure(err)
	}
	if p == nil || !p.Redirect {
		status, where := 0, ""
		if p != nil {
			status, where = p.Status, p.URL.Redacted()
		}
		if status >= 400 {
			return nil, &failure{kind: fmt.Sprintf("http_%d", status), detail: "the flow ended at " + where}
		}
		return nil, &failure{kind: "login_app", detail: fmt.Sprintf("the flow stopped at %s (status %d), not at the redirect URI", where, status)}
	}
	back := p.URL.Query()
	if e := back.Get("error"); e != "" {
		return nil, &failure{kind: "oauth:" + e, detail: "authorization error: " + back.Get("error_description")}
	}
	if back.Get("state") != state {
		return nil, &failure{kind: kindBadAnswer, detail: "the redirect does not carry the request's state"}
	}
	code := back.Get("code")
	if code == "" {
		return nil, &failure{kind: kindBadAnswer, detail: "the redirect carries no code"}
	}
	ta, err := f.t.token(ctx, f.c, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {f.redirectURI}, "code_verifier": {verifier},
	})
	if err != nil {
		return nil, err
	}
	if strings.Contains(" "+f.scope+" ", " openid ") && ta.IDToken == "" {
		return nil, &failure{kind: kindBadAnswer, detail: "the code exchange answered without an id_token"}
	}
	return ta, nil
}

// agentFailure classifies an error of the scripted browser.
func agentFailure(err error) error {
	var f *failure
	switch {
	case errors.As(err, &f):
		return err
	case errors.Is(err, useragent.ErrSignInRefused):
		return &failure{kind: "sign_in_refused", detail: err.Error()}
	case errors.Is(err, context.Canceled):
		return err
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return transportFailure(err)
	}
	return &failure{kind: "login_app", detail: err.Error()}
}

// authCodeWorker runs whole flows, each in a new browser (an empty cookie
// jar), so every flow signs in through the login app's form.
type authCodeWorker struct {
	flow *codeFlow
	user *useragent.User
}

func (w *authCodeWorker) do(ctx context.Context) (string, error) {
	a := useragent.New(w.flow.t.http, w.flow.redirectURI)
	_, err := w.flow.run(ctx, a, useragent.Interaction{User: w.user})
	return "", err
}

// setUpAuthorizationCode registers the client and walks one flow per
// user, not recorded, to find out before the load whether sign-in works.
// Workers take the users in turn. The users must not have a second
// factor: every flow signs in anew, and the login app accepts a TOTP code
// once per 30 s step and account.
func setUpAuthorizationCode(ctx context.Context, e *env, n int) ([]worker, error) {
	if err := e.needUser(); err != nil {
		return nil, err
	}
	if e.t.meta.AuthorizationEndpoint == "" {
		return nil, errors.New("the discovery document has no authorization_endpoint")
	}
	c, err := e.clientFor(ctx, codeClientMeta("authorization_code", e.redirectURI))
	if err != nil {
		return nil, err
	}
	flow := &codeFlow{t: e.t, c: c, redirectURI: e.redirectURI, scope: "openid profile"}
	var users []*authCodeWorker
	for _, u := range e.users {
		// Sign in without the authenticator even when --totp-secret is given.
		w := &authCodeWorker{flow: flow, user: &useragent.User{Username: u.Username, Password: u.Password}}
		if _, err := w.do(ctx); err != nil {
			if kindOf(err) == "second_factor" {
				return nil, fmt.Errorf("%w for user %q: this scenario signs in once per flow and a TOTP code is accepted once per 30 s step "+
					"and account, so it needs a user without a second factor (latchkey users create without --totp-secret)", errSecondFactor, u.Username)
			}
			return nil, fmt.Errorf("a first flow as %q failed: %w", u.Username, err)
		}
		users = append(users, w)
	}
	ws := make([]worker, n)
	for i := range ws {
		ws[i] = users[i%len(users)]
	}
	return ws, nil
}
