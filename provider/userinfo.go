package provider

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// userinfo is the UserInfo endpoint (Core §5.3). The access token comes as
// a bearer token in the Authorization header (GET or POST) or as the
// access_token parameter of a form-encoded POST body (RFC 6750 §2.1-2.2);
// a token in the query string is refused, since URLs end up in logs and
// Referer headers. The answer is sub plus the claims chosen at consent,
// as JSON, or as a signed JWT for a client that registered
// userinfo_signed_response_alg.
func (p *Provider) userinfo(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	token, problem := bearerToken(w, r)
	if problem != "" {
		writeBearerError(w, http.StatusBadRequest, "invalid_request", problem)
		return
	}
	if token == "" {
		// No credentials at all: a bare challenge, no error code (RFC 6750 §3.1).
		w.Header().Set("WWW-Authenticate", "Bearer")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if !utf8.ValidString(token) {
		// Not a token Latchkey issues, nor one the store can look up.
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is unknown, expired or revoked.")
		return
	}
	tu, ar, err := p.oauth.IntrospectToken(ctx, token, fosite.AccessToken, NewSession())
	if err != nil {
		if tokenStoreFailed(err) {
			p.logFailure(ctx, "userinfo: look up access token", err)
			writeServerError(w, err, "The token could not be checked; try again.")
			return
		}
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", "The access token is unknown, expired or revoked.")
		return
	}
	if tu != fosite.AccessToken {
		// fosite falls back to refresh tokens when no access token matches.
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", "The token is not an access token.")
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", error_description="The access token was not granted the openid scope.", scope="openid"`)
		writeError(w, http.StatusForbidden, "insufficient_scope", "The access token was not granted the openid scope.")
		return
	}
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		p.log.ErrorContext(ctx, "userinfo: unexpected session type", "type", fmt.Sprintf("%T", ar.GetSession()))
		writeError(w, http.StatusInternalServerError, "server_error", "The token's session could not be read.")
		return
	}
	claims := userinfoClaims(sess, p.tokenSubject(ar))

	client, _ := ar.GetClient().(*store.Client)
	if client == nil || client.UserinfoSignedResponseAlg == "" {
		writeJSON(w, http.StatusOK, claims)
		return
	}
	alg := client.UserinfoSignedResponseAlg
	if !slices.Contains(p.keys.Algs(), alg) {
		// Registration should have refused it; answering unsigned would
		// hand the client something it was told it would not get.
		p.log.ErrorContext(ctx, "userinfo: client registered an algorithm the provider has no key for",
			"client_id", client.ID, "alg", alg, "configured", p.keys.Algs())
		writeError(w, http.StatusInternalServerError, "server_error",
			fmt.Sprintf("The client's userinfo_signed_response_alg %s is not supported by this provider.", alg))
		return
	}
	// A signed response names its issuer and audience (Core §5.3.2).
	claims["iss"] = p.cfg.Issuer
	claims["aud"] = client.ID
	jwt, err := p.keys.Sign(ctx, alg, claims, nil)
	if err != nil {
		p.log.ErrorContext(ctx, "userinfo: sign response", "err", err)
		writeError(w, http.StatusInternalServerError, "server_error", "The userinfo response could not be signed.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwt")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(jwt))
}

// userinfoClaims is sub, the ID token's (tokenSubject), and the claims
// chosen for userinfo at consent. The provider's own claims are never
// taken from there: sub must be the ID token's, and iss and aud belong to
// a signed response.
func userinfoClaims(sess *Session, sub string) map[string]any {
	out := make(map[string]any, len(sess.Userinfo)+1)
	for k, v := range sess.Userinfo {
		if !reservedClaims[k] {
			out[k] = v
		}
	}
	out["sub"] = sub
	return out
}

// bearerToken finds the access token of a protected resource request. It
// returns a non-empty problem for a request that is malformed (RFC 6750
// §3.1 invalid_request), and an empty token when none was sent.
func bearerToken(w http.ResponseWriter, r *http.Request) (token, problem string) {
	if r.URL.Query().Has("access_token") {
		return "", "Send the access token in the Authorization header or a form-encoded POST body, not in the URL."
	}
	var fromHeader string
	hasHeader := false
	if auth := r.Header.Get("Authorization"); auth != "" {
		scheme, value, _ := strings.Cut(auth, " ")
		if strings.EqualFold(scheme, "Bearer") {
			hasHeader = true
			fromHeader = strings.TrimSpace(value)
			if fromHeader == "" {
				return "", "The Authorization header has an empty bearer token."
			}
		}
	}
	var fromBody string
	hasBody := false
	if r.Method == http.MethodPost && isFormContent(r) {
		r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
		if err := r.ParseForm(); err != nil {
			return "", "The request body is not a valid form."
		}
		if vs, ok := r.PostForm["access_token"]; ok {
			if len(vs) != 1 || vs[0] == "" {
				return "", "The access_token parameter must appear once, with a value."
			}
			hasBody, fromBody = true, vs[0]
		}
	}
	switch {
	case hasHeader && hasBody:
		return "", "Send the access token one way only, not in both the Authorization header and the body."
	case hasHeader:
		return fromHeader, ""
	default:
		return fromBody, ""
	}
}

func isFormContent(r *http.Request) bool {
	ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";")
	return strings.EqualFold(strings.TrimSpace(ct), "application/x-www-form-urlencoded")
}

// writeBearerError answers a protected resource request with an RFC 6750
// §3 error: the challenge in WWW-Authenticate and the same error as JSON.
// description must not contain quotes or backslashes.
func writeBearerError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer error=%q, error_description=%q`, code, description))
	writeError(w, status, code, description)
}

// tokenStoreFailed reports whether a failed token lookup failed because the
// store could not answer, rather than because the token is unknown,
// expired or revoked. fosite reports both as request_unauthorized; only the
// wrapped cause tells them apart. A client whose valid token meets a
// database outage must not be told to throw the token away.
func tokenStoreFailed(err error) bool {
	rfcErr := fosite.ErrorToRFC6749Error(err)
	if rfcErr.CodeField >= http.StatusInternalServerError {
		return true
	}
	cause := rfcErr.Unwrap()
	if cause == nil {
		return false
	}
	// Not found, inactive and expired are fosite errors; anything else
	// under them is the database or the decoding of a stored row.
	var inner *fosite.RFC6749Error
	return !errors.As(cause, &inner)
}
