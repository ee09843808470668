package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite/token/jwt"

	"github.com/latchkey-oidc/latchkey/store"
)

// RP-Initiated Logout 1.0. The end-session endpoint checks the request,
// hands a logout challenge to the login app (which may ask the user), and
// on its decision ends the browser's SSO session and returns the user to
// the relying party, only ever to a post_logout_redirect_uri the client
// registered.
//
// The logout challenge's flow holds: the SSO session the request found
// (Subject, SID), the client (ClientID), the request's parameters that
// matter afterwards (Form: post_logout_redirect_uri, state, ui_locales,
// and whether an RP identified itself), and in Skip whether id_token_hint
// named that session, so the login app may log out without asking. A flow
// cookie binds it to the browser, so a leaked continue link cannot sign
// another browser out.

// The end-session parameters kept in the logout challenge's flow.
const (
	logoutParamRedirect    = "post_logout_redirect_uri"
	logoutParamState       = "state"
	logoutParamUILocales   = "ui_locales"
	logoutParamRPInitiated = "rp_initiated"
)

// endSession is the end_session_endpoint (GET and POST).
func (p *Provider) endSession(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseParams(r); err != nil {
		p.logoutError(w, "The sign-out request could not be read. "+paramProblem(err))
		return
	}
	form := r.Form
	hint := form.Get("id_token_hint")
	clientID := form.Get("client_id")
	redirectURI := form.Get(logoutParamRedirect)

	var hintClaims jwt.MapClaims
	if hint != "" {
		claims, err := p.decodeIDTokenHint(ctx, hint)
		if err != nil {
			p.logoutError(w, "The id_token_hint is not an ID token this provider issued.")
			return
		}
		hintClaims = claims
		aud := audiences(claims)
		if clientID != "" && !slices.Contains(aud, clientID) {
			p.logoutError(w, "The client_id is not the audience of the id_token_hint.")
			return
		}
		if clientID == "" {
			clientID = hintClient(claims, aud)
		}
	}
	var client *store.Client
	if clientID != "" {
		fc, err := p.store.GetClient(ctx, clientID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			if form.Get("client_id") != "" || redirectURI != "" {
				p.logoutError(w, "The client is not registered with this provider.")
				return
			}
			// The hint's client was deleted since: sign out without it.
			clientID = ""
		case err != nil:
			p.logoutServerError(w, r, err)
			return
		default:
			client = fc.(*store.Client)
		}
	}
	if redirectURI != "" {
		if client == nil {
			p.logoutError(w, "A post_logout_redirect_uri needs an id_token_hint or a client_id naming the client that registered it.")
			return
		}
		if !slices.Contains(client.PostLogoutRedirectURIs, redirectURI) {
			p.logoutError(w, "The post_logout_redirect_uri is not one the client registered.")
			return
		}
	}

	ls, err := p.currentSession(r)
	if err != nil {
		p.logoutServerError(w, r, err)
		return
	}
	fl := &flow{
		ClientID:    clientID,
		RequestedAt: time.Now().UTC().Truncate(time.Second),
		Form:        url.Values{},
	}
	for _, k := range []string{logoutParamRedirect, logoutParamState, logoutParamUILocales} {
		if v := form.Get(k); v != "" {
			fl.Form.Set(k, v)
		}
	}
	if hint != "" || form.Get("client_id") != "" {
		fl.Form.Set(logoutParamRPInitiated, "true")
	}
	var hc *store.Client // the client the hint was issued to
	if hintClaims != nil {
		if hc, err = p.hintClientOf(ctx, hintClaims, client); err != nil {
			p.logoutServerError(w, r, err)
			return
		}
	}
	switch {
	case ls != nil:
		fl.Subject, fl.SID = ls.Subject, ls.SID
		fl.Skip = hintClaims != nil && p.hintNamesSession(hintClaims, hc, ls)
	case hintClaims != nil:
		// No session is visible here (a cross-site POST carries no
		// SameSite cookie); the hint says whom the RP means.
		if fl.Subject, err = p.hintSubject(ctx, hintClaims, hc); err != nil {
			p.logoutServerError(w, r, err)
			return
		}
	}
	p.beginFlow(w, fl)
	id, err := p.createChallenge(ctx, store.ChallengeLogout, fl)
	if err != nil {
		p.logoutServerError(w, r, err)
		return
	}
	http.Redirect(w, r, p.cfg.LoginURL+"/logout?logout_challenge="+url.QueryEscape(id), http.StatusSeeOther)
}

// audiences returns an ID token's aud claim as a list.
func audiences(claims jwt.MapClaims) []string {
	switch aud := claims["aud"].(type) {
	case string:
		return []string{aud}
	case []string:
		return aud
	case []any:
		var out []string
		for _, a := range aud {
			if s, ok := a.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// hintClient is the client an ID token was issued to: azp, or its only
// audience.
func hintClient(claims jwt.MapClaims, aud []string) string {
	if azp, _ := claims["azp"].(string); azp != "" && slices.Contains(aud, azp) {
		return azp
	}
	if len(aud) == 1 {
		return aud[0]
	}
	return ""
}

// hintNamesSession reports whether an ID token, issued to client hc, was
// issued to the user of the SSO session ls, and in that session when it
// says which.
func (p *Provider) hintNamesSession(claims jwt.MapClaims, hc *store.Client, ls *store.LoginSession) bool {
	if !p.hintNames(claims, hc, ls.Subject) {
		return false
	}
	sid, _ := claims["sid"].(string)
	return sid == "" || sid == ls.SID
}

// logoutView adds to a logout challenge's view what the login app needs
// to ask the user.
func logoutView(v *ChallengeView, fl *flow) {
	v.RPInitiated = fl.Form.Get(logoutParamRPInitiated) != ""
	v.PostLogoutRedirectURI = fl.Form.Get(logoutParamRedirect)
	if locales := strings.Fields(fl.Form.Get(logoutParamUILocales)); len(locales) > 0 {
		v.OIDCContext = &OIDCContext{UILocales: locales}
	}
}

// adminAcceptLogout is the login app's decision that the user signs out.
// It takes no body (an empty JSON object is accepted too).
func (p *Provider) adminAcceptLogout(w http.ResponseWriter, r *http.Request) {
	var in struct{}
	if err := readJSON(r, &in); err != nil && !errors.Is(err, io.EOF) {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if _, ok := p.pendingFlow(w, r, challengeLogout); !ok {
		return
	}
	id := r.URL.Query().Get("challenge")
	p.decide(w, r, challengeLogout, store.ChallengeAccepted, in, "",
		p.urls.endSessionContinue+"?logout_verifier="+url.QueryEscape(id))
}

// endSessionContinue carries out the login app's decision on a logout
// challenge.
func (p *Provider) endSessionContinue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, fl, err := p.consumeFlow(r, challengeLogout, r.URL.Query().Get("logout_verifier"))
	if err != nil {
		p.writeFlowError(w, r, err, "sign-out",
			"The sign-out was already completed or took too long. If you are still signed in, sign out again from the application.")
		return
	}
	p.endFlow(w, fl)
	redirectTo := p.postLogoutRedirect(ctx, fl)
	if c.State == store.ChallengeRejected {
		if redirectTo != "" {
			http.Redirect(w, r, redirectTo, http.StatusSeeOther)
			return
		}
		p.errorPage(w, http.StatusOK, "You are still signed in", "", "You were not signed out.")
		return
	}
	ended, err := p.endBrowserSession(ctx, w, r, fl)
	if err != nil {
		p.logoutServerError(w, r, err)
		return
	}
	if frames := p.frontchannelFrames(ctx, ended); len(frames) > 0 {
		p.signedOutPage(w, frames, redirectTo)
		return
	}
	if redirectTo != "" {
		http.Redirect(w, r, redirectTo, http.StatusSeeOther)
		return
	}
	p.errorPage(w, http.StatusOK, "You are signed out", "", "You have been signed out. You may close this window.")
}

// endBrowserSession ends the browser's SSO session, queueing its
// back-channel logouts, and deletes its cookie, unless the cookie now
// belongs to another session than the one the logout was asked for (the
// user signed in again meanwhile). It returns the session it ended, nil
// when there was none.
func (p *Provider) endBrowserSession(ctx context.Context, w http.ResponseWriter, r *http.Request, fl *flow) (*store.EndedSession, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, nil
	}
	ls, err := p.currentSession(r)
	if err != nil {
		return nil, err
	}
	if ls != nil && fl.SID != "" && ls.SID != fl.SID {
		return nil, nil
	}
	var ended *store.EndedSession
	if ls != nil {
		all, err := p.ssoSessions().end(ctx, func(ctx context.Context) ([]*store.EndedSession, error) {
			es, err := p.store.EndLoginSession(ctx, ck.Value)
			if err != nil {
				return nil, err
			}
			return []*store.EndedSession{es}, nil
		})
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Another request ended it meanwhile, and queued its logouts.
		case err != nil:
			return nil, fmt.Errorf("end SSO session: %w", err)
		default:
			ended = all[0]
		}
	}
	http.SetCookie(w, p.cookie(sessionCookie, "", -1))
	return ended, nil
}

// postLogoutRedirect is where the user goes after the logout: the
// post_logout_redirect_uri with state, if the client still has it
// registered; "" for the provider's own page.
func (p *Provider) postLogoutRedirect(ctx context.Context, fl *flow) string {
	target := fl.Form.Get(logoutParamRedirect)
	if target == "" || fl.ClientID == "" {
		return ""
	}
	fc, err := p.store.GetClient(ctx, fl.ClientID)
	if err != nil {
		return ""
	}
	if !slices.Contains(fc.(*store.Client).PostLogoutRedirectURIs, target) {
		return ""
	}
	u, err := url.Parse(target)
	if err != nil {
		return ""
	}
	if state := fl.Form.Get(logoutParamState); state != "" {
		q := u.Query()
		q.Set("state", state)
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// logoutError answers a bad end-session request with a page: without a
// checked post_logout_redirect_uri there is nowhere safe to send an error.
func (p *Provider) logoutError(w http.ResponseWriter, message string) {
	p.errorPage(w, http.StatusBadRequest, "The sign-out request is not valid", "invalid_request", message)
}

func (p *Provider) logoutServerError(w http.ResponseWriter, r *http.Request, err error) {
	p.logFailure(r.Context(), "logout", err)
	p.serverErrorPage(w, err, "Please try signing out again.")
}
