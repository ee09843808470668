package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// authorize is the authorization endpoint (GET and POST). It parses and
// checks the request with fosite, then hands the user to the login app
// unless the browser's SSO session already satisfies the request.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseParams(r); err != nil {
		// Which client, redirect URI or state was meant is not known:
		// nothing is redirected, the person sees a page.
		p.writeAuthorizeError(w, r, nil, err)
		return
	}
	uriErr := p.resolveRequestURI(ctx, r)
	if uriErr == nil {
		if uriErr = p.openUnsignedRequestObject(ctx, r); uriErr != nil {
			// fosite then checks the outer request, so the error goes
			// to a redirect URI the client registered.
			r.Form.Del("request")
		}
	}
	ar, err := p.newAuthorizeRequest(ctx, r)
	if err == nil {
		err = uriErr
	}
	if err == nil {
		err = repairRequestObject(ar)
	}
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}
	client, _ := ar.GetClient().(*store.Client)
	if err := p.checkAuthorizeRequest(ctx, ar, client); err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return
	}
	fl := &flow{
		Form:              cleanForm(ar.GetRequestForm()),
		ClientID:          client.ID,
		RequestedAt:       time.Now().UTC().Truncate(time.Second),
		RequestedScopes:   ar.GetRequestedScopes(),
		RequestedAudience: ar.GetRequestedAudience(),
	}
	ls, err := p.currentSession(r)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	if reason := p.loginNeeded(ctx, ar, client, ls); reason != "" {
		if promptHas(ar, "none") {
			p.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint(reason))
			return
		}
		p.beginFlow(w, fl)
		if ls != nil {
			fl.Subject, fl.SID = ls.Subject, ls.SID
		}
		p.redirectToLogin(w, r, ar, fl)
		return
	}
	fl.signedIn(ls)
	p.beginFlow(w, fl)
	p.redirectToConsent(w, r, ar, client, fl)
}

// noState stands in for a missing state while fosite parses the request:
// fosite refuses a state shorter than eight characters, an empty one
// included, while OpenID Connect makes state optional and Latchkey accepts
// PKCE or a nonce instead (checkAuthorizeRequest).
const noState = "latchkey-no-state-given"

// newAuthorizeRequest is fosite's NewAuthorizeRequest with state optional.
func (p *Provider) newAuthorizeRequest(ctx context.Context, r *http.Request) (fosite.AuthorizeRequester, error) {
	if err := r.ParseForm(); err == nil && r.Form.Get("state") == "" {
		r.Form.Set("state", noState)
	}
	ar, err := p.oauth.NewAuthorizeRequest(ctx, r)
	if req, ok := ar.(*fosite.AuthorizeRequest); ok && req.State == noState {
		req.State = ""
		req.Form.Del("state")
	}
	return ar, err
}

// cleanForm returns the request's parameters without the request object or
// request_uri: those are resolved into the other parameters already, and a
// pushed request_uri can be used only once.
func cleanForm(form url.Values) url.Values {
	out := url.Values{}
	for k, v := range form {
		switch k {
		case "request", "request_uri":
		default:
			out[k] = slices.Clone(v)
		}
	}
	return out
}

// checkAuthorizeRequest applies the rules fosite leaves to the provider,
// and those fosite applies only once the user has signed in and consented
// (the PKCE method, prompt values), which would send the user through
// sign-in for a request that cannot succeed.
func (p *Provider) checkAuthorizeRequest(ctx context.Context, ar fosite.AuthorizeRequester, client *store.Client) error {
	form := ar.GetRequestForm()
	method := form.Get("code_challenge_method")
	if form.Get("code_challenge") != "" && (method == "plain" || method == "") && !client.PKCEPlainAllowed {
		return fosite.ErrInvalidRequest.WithHint("This client must use the PKCE code_challenge_method S256.")
	}
	if form.Get("code_challenge") != "" && method != "" && method != "plain" && method != "S256" {
		return fosite.ErrInvalidRequest.WithHint("The PKCE code_challenge_method must be S256.")
	}
	for _, v := range prompts(ar) {
		if !slices.Contains(p.fcfg.GetAllowedPrompts(ctx), v) {
			return fosite.ErrInvalidRequest.WithHintf("The prompt value %q is not supported.", v)
		}
	}
	// CSRF protection (RFC 9700 §2.1): PKCE, or state, or an OpenID
	// Connect nonce carried into the ID token.
	if form.Get("state") == "" && form.Get("code_challenge") == "" && form.Get("nonce") == "" {
		return fosite.ErrInvalidRequest.WithHint("The request needs a state parameter, or PKCE.")
	}
	if v := form.Get("max_age"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n < 0 {
			return fosite.ErrInvalidRequest.WithHint("max_age must be a non-negative number of seconds.")
		}
	}
	if _, err := parseClaimsRequest(form.Get("claims")); err != nil {
		return fosite.ErrInvalidRequest.WithHint(err.Error())
	}
	if promptHas(ar, "none") && len(prompts(ar)) > 1 {
		return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other prompt values.")
	}
	return nil
}

func prompts(ar fosite.AuthorizeRequester) []string {
	return strings.Fields(ar.GetRequestForm().Get("prompt"))
}

func promptHas(ar fosite.AuthorizeRequester, value string) bool {
	return slices.Contains(prompts(ar), value)
}

// loginNeeded says why the user must (re-)authenticate, or "" when the
// session satisfies the request.
func (p *Provider) loginNeeded(ctx context.Context, ar fosite.AuthorizeRequester, client *store.Client, ls *store.LoginSession) string {
	if ls == nil {
		return "The user is not signed in."
	}
	if promptHas(ar, "login") || promptHas(ar, "select_account") {
		return "The client asked for the user to sign in again."
	}
	maxAge := client.DefaultMaxAge
	hasMaxAge := maxAge > 0
	if v := ar.GetRequestForm().Get("max_age"); v != "" {
		maxAge, _ = strconv.ParseInt(v, 10, 64)
		hasMaxAge = true
	}
	// max_age=0 asks for a fresh sign-in, like prompt=login (Core §3.1.2.1);
	// fosite ignores it, so it is enforced here.
	if hasMaxAge && time.Since(ls.AuthenticatedAt) >= time.Duration(maxAge)*time.Second {
		return "The user's sign-in is older than max_age."
	}
	if hint := ar.GetRequestForm().Get("id_token_hint"); hint != "" {
		claims, err := p.decodeIDTokenHint(ctx, hint)
		if err != nil {
			return "The id_token_hint is not an ID token this provider issued."
		}
		hc, err := p.hintClientOf(ctx, claims, client)
		if err != nil {
			p.log.ErrorContext(ctx, "authorize: load the client of id_token_hint", "err", err)
			return "The id_token_hint could not be checked."
		}
		if !p.hintNames(claims, hc, ls.Subject) {
			return "The signed-in user is not the one id_token_hint names."
		}
	}
	if client.RequireMFA && !slices.Contains(ls.AMR, "mfa") {
		return "The client requires multi-factor authentication."
	}
	return ""
}

// redirectToLogin stores fl in a login challenge and sends the browser to
// the login app.
func (p *Provider) redirectToLogin(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, fl *flow) {
	next, err := p.loginChallengeURL(r.Context(), fl)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	p.metrics.authorize.WithLabelValues(responseTypeLabel(ar), authorizeLogin).Inc()
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// loginChallengeURL stores fl in a login challenge and returns the login
// app's address for it. Device flows share it.
func (p *Provider) loginChallengeURL(ctx context.Context, fl *flow) (string, error) {
	id, err := p.createChallenge(ctx, store.ChallengeLogin, fl)
	if err != nil {
		return "", err
	}
	return p.cfg.LoginURL + "/login?login_challenge=" + url.QueryEscape(id), nil
}

// consentChallengeURL stores fl in a consent challenge and returns the
// login app's address for it. Device flows share it.
func (p *Provider) consentChallengeURL(ctx context.Context, fl *flow) (string, error) {
	id, err := p.createChallenge(ctx, store.ChallengeConsent, fl)
	if err != nil {
		return "", err
	}
	return p.cfg.LoginURL + "/consent?consent_challenge=" + url.QueryEscape(id), nil
}

// signedIn records in fl the sign-in of the SSO session ls.
func (fl *flow) signedIn(ls *store.LoginSession) {
	fl.Subject, fl.SID = ls.Subject, ls.SID
	fl.AuthTime, fl.ACR, fl.AMR = ls.AuthenticatedAt.UTC().Truncate(time.Second), ls.ACR, ls.AMR
}

// consentSkippable reports whether the user need not be asked: the client
// is first-party, or the user already granted everything it asks for.
func (p *Provider) consentSkippable(ctx context.Context, client *store.Client, fl *flow, forcePrompt bool) (bool, error) {
	if client.SkipConsent {
		return true, nil
	}
	if forcePrompt {
		return false, nil
	}
	g, err := p.store.GetConsentGrant(ctx, fl.Subject, client.ID)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("load consent: %w", err)
	}
	return covers(g.Scopes, fl.RequestedScopes) && covers(g.Audience, fl.RequestedAudience), nil
}

func covers(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

// redirectToConsent sends the signed-in user to the login app's consent
// step. The consent challenge is created even when consent is remembered
// (with skip set): the login app supplies the user's current claims.
func (p *Provider) redirectToConsent(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, client *store.Client, fl *flow) {
	ctx := r.Context()
	skip, err := p.consentSkippable(ctx, client, fl, promptHas(ar, "consent"))
	if err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	if !skip && promptHas(ar, "none") {
		p.writeAuthorizeError(w, r, ar, fosite.ErrConsentRequired.WithHint("The user has not consented to this client's request."))
		return
	}
	fl.Skip = skip
	next, err := p.consentChallengeURL(ctx, fl)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, fosite.ErrServerError.WithWrap(err))
		return
	}
	p.metrics.authorize.WithLabelValues(responseTypeLabel(ar), authorizeLogin).Inc()
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// authorizeContinue resumes an authorization after the login app decided
// its login or consent challenge.
func (p *Provider) authorizeContinue(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	switch {
	case q.Get("login_verifier") != "":
		p.continueAfterLogin(w, r, q.Get("login_verifier"))
	case q.Get("consent_verifier") != "":
		p.continueAfterConsent(w, r, q.Get("consent_verifier"))
	default:
		p.errorPage(w, http.StatusBadRequest, "Nothing to continue", "invalid_request", "This address needs a login_verifier or consent_verifier.")
	}
}

// resumeFlow consumes the challenge and restores its authorization request.
// It writes the error response itself and returns ok=false on failure.
func (p *Provider) resumeFlow(w http.ResponseWriter, r *http.Request, kind store.ChallengeKind, id string) (*store.Challenge, *flow, fosite.AuthorizeRequester, bool) {
	ctx := r.Context()
	c, fl, err := p.consumeFlow(r, kind, id)
	if err != nil {
		p.writeFlowError(w, r, err, "sign-in",
			"The sign-in request was already completed or took too long. Go back to the application and start again.")
		return nil, nil, nil, false
	}
	if fl.DeviceSignature != "" {
		return c, fl, nil, true
	}
	ar, err := p.rebuildAuthorizeRequest(ctx, fl)
	if err != nil {
		p.writeAuthorizeError(w, r, ar, err)
		return nil, nil, nil, false
	}
	return c, fl, ar, true
}

// rebuildAuthorizeRequest parses the stored parameters again, so a request
// that became invalid meanwhile (client deleted, redirect URI removed) fails
// now, and restores when the request first arrived.
func (p *Provider) rebuildAuthorizeRequest(ctx context.Context, fl *flow) (fosite.AuthorizeRequester, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, p.urls.authorize+"?"+fl.Form.Encode(), nil)
	if err != nil {
		return nil, fosite.ErrServerError.WithWrap(err)
	}
	ar, err := p.newAuthorizeRequest(ctx, r)
	if err != nil {
		return ar, err
	}
	if req, ok := ar.(*fosite.AuthorizeRequest); ok {
		req.RequestedAt = fl.RequestedAt
	}
	return ar, nil
}

// rejection turns a login app's rejection into the OAuth error the client
// gets.
func rejection(c *store.Challenge) error {
	var rej Rejection
	_ = json.Unmarshal(c.Result, &rej)
	err := fosite.ErrAccessDenied
	switch rej.Error {
	case "login_required":
		err = fosite.ErrLoginRequired
	case "consent_required":
		err = fosite.ErrConsentRequired
	case "interaction_required":
		err = fosite.ErrInteractionRequired
	case "account_selection_required":
		err = &fosite.RFC6749Error{ErrorField: "account_selection_required", DescriptionField: "The user must select an account.", CodeField: http.StatusBadRequest}
	}
	if rej.ErrorDescription != "" {
		err = err.WithHint(rej.ErrorDescription)
	}
	return err
}

func (p *Provider) continueAfterLogin(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	c, fl, ar, ok := p.resumeFlow(w, r, store.ChallengeLogin, id)
	if !ok {
		return
	}
	if c.State == store.ChallengeRejected {
		p.failFlow(w, r, ar, fl, rejection(c))
		return
	}
	var la LoginAccept
	if err := json.Unmarshal(c.Result, &la); err != nil || la.Subject == "" {
		p.failFlow(w, r, ar, fl, fosite.ErrServerError.WithDebug("the login decision has no subject"))
		return
	}
	ls, err := p.establishSession(ctx, w, r, &la)
	if err != nil {
		p.failFlow(w, r, ar, fl, fosite.ErrServerError.WithWrap(err))
		return
	}
	fl.signedIn(ls)
	fl.Context = la.Context
	client, err := p.store.GetClient(ctx, fl.ClientID)
	if err != nil {
		p.failFlow(w, r, ar, fl, fosite.ErrInvalidClient.WithWrap(err))
		return
	}
	if fl.DeviceSignature != "" {
		p.redirectDeviceToConsent(w, r, client.(*store.Client), fl)
		return
	}
	p.redirectToConsent(w, r, ar, client.(*store.Client), fl)
}

func (p *Provider) continueAfterConsent(w http.ResponseWriter, r *http.Request, id string) {
	ctx := r.Context()
	c, fl, ar, ok := p.resumeFlow(w, r, store.ChallengeConsent, id)
	if !ok {
		return
	}
	if c.State == store.ChallengeRejected {
		p.failFlow(w, r, ar, fl, rejection(c))
		return
	}
	var ca ConsentAccept
	if err := json.Unmarshal(c.Result, &ca); err != nil {
		p.failFlow(w, r, ar, fl, fosite.ErrServerError.WithWrap(err))
		return
	}
	if ca.Remember {
		g := &store.ConsentGrant{Subject: fl.Subject, ClientID: fl.ClientID, Scopes: ca.GrantScope, Audience: ca.GrantAudience}
		if life := p.consentLifespan(&ca); life > 0 {
			exp := time.Now().Add(life)
			g.ExpiresAt = &exp
		}
		if err := p.store.SaveConsentGrant(ctx, g); err != nil {
			p.failFlow(w, r, ar, fl, fosite.ErrServerError.WithWrap(err))
			return
		}
	}
	if fl.DeviceSignature != "" {
		p.finishDevice(w, r, fl, &ca)
		return
	}
	p.finishAuthorize(w, r, ar, fl, &ca)
}

func (p *Provider) consentLifespan(ca *ConsentAccept) time.Duration {
	if ca.RememberFor > 0 {
		return time.Duration(ca.RememberFor) * time.Second
	}
	return p.cfg.ConsentLifespan
}

// failFlow ends a flow with err: to the client's redirect URI for an
// authorization, on a page for a device flow.
func (p *Provider) failFlow(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, fl *flow, err error) {
	p.endFlow(w, fl)
	if fl.DeviceSignature != "" {
		p.failDevice(w, r, fl, err)
		return
	}
	p.writeAuthorizeError(w, r, ar, err)
}

// userSession builds the session fosite issues codes and tokens with, from
// the flow's sign-in and the login app's consent decision.
func (p *Provider) userSession(fl *flow, client *store.Client, form url.Values, ca *ConsentAccept, scopeClaimsInIDToken bool) *Session {
	sess := NewSession()
	sess.Subject = fl.Subject
	sess.SID = fl.SID
	c := sess.Claims
	// The ID token names the user as this client knows them; everything
	// filed by subject (sess.Subject) keeps the internal one.
	c.Subject = p.subjectFor(client, fl.Subject)
	c.AuthTime = fl.AuthTime
	c.RequestedAt = fl.RequestedAt
	c.AuthenticationContextClassReference = fl.ACR
	c.AuthenticationMethodsReferences = fl.AMR
	cr, _ := parseClaimsRequest(form.Get("claims"))
	idClaims, userinfo := selectClaims(ca.Session.Claims, ca.GrantScope, cr, scopeClaimsInIDToken)
	c.Extra = map[string]any{}
	for k, v := range ca.Session.IDToken {
		if !reservedClaims[k] {
			c.Extra[k] = v
		}
	}
	for k, v := range idClaims {
		c.Extra[k] = v
	}
	if fl.SID != "" {
		c.Extra["sid"] = fl.SID
	}
	// azp names the client the ID token was issued to (Core §2).
	c.Extra["azp"] = client.ID
	sess.Userinfo = userinfo
	sess.AccessClaims = ca.Session.AccessToken
	// "none" reaches only the token endpoint's ID tokens (idTokenSigner).
	alg := client.IDTokenSignedResponseAlg
	if alg != algNone && (alg == "" || !slices.Contains(p.keys.Algs(), alg)) {
		alg = p.keys.DefaultAlg()
	}
	sess.Headers.Add("alg", keys.HeaderAlg(alg))
	return sess
}

// finishAuthorize grants what the user consented to and issues the
// authorization response.
func (p *Provider) finishAuthorize(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, fl *flow, ca *ConsentAccept) {
	ctx := r.Context()
	for _, s := range ca.GrantScope {
		ar.GrantScope(s)
	}
	for _, a := range ca.GrantAudience {
		ar.GrantAudience(a)
	}
	client := ar.GetClient().(*store.Client)
	idTokenOnly := ar.GetResponseTypes().ExactOne("id_token")
	sess := p.userSession(fl, client, ar.GetRequestForm(), ca, idTokenOnly)
	if fl.SID != "" {
		if err := p.store.AddSessionClient(ctx, fl.SID, client.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			p.failFlow(w, r, ar, fl, fosite.ErrServerError.WithWrap(err))
			return
		}
	}
	var resp fosite.AuthorizeResponder
	err := p.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		resp, err = p.oauth.NewAuthorizeResponse(ctx, ar, sess)
		return err
	})
	if err != nil {
		p.failFlow(w, r, ar, fl, err)
		return
	}
	p.endFlow(w, fl)
	params := resp.GetParameters()
	if params.Get("state") == "" {
		params.Del("state") // fosite adds an empty one when none was sent
	}
	params.Set("iss", p.cfg.Issuer)
	p.metrics.authorize.WithLabelValues(responseTypeLabel(ar), authorizeIssued).Inc()
	p.metrics.issued(client.ID, grantLabelImplicit, params.Get("access_token") != "", false, params.Get("id_token") != "")
	p.writeAuthorizeRedirect(w, ar, params)
}
