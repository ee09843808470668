package provider

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"
)

// revoke is the token revocation endpoint (RFC 7009). A client revokes one
// of its own tokens; fosite then revokes the whole grant the token belongs
// to, access and refresh tokens alike. Public clients authenticate with
// their client_id alone, so that a logged-out app can still clean up.
//
// The answer is 200 whether or not the token existed, and also when it
// belongs to another client (RFC 7009 §2.2): which tokens exist is not the
// caller's business.
func (p *Provider) revoke(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	result := resultError
	defer func() { p.metrics.revocation.WithLabelValues(result).Inc() }()
	if !parseClientForm(w, r) {
		return
	}
	if !clientCredentialsPresented(r) {
		writeClientAuthError(w, fosite.ErrInvalidClient.WithHint("The revocation endpoint needs client authentication, or the client_id of a public client."))
		return
	}
	// fosite would treat a missing token as an unknown one and answer 200;
	// it is a required parameter.
	if r.PostForm.Get("token") == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The token parameter is missing.")
		return
	}
	err := p.oauth.NewRevocationRequest(ctx, r)
	if err == nil || errors.Is(err, fosite.ErrUnauthorizedClient) {
		// ErrUnauthorizedClient: the token is another client's. It stays
		// valid, and the caller cannot tell.
		result = resultRevoked
		p.oauth.WriteRevocationResponse(ctx, w, nil)
		return
	}
	// fosite's writer answers every other failure with a bare 200 or a
	// generic error; a store failure must not look like success.
	p.writeClientError(w, r, err)
}
