package provider

import (
	"net/http"

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
	if r.ParseForm() == nil {
		grant = grantLabel(r.PostForm.Get("grant_type"))
	}
	p.metrics.tokenRequests.WithLabelValues(grant).Inc()
	if grant == grantLabelUnsupported && r.PostForm.Get("grant_type") != "" {
		// fosite answers invalid_request for a grant no handler knows;
		// RFC 6749 §5.2 has a code for it.
		p.writeTokenError(w, r, nil, fosite.ErrUnsupportedGrantType.WithHintf("Latchkey does not support the grant type %q.", r.PostForm.Get("grant_type")))
		return
	}
	ar, err := p.oauth.NewAccessRequest(ctx, r, sess)
	if err != nil {
		p.writeTokenError(w, r, ar, err)
		return
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

// writeTokenError answers a token-style endpoint with an RFC 6749 §5.2
// error, logging server errors.
func (p *Provider) writeTokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	rfcErr := fosite.ErrorToRFC6749Error(err)
	if rfcErr.ErrorField == fosite.ErrJTIKnown.ErrorField {
		// A replayed client assertion is a failed client authentication
		// (RFC 7521 §4.2.1), not fosite's own error code.
		err = fosite.ErrInvalidClient.WithHint("The client assertion was already used.")
	}
	if rfcErr.CodeField >= 500 {
		p.log.ErrorContext(r.Context(), "token endpoint", "path", r.URL.Path, "err", err, "debug", rfcErr.DebugField)
	}
	p.metrics.tokenErrors.WithLabelValues(grantLabel(r.PostForm.Get("grant_type")), errorLabel(fosite.ErrorToRFC6749Error(err).ErrorField)).Inc()
	if ar == nil {
		ar = fosite.NewAccessRequest(NewSession())
	}
	p.oauth.WriteAccessError(r.Context(), w, ar, err)
}
