package provider

import "net/http"

// jwks serves the provider's public keys (/.well-known/jwks.json): the
// current, next and retired keys of every algorithm, so that relying
// parties already hold the next key when a rotation makes it current and
// still hold a retired one while tokens it signed are in use. That is also
// why a few minutes of caching is safe.
func (p *Provider) jwks(w http.ResponseWriter, r *http.Request) {
	writePublicJSON(w, p.keys.PublicKeys())
}
