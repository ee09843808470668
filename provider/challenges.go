package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/latchkey-oidc/latchkey/store"
)

// The challenge kinds, as the admin API names them.
const (
	challengeLogin   = store.ChallengeLogin
	challengeConsent = store.ChallengeConsent
	challengeLogout  = store.ChallengeLogout
	challengeDevice  = store.ChallengeDevice
)

// ChallengeView is what the login app reads about a challenge
// (GET /admin/{kind}?challenge=…). Which fields are set depends on the kind.
type ChallengeView struct {
	Challenge string        `json:"challenge"`
	Kind      string        `json:"kind"`
	Skip      bool          `json:"skip"`
	Subject   string        `json:"subject,omitempty"`
	SessionID string        `json:"session_id,omitempty"`
	Client    *store.Client `json:"client,omitempty"`
	// RequestedScope and RequestedAudience are what the client asked for;
	// the consent decision grants a subset.
	RequestedScope    []string     `json:"requested_scope,omitempty"`
	RequestedAudience []string     `json:"requested_audience,omitempty"`
	RequestURL        string       `json:"request_url,omitempty"`
	OIDCContext       *OIDCContext `json:"oidc_context,omitempty"`
	// Consent only: how and when the user signed in, and the context the
	// login decision attached.
	ACR      string          `json:"acr,omitempty"`
	AMR      []string        `json:"amr,omitempty"`
	AuthTime int64           `json:"auth_time,omitempty"`
	Context  json.RawMessage `json:"context,omitempty"`
	// Device only: the user code from verification_uri_complete, to
	// pre-fill the form.
	UserCode string `json:"user_code,omitempty"`
	// Logout only.
	RPInitiated           bool   `json:"rp_initiated,omitempty"`
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri,omitempty"`
}

// OIDCContext carries the OpenID Connect parameters the login app acts on.
type OIDCContext struct {
	ACRValues         []string        `json:"acr_values,omitempty"`
	Display           string          `json:"display,omitempty"`
	UILocales         []string        `json:"ui_locales,omitempty"`
	LoginHint         string          `json:"login_hint,omitempty"`
	IDTokenHintClaims map[string]any  `json:"id_token_hint_claims,omitempty"`
	Prompt            []string        `json:"prompt,omitempty"`
	MaxAge            *int64          `json:"max_age,omitempty"`
	Claims            json.RawMessage `json:"claims,omitempty"`
}

// LoginAccept is the login app's decision that a user signed in
// (PUT /admin/login/accept?challenge=…).
type LoginAccept struct {
	Subject string   `json:"subject"`
	ACR     string   `json:"acr,omitempty"`
	AMR     []string `json:"amr,omitempty"`
	// Remember keeps the SSO session past the browser session, for
	// RememberFor seconds (default: the provider's session lifespan).
	Remember    bool  `json:"remember,omitempty"`
	RememberFor int64 `json:"remember_for,omitempty"`
	// Context is handed on to the consent challenge unchanged.
	Context json.RawMessage `json:"context,omitempty"`
}

// ConsentAccept is the login app's decision that the user consented
// (PUT /admin/consent/accept?challenge=…).
type ConsentAccept struct {
	GrantScope    []string `json:"grant_scope"`
	GrantAudience []string `json:"grant_audience,omitempty"`
	// Remember skips the consent screen next time for the same or fewer
	// scopes, for RememberFor seconds (default: until revoked).
	Remember    bool           `json:"remember,omitempty"`
	RememberFor int64          `json:"remember_for,omitempty"`
	Session     ConsentSession `json:"session"`
}

// ConsentSession is what the login app knows about the user. Claims are the
// user's standard claims (name, email, …): the provider puts into userinfo
// and the ID token only those the granted scopes and the claims parameter
// call for. IDToken and AccessToken are extra claims for those tokens.
type ConsentSession struct {
	Claims      map[string]any `json:"claims,omitempty"`
	IDToken     map[string]any `json:"id_token,omitempty"`
	AccessToken map[string]any `json:"access_token,omitempty"`
}

// Rejection is the login app's refusal (PUT /admin/{kind}/reject?challenge=…).
// Error is an OAuth error code the client receives: access_denied (the
// default), login_required, consent_required, interaction_required or
// account_selection_required.
type Rejection struct {
	Error            string `json:"error,omitempty"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// Redirect is the answer to a decision: where the login app sends the
// browser next.
type Redirect struct {
	RedirectTo string `json:"redirect_to"`
}

// adminGetChallenge returns the handler that shows a challenge of kind.
func (p *Provider) adminGetChallenge(kind store.ChallengeKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := r.URL.Query().Get("challenge")
		c, err := p.store.GetChallenge(ctx, kind, id)
		if errors.Is(err, store.ErrNotFound) || id == "" {
			writeError(w, http.StatusNotFound, "not_found", "No such challenge, or it expired.")
			return
		}
		if err != nil {
			p.adminServerError(w, r, err)
			return
		}
		if c.State != store.ChallengePending {
			writeError(w, http.StatusConflict, "conflict", "The challenge was already decided.")
			return
		}
		view, err := p.challengeView(ctx, c)
		if err != nil {
			p.adminServerError(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, view)
	}
}

func (p *Provider) challengeView(ctx context.Context, c *store.Challenge) (*ChallengeView, error) {
	fl := &flow{}
	if err := json.Unmarshal(c.Request, fl); err != nil {
		return nil, fmt.Errorf("decode %s challenge: %w", c.Kind, err)
	}
	v := &ChallengeView{
		Challenge: c.ID,
		Kind:      string(c.Kind),
		Skip:      fl.Skip,
		Subject:   fl.Subject,
		SessionID: fl.SID,
	}
	if fl.ClientID != "" {
		cl, err := p.store.GetClient(ctx, fl.ClientID)
		switch {
		case err == nil:
			v.Client = cl.(*store.Client)
		case !errors.Is(err, store.ErrNotFound):
			return nil, fmt.Errorf("load client of %s challenge: %w", c.Kind, err)
		}
	}
	switch c.Kind {
	case store.ChallengeLogout:
		logoutView(v, fl)
		return v, nil
	case store.ChallengeDevice:
		deviceView(v, fl)
		return v, nil
	}
	v.RequestedScope, v.RequestedAudience = fl.RequestedScopes, fl.RequestedAudience
	if fl.Form != nil {
		v.RequestURL = p.urls.authorize + "?" + fl.Form.Encode()
		v.OIDCContext = p.oidcContext(ctx, fl.Form)
		if len(v.OIDCContext.ACRValues) == 0 && v.Client != nil {
			// The client's registered default_acr_values stand in for
			// acr_values it did not send (OpenID Connect Registration §2).
			v.OIDCContext.ACRValues = slices.Clone(v.Client.DefaultACRValues)
		}
	}
	if c.Kind == store.ChallengeConsent {
		v.ACR, v.AMR, v.Context = fl.ACR, fl.AMR, fl.Context
		if !fl.AuthTime.IsZero() {
			v.AuthTime = fl.AuthTime.Unix()
		}
	}
	return v, nil
}

// oidcContext extracts what the login app needs from the request parameters.
func (p *Provider) oidcContext(ctx context.Context, form url.Values) *OIDCContext {
	oc := &OIDCContext{
		ACRValues: strings.Fields(form.Get("acr_values")),
		Display:   form.Get("display"),
		UILocales: strings.Fields(form.Get("ui_locales")),
		LoginHint: form.Get("login_hint"),
		Prompt:    strings.Fields(form.Get("prompt")),
	}
	if v := form.Get("max_age"); v != "" {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			oc.MaxAge = &n
		}
	}
	if cr := form.Get("claims"); cr != "" && json.Valid([]byte(cr)) {
		oc.Claims = json.RawMessage(cr)
		if parsed, err := parseClaimsRequest(cr); err == nil {
			for _, acr := range parsed.acrValues() {
				if !slices.Contains(oc.ACRValues, acr) {
					oc.ACRValues = append(oc.ACRValues, acr)
				}
			}
		}
	}
	if hint := form.Get("id_token_hint"); hint != "" {
		if claims, err := p.decodeIDTokenHint(ctx, hint); err == nil {
			oc.IDTokenHintClaims = claims
		}
	}
	return oc
}

// readJSON decodes a bounded JSON request body into v.
func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the body is not the expected JSON: %w", err)
	}
	if !jsonEnds(dec) {
		return errors.New("the body is not the expected JSON: it goes on after the first value")
	}
	return nil
}

// jsonEnds reports whether dec has nothing left after the value it
// decoded: a body with more is not what its sender meant.
func jsonEnds(dec *json.Decoder) bool {
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

// decide records the login app's decision on a pending challenge and
// answers with where the browser goes next.
func (p *Provider) decide(w http.ResponseWriter, r *http.Request, kind store.ChallengeKind, state store.ChallengeState, result any, subject, redirectTo string) {
	id := r.URL.Query().Get("challenge")
	b, err := json.Marshal(result)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	_, err = p.store.DecideChallenge(r.Context(), kind, id, state, b, subject)
	switch {
	case errors.Is(err, store.ErrNotFound) || id == "":
		writeError(w, http.StatusNotFound, "not_found", "No such challenge, or it expired.")
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "The challenge was already decided.")
	case err != nil:
		p.adminServerError(w, r, err)
	default:
		writeJSON(w, http.StatusOK, Redirect{RedirectTo: redirectTo})
	}
}

// pendingFlow loads the flow of a pending challenge, answering the error
// itself when there is none.
func (p *Provider) pendingFlow(w http.ResponseWriter, r *http.Request, kind store.ChallengeKind) (*flow, bool) {
	id := r.URL.Query().Get("challenge")
	c, err := p.store.GetChallenge(r.Context(), kind, id)
	if errors.Is(err, store.ErrNotFound) || id == "" {
		writeError(w, http.StatusNotFound, "not_found", "No such challenge, or it expired.")
		return nil, false
	}
	if err != nil {
		p.adminServerError(w, r, err)
		return nil, false
	}
	if c.State != store.ChallengePending {
		writeError(w, http.StatusConflict, "conflict", "The challenge was already decided.")
		return nil, false
	}
	fl := &flow{}
	if err := json.Unmarshal(c.Request, fl); err != nil {
		p.adminServerError(w, r, err)
		return nil, false
	}
	return fl, true
}

func (p *Provider) adminAcceptLogin(w http.ResponseWriter, r *http.Request) {
	var la LoginAccept
	if err := readJSON(r, &la); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if strings.TrimSpace(la.Subject) == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "subject is required.")
		return
	}
	if la.RememberFor < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "remember_for must not be negative.")
		return
	}
	if _, ok := p.pendingFlow(w, r, challengeLogin); !ok {
		return
	}
	id := r.URL.Query().Get("challenge")
	p.decide(w, r, challengeLogin, store.ChallengeAccepted, la, la.Subject,
		p.urls.authorizeContinue+"?login_verifier="+url.QueryEscape(id))
}

func (p *Provider) adminAcceptConsent(w http.ResponseWriter, r *http.Request) {
	var ca ConsentAccept
	if err := readJSON(r, &ca); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	fl, ok := p.pendingFlow(w, r, challengeConsent)
	if !ok {
		return
	}
	if !covers(fl.RequestedScopes, ca.GrantScope) {
		writeError(w, http.StatusBadRequest, "invalid_request", "grant_scope may only contain requested scopes.")
		return
	}
	if !covers(fl.RequestedAudience, ca.GrantAudience) {
		writeError(w, http.StatusBadRequest, "invalid_request", "grant_audience may only contain requested audiences.")
		return
	}
	if ca.RememberFor < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "remember_for must not be negative.")
		return
	}
	id := r.URL.Query().Get("challenge")
	p.decide(w, r, challengeConsent, store.ChallengeAccepted, ca, "",
		p.urls.authorizeContinue+"?consent_verifier="+url.QueryEscape(id))
}

// adminReject returns the handler that rejects a challenge of kind.
func (p *Provider) adminReject(kind store.ChallengeKind) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var rej Rejection
		if err := readJSON(r, &rej); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		switch rej.Error {
		case "", "access_denied", "login_required", "consent_required", "interaction_required", "account_selection_required":
		default:
			writeError(w, http.StatusBadRequest, "invalid_request", "error must be an OAuth authorization error code.")
			return
		}
		id := r.URL.Query().Get("challenge")
		var next string
		switch kind {
		case challengeLogin, challengeConsent:
			// Device flows sign in and consent through the same
			// continue endpoint as authorizations.
			verifier := "login_verifier"
			if kind == challengeConsent {
				verifier = "consent_verifier"
			}
			next = p.urls.authorizeContinue + "?" + verifier + "=" + url.QueryEscape(id)
		case challengeLogout:
			next = p.urls.endSessionContinue + "?logout_verifier=" + url.QueryEscape(id)
		case challengeDevice:
			next = p.urls.deviceContinue + "?device_verifier=" + url.QueryEscape(id)
		}
		p.decide(w, r, kind, store.ChallengeRejected, rej, "", next)
	}
}

// adminServerError answers an unexpected failure without detail and logs it.
func (p *Provider) adminServerError(w http.ResponseWriter, r *http.Request, err error) {
	p.logFailure(r.Context(), "admin API", err, "path", r.URL.Path)
	writeServerError(w, err, "The request could not be completed.")
}
