package provider

import (
	"encoding/json"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// Session is what Latchkey keeps with every code and token fosite issues:
// the ID token claims and headers, plus what userinfo and introspection
// answer for the token.
type Session struct {
	openid.DefaultSession
	// SID is the SSO session the token was issued in; empty for grants
	// without a browser (client credentials, password, refresh of those).
	SID string `json:"sid,omitempty"`
	// Userinfo holds the claims the userinfo endpoint returns besides sub,
	// chosen at consent from the granted scopes and the claims parameter.
	Userinfo map[string]any `json:"userinfo,omitempty"`
	// AccessClaims are extra claims the login app attached to the access
	// token; introspection returns them.
	AccessClaims map[string]any `json:"access_claims,omitempty"`
}

// NewSession returns an empty session, the shape the store decodes stored
// requests into.
func NewSession() *Session {
	return &Session{DefaultSession: openid.DefaultSession{
		Claims:  &jwt.IDTokenClaims{RequestedAt: time.Now().UTC()},
		Headers: &jwt.Headers{},
	}}
}

func newFositeSession() fosite.Session { return NewSession() }

// Clone returns a deep copy. The embedded session's Clone would return the
// embedded type and lose the fields above.
func (s *Session) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	b, err := json.Marshal(s)
	if err != nil {
		// Every field is plain JSON data; this cannot fail for a session
		// the provider built, so fall back to a shallow copy.
		c := *s
		return &c
	}
	c := &Session{}
	if err := json.Unmarshal(b, c); err != nil {
		cp := *s
		return &cp
	}
	return c
}

// GetExtraClaims returns the access token's extra claims, which fosite's
// introspection response includes.
func (s *Session) GetExtraClaims() map[string]any {
	if s.AccessClaims == nil {
		s.AccessClaims = map[string]any{}
	}
	return s.AccessClaims
}
