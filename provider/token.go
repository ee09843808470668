package provider

import (
	"context"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// token is the token endpoint. fosite runs every grant; the provider only
// grants what machine grants ask for (fosite checked the client may), and
// names the client as the subject of a client_credentials token.
//
// No transaction wraps the request: fosite opens one itself around the
// writes of the code, refresh and device grants, and keeps the revocations
// of a replayed code or refresh token even when it answers with an error.
// A client_credentials token is a single INSERT.
//
// The request's context is marked as the token endpoint's: only here may an
// ID token be issued unsigned (idTokenSigner).
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	ctx := tokenEndpointContext(r.Context())
	sess := NewSession()
	grant := grantLabelUnsupported
	formErr := parseFormBody(r)
	if formErr == nil {
		grant = grantLabel(r.PostForm.Get("grant_type"))
		formErr = missingGrantParam(r.PostForm)
	}
	p.metrics.tokenRequests.WithLabelValues(grant).Inc()
	if formErr != nil {
		p.writeTokenError(w, r, nil, formErr)
		return
	}
	if grant == grantLabelUnsupported && r.PostForm.Get("grant_type") != "" {
		// fosite answers invalid_request for a grant no handler knows;
		// RFC 6749 §5.2 has a code for it.
		p.writeTokenError(w, r, nil, fosite.ErrUnsupportedGrantType.WithHintf("Latchkey does not support the grant type %q.", r.PostForm.Get("grant_type")))
		return
	}
	ar, err := p.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		p.writeTokenError(w, r, ar, p.mendTokenError(ctx, r.PostForm, ar, err))
		return
	}
	// The client is authenticated: a request over its rate is refused
	// before anything is issued or written.
	if c, ok := ar.GetClient().(*store.Client); ok {
		if allowed, wait := p.tokenRates.allow(c); !allowed {
			p.metrics.tokenErrors.WithLabelValues(grant, errTooManyRequests).Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			writeError(w, http.StatusTooManyRequests, errTooManyRequests,
				"The client made more token requests than its rate limit allows; try again after Retry-After seconds.")
			return
		}
	}
	gt := ar.GetGrantTypes()
	if gt.ExactOne("client_credentials") || gt.ExactOne("password") {
		for _, s := range ar.GetRequestedScopes() {
			ar.GrantScope(s)
		}
		for _, a := range ar.GetRequestedAudience() {
			ar.GrantAudience(a)
		}
	}
	if gt.ExactOne("password") {
		// fosite put the person's subject in the session; the ID token
		// claims carry what this client knows them by. A refresh of the
		// grant issues an ID token from them when openid was granted.
		if c, ok := ar.GetClient().(*store.Client); ok {
			sess.Claims.Subject = p.subjectFor(c, sess.Subject)
		}
	}
	if gt.ExactOne("client_credentials") {
		// The client is its own subject, as itself: never pairwise.
		sess.Subject = ar.GetClient().GetID()
		sess.Claims.Subject = sess.Subject
	}
	resp, err := p.oauth.NewAccessResponse(ctx, ar)
	if err != nil {
		p.writeTokenError(w, r, ar, err)
		return
	}
	p.metrics.issued(ar.GetClient().GetID(), grant, true, resp.GetExtra("refresh_token") != nil, resp.GetExtra("id_token") != nil)
	p.oauth.WriteAccessResponse(ctx, w, ar, resp)
}

// grantParams are the parameters a grant cannot do without (RFC 6749
// §4.1.3, §4.3.2 and §6, RFC 8628 §3.4). fosite would answer a missing
// one as an unknown one, invalid_grant; it is invalid_request.
var grantParams = map[string][]string{
	"authorization_code": {"code"},
	"refresh_token":      {"refresh_token"},
	"password":           {"username", "password"},
	deviceGrantType:      {"device_code"},
}

func missingGrantParam(form url.Values) error {
	for _, name := range grantParams[form.Get("grant_type")] {
		if form.Get(name) == "" {
			return fosite.ErrInvalidRequest.WithHintf("The %s parameter is missing.", name)
		}
	}
	return nil
}

// mendTokenError corrects two answers fosite gives to a token request
// that failed.
//
// A device code is matched to its client only once the user approved it,
// so another client polling the code would be told it is pending, denied
// or polled too fast: it is invalid_grant, as any grant issued to another
// client is (RFC 6749 §5.2).
//
// fosite's PKCE check deletes a code's challenge before it compares the
// verifier, so after one wrong code_verifier the code would pass, without
// any, as a code that never had PKCE. A code whose redemption failed is
// therefore spent.
func (p *Provider) mendTokenError(ctx context.Context, form url.Values, ar fosite.AccessRequester, err error) error {
	switch form.Get("grant_type") {
	case deviceGrantType:
		if ar == nil || ar.GetClient() == nil || !(errors.Is(err, fosite.ErrAuthorizationPending) ||
			errors.Is(err, fosite.ErrSlowDown) || errors.Is(err, fosite.ErrAccessDenied) || errors.Is(err, fosite.ErrDeviceExpiredToken)) {
			return err
		}
		sig, serr := p.device.DeviceCodeSignature(ctx, form.Get("device_code"))
		if serr != nil {
			return err
		}
		dr, derr := p.store.GetDeviceCodeSession(ctx, sig, NewSession())
		if derr == nil && (dr.GetClient() == nil || dr.GetClient().GetID() != ar.GetClient().GetID()) {
			return fosite.ErrInvalidGrant.WithHint("The device_code was not issued to this client.")
		}
	case "authorization_code":
		if !errors.Is(err, fosite.ErrInvalidGrant) {
			return err
		}
		sig := p.codes.AuthorizeCodeSignature(ctx, form.Get("code"))
		ierr := p.store.InvalidateAuthorizeCodeSession(ctx, sig)
		if ierr != nil && !errors.Is(ierr, store.ErrNotFound) && !errors.Is(ierr, fosite.ErrInvalidatedAuthorizeCode) {
			p.log.ErrorContext(ctx, "token endpoint: spend the code of a failed redemption", "err", ierr)
		}
	}
	return err
}

// writeTokenError answers a token-style endpoint with an RFC 6749 §5.2
// error, logging server errors.
func (p *Provider) writeTokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	err = retryable(w, err)
	rfcErr := fosite.ErrorToRFC6749Error(err)
	if rfcErr.ErrorField == fosite.ErrJTIKnown.ErrorField {
		// A replayed client assertion is a failed client authentication
		// (RFC 7521 §4.2.1), not fosite's own error code.
		err = fosite.ErrInvalidClient.WithHint("The client assertion was already used.")
	}
	if rfcErr.CodeField >= 500 {
		p.logFailure(r.Context(), "token endpoint", err, "path", r.URL.Path, "debug", rfcErr.DebugField)
	}
	p.metrics.tokenErrors.WithLabelValues(grantLabel(r.PostForm.Get("grant_type")), errorLabel(fosite.ErrorToRFC6749Error(err).ErrorField)).Inc()
	if ar == nil {
		ar = fosite.NewAccessRequest(NewSession())
	}
	p.oauth.WriteAccessError(r.Context(), w, ar, err)
}
