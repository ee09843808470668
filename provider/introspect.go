package provider

import (
	"net/http"
	"strings"

	"github.com/ory/fosite"
)

// introspect is the token introspection endpoint (RFC 7662). Only an
// authenticated confidential client may call it, and it learns only about
// tokens it may see: its own, and access tokens issued for it as an
// audience (a resource server). Every other token, like an unknown,
// expired or revoked one, is {"active": false}, so that the answer does
// not tell a client that someone else's token exists.
//
// fosite's NewIntrospectionRequest is not used: it authenticates only with
// Basic or a bearer token and lets any client introspect any token
// (notes §7 #18).
func (p *Provider) introspect(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	result := resultError
	defer func() { p.metrics.introspection.WithLabelValues(result).Inc() }()
	if !parseClientForm(w, r) {
		return
	}
	if !clientCredentialsPresented(r) {
		writeClientAuthError(w, fosite.ErrInvalidClient.WithHint("The introspection endpoint needs client authentication."))
		return
	}
	client, err := p.oauth.AuthenticateClient(ctx, r, r.PostForm)
	if err != nil {
		p.writeClientError(w, r, err)
		return
	}
	if client.IsPublic() {
		writeClientAuthError(w, fosite.ErrInvalidClient.WithHint("Only confidential clients may introspect tokens."))
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The token parameter is missing.")
		return
	}
	hint := fosite.TokenUse(r.PostForm.Get("token_type_hint"))
	tu, ar, err := p.oauth.IntrospectToken(ctx, token, hint, NewSession())
	if err != nil {
		if tokenStoreFailed(err) {
			p.logFailure(ctx, "introspect: look up token", err)
			writeServerError(w, err, "The token could not be checked; try again.")
			return
		}
		result = introspectInactive
		writeInactive(w)
		return
	}
	if !mayIntrospect(client.GetID(), tu, ar) {
		result = introspectInactive
		writeInactive(w)
		return
	}
	result = introspectActive
	writeJSON(w, http.StatusOK, p.introspection(tu, ar))
}

// mayIntrospect reports whether the client callerID may learn about the
// token: it is the client the token was issued to, or, for an access
// token, one of the audiences it was granted for. Refresh tokens are for
// their client alone.
func mayIntrospect(callerID string, tu fosite.TokenUse, ar fosite.AccessRequester) bool {
	if ar.GetClient() != nil && ar.GetClient().GetID() == callerID {
		return true
	}
	return tu == fosite.AccessToken && ar.GetGrantedAudience().Has(callerID)
}

// introspectionReserved are the members the provider sets itself; extra
// claims the login app attached to the token never replace them.
var introspectionReserved = map[string]bool{
	"active": true, "scope": true, "client_id": true, "username": true, "token_type": true,
	"exp": true, "iat": true, "nbf": true, "sub": true, "aud": true, "iss": true, "jti": true,
}

// introspection is the RFC 7662 §2.2 answer for an active token. It is
// built here rather than by fosite's WriteIntrospectionResponse, which
// gives a refresh token the expiry of its access token, has no token_type
// or iss, and lets extra claims overwrite "active".
func (p *Provider) introspection(tu fosite.TokenUse, ar fosite.AccessRequester) map[string]any {
	out := map[string]any{}
	sess := ar.GetSession()
	if extra, ok := sess.(fosite.ExtraClaimsSession); ok {
		for k, v := range extra.GetExtraClaims() {
			if !introspectionReserved[k] {
				out[k] = v
			}
		}
	}
	out["active"] = true
	out["iss"] = p.cfg.Issuer
	if ar.GetClient() != nil {
		out["client_id"] = ar.GetClient().GetID()
	}
	if s := ar.GetGrantedScopes(); len(s) > 0 {
		out["scope"] = strings.Join(s, " ")
	}
	// sub is what the token's client knows the user by, whoever asks: a
	// resource server must not learn more than the client did.
	if sub := p.tokenSubject(ar); sub != "" {
		out["sub"] = sub
	}
	if u := sess.GetUsername(); u != "" {
		out["username"] = u
	}
	if aud := ar.GetGrantedAudience(); len(aud) > 0 {
		out["aud"] = []string(aud)
	}
	if t := ar.GetRequestedAt(); !t.IsZero() {
		out["iat"] = t.Unix()
	}
	if exp := sess.GetExpiresAt(fosite.TokenType(tu)); !exp.IsZero() {
		out["exp"] = exp.Unix()
	}
	if tu == fosite.AccessToken {
		// RFC 7662 token_type is the access token type of RFC 6749 §5.1,
		// spelt as RFC 6750 registers it (fosite's "bearer" matches it
		// case-insensitively).
		out["token_type"] = "Bearer"
	}
	return out
}

func writeInactive(w http.ResponseWriter) {
	writeJSON(w, http.StatusOK, map[string]bool{"active": false})
}

// parseClientForm parses the form body of a client's request to the
// introspection or revocation endpoint. It answers invalid_request itself
// and returns false when the body is not a form of at most 1 MiB, or its
// parameters are repeated or not UTF-8 (parseFormBody).
func parseClientForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	if err := parseFormBody(r); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", paramProblem(err))
		return false
	}
	return true
}

// clientCredentialsPresented reports whether the request carries any
// client authentication: HTTP Basic, a client_id in the body (with a
// secret, or alone for a public client), or a client assertion.
func clientCredentialsPresented(r *http.Request) bool {
	if _, _, ok := r.BasicAuth(); ok {
		return true
	}
	return r.PostForm.Get("client_id") != "" || r.PostForm.Get("client_assertion") != ""
}

// writeClientError answers a failed client authentication at the
// introspection or revocation endpoint: 400 for a malformed request, 401
// invalid_client for credentials that do not authenticate a client (RFC
// 6749 §5.2), and a logged server error when the store failed.
func (p *Provider) writeClientError(w http.ResponseWriter, r *http.Request, err error) {
	err = retryable(w, err)
	rfcErr := fosite.ErrorToRFC6749Error(err)
	switch {
	case rfcErr.CodeField >= http.StatusInternalServerError:
		p.logFailure(r.Context(), "client authentication", err, "path", r.URL.Path, "debug", rfcErr.DebugField)
		writeError(w, rfcErr.CodeField, rfcErr.ErrorField, rfcErr.GetDescription())
	case rfcErr.ErrorField == fosite.ErrInvalidRequest.ErrorField:
		writeError(w, http.StatusBadRequest, rfcErr.ErrorField, rfcErr.GetDescription())
	default:
		writeClientAuthError(w, rfcErr)
	}
}

// writeClientAuthError answers 401 invalid_client with a Basic challenge,
// the scheme confidential clients use most.
func writeClientAuthError(w http.ResponseWriter, rfcErr *fosite.RFC6749Error) {
	w.Header().Set("WWW-Authenticate", `Basic realm="latchkey"`)
	writeError(w, http.StatusUnauthorized, fosite.ErrInvalidClient.ErrorField, rfcErr.GetDescription())
}
