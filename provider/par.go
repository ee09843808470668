package provider

import (
	"net/http"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// pushedAuthorize is the pushed authorization request endpoint (RFC 9126).
// The client authenticates and pushes the parameters it would have put in
// the authorization URL; the answer is a one-time request_uri. The same
// rules as the authorize endpoint apply before the request is stored.
func (p *Provider) pushedAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseFormBody(r); err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, fosite.NewAuthorizeRequest(), err)
		return
	}
	ar, err := p.oauth.NewPushedAuthorizeRequest(ctx, r)
	if err == nil {
		err = repairRequestObject(ar)
	}
	if err == nil {
		client, _ := ar.GetClient().(*store.Client)
		err = p.checkAuthorizeRequest(ctx, ar, client)
	}
	if err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, retryable(w, err))
		return
	}
	resp, err := p.oauth.NewPushedAuthorizeResponse(ctx, ar, NewSession())
	if err != nil {
		p.oauth.WritePushedAuthorizeError(ctx, w, ar, retryable(w, err))
		return
	}
	p.oauth.WritePushedAuthorizeResponse(ctx, w, ar, resp)
}
