package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite/token/jwt"
)

// decodeIDTokenHint verifies an ID token this provider issued, with any
// published key (a hint may predate a rotation), and returns its claims.
// An expired token is accepted, as Core §3.1.2.1 and RP-Initiated Logout
// §2 allow: its signature proves who it named.
func (p *Provider) decodeIDTokenHint(ctx context.Context, hint string) (jwt.MapClaims, error) {
	tok, err := p.keys.Decode(ctx, hint)
	var ve *jwt.ValidationError
	// fosite checks claims only after the signature verified, so an
	// expiry error means the signature was good.
	if err != nil && !(errors.As(err, &ve) && ve.Has(jwt.ValidationErrorExpired)) {
		return nil, fmt.Errorf("id_token_hint: %w", err)
	}
	if tok == nil || tok.Claims == nil {
		return nil, errors.New("id_token_hint: no claims")
	}
	if iss, _ := tok.Claims["iss"].(string); iss != p.cfg.Issuer {
		return nil, errors.New("id_token_hint: issued by someone else")
	}
	if sub, _ := tok.Claims["sub"].(string); sub == "" {
		return nil, errors.New("id_token_hint: no subject")
	}
	return tok.Claims, nil
}
