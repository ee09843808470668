package store

import (
	"strings"
	"time"

	"github.com/go-jose/go-jose/v3"
	"github.com/ory/fosite"
)

// Client is an OAuth 2.0 / OpenID Connect client. Its JSON form uses the RFC
// 7591 and OpenID Connect Registration field names; secrets never appear in
// it (the plain secret is shown once by whoever generated it).
type Client struct {
	ID                    string   `json:"client_id"`
	Name                  string   `json:"client_name,omitempty"`
	ApplicationType       string   `json:"application_type,omitempty"`
	RedirectURIs          []string `json:"redirect_uris,omitempty"`
	GrantTypes            []string `json:"grant_types,omitempty"`
	ResponseTypes         []string `json:"response_types,omitempty"`
	Scope                 string   `json:"scope,omitempty"`
	Audience              []string `json:"audience,omitempty"`
	Contacts              []string `json:"contacts,omitempty"`
	LogoURI               string   `json:"logo_uri,omitempty"`
	ClientURI             string   `json:"client_uri,omitempty"`
	PolicyURI             string   `json:"policy_uri,omitempty"`
	TOSURI                string   `json:"tos_uri,omitempty"`
	SoftwareID            string   `json:"software_id,omitempty"`
	SoftwareVersion       string   `json:"software_version,omitempty"`
	ClientIDIssuedAt      int64    `json:"client_id_issued_at,omitempty"`
	ClientSecretExpiresAt int64    `json:"client_secret_expires_at,omitempty"`

	TokenEndpointAuthMethod     string              `json:"token_endpoint_auth_method,omitempty"`
	TokenEndpointAuthSigningAlg string              `json:"token_endpoint_auth_signing_alg,omitempty"`
	JWKSURI                     string              `json:"jwks_uri,omitempty"`
	JWKS                        *jose.JSONWebKeySet `json:"jwks,omitempty"`
	RequestURIs                 []string            `json:"request_uris,omitempty"`
	RequestObjectSigningAlg     string              `json:"request_object_signing_alg,omitempty"`
	IDTokenSignedResponseAlg    string              `json:"id_token_signed_response_alg,omitempty"`
	UserinfoSignedResponseAlg   string              `json:"userinfo_signed_response_alg,omitempty"`
	SubjectType                 string              `json:"subject_type,omitempty"`
	SectorIdentifierURI         string              `json:"sector_identifier_uri,omitempty"`
	DefaultMaxAge               int64               `json:"default_max_age,omitempty"`
	RequireAuthTime             bool                `json:"require_auth_time,omitempty"`
	DefaultACRValues            []string            `json:"default_acr_values,omitempty"`
	InitiateLoginURI            string              `json:"initiate_login_uri,omitempty"`

	PostLogoutRedirectURIs            []string `json:"post_logout_redirect_uris,omitempty"`
	FrontchannelLogoutURI             string   `json:"frontchannel_logout_uri,omitempty"`
	FrontchannelLogoutSessionRequired bool     `json:"frontchannel_logout_session_required,omitempty"`
	BackchannelLogoutURI              string   `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired  bool     `json:"backchannel_logout_session_required,omitempty"`

	// Latchkey extensions, prefixed so they never clash with registered names.
	PKCEPlainAllowed bool                         `json:"latchkey_pkce_plain_allowed,omitempty"`
	SkipConsent      bool                         `json:"latchkey_skip_consent,omitempty"`
	RequireMFA       bool                         `json:"latchkey_require_mfa,omitempty"`
	TokenLifespans   *fosite.ClientLifespanConfig `json:"latchkey_token_lifespans,omitempty"`
	// AccessTokenFormat is "opaque" or "jwt" (RFC 9068); empty is the
	// provider's default. AccessTokenSigningAlg signs JWT access tokens;
	// empty is the provider's default algorithm.
	AccessTokenFormat     string `json:"latchkey_access_token_format,omitempty"`
	AccessTokenSigningAlg string `json:"latchkey_access_token_signing_alg,omitempty"`
	// TokenRateLimit is how many token requests per second the client may
	// make (per replica); zero is the provider's default.
	TokenRateLimit float64 `json:"latchkey_token_rate_limit,omitempty"`

	// SecretHash is the hash of the client secret (fosite.Hasher output);
	// RotatedSecretHashes still verify during a secret rotation.
	SecretHash          string   `json:"-"`
	RotatedSecretHashes []string `json:"-"`
	// RegistrationTokenHash is the SHA-256 of the RFC 7592 registration
	// access token, for dynamically registered clients.
	RegistrationTokenHash string `json:"-"`

	CreatedAt time.Time `json:"-"`
	UpdatedAt time.Time `json:"-"`
}

var (
	_ fosite.Client                         = (*Client)(nil)
	_ fosite.OpenIDConnectClient            = (*Client)(nil)
	_ fosite.ResponseModeClient             = (*Client)(nil)
	_ fosite.ClientWithSecretRotation       = (*Client)(nil)
	_ fosite.ClientWithCustomTokenLifespans = (*Client)(nil)
)

// GetID returns the client ID.
func (c *Client) GetID() string { return c.ID }

// GetHashedSecret returns the stored secret hash.
func (c *Client) GetHashedSecret() []byte { return []byte(c.SecretHash) }

// GetRotatedHashes returns the hashes of secrets being rotated out.
func (c *Client) GetRotatedHashes() [][]byte {
	out := make([][]byte, len(c.RotatedSecretHashes))
	for i, h := range c.RotatedSecretHashes {
		out[i] = []byte(h)
	}
	return out
}

// GetRedirectURIs returns the registered redirect URIs.
func (c *Client) GetRedirectURIs() []string { return c.RedirectURIs }

// GetGrantTypes returns the grant types, authorization_code when unset (RFC 7591 §2).
func (c *Client) GetGrantTypes() fosite.Arguments {
	if len(c.GrantTypes) == 0 {
		return fosite.Arguments{"authorization_code"}
	}
	return c.GrantTypes
}

// GetResponseTypes returns the response types, code when unset (RFC 7591 §2).
func (c *Client) GetResponseTypes() fosite.Arguments {
	if len(c.ResponseTypes) == 0 {
		return fosite.Arguments{"code"}
	}
	return c.ResponseTypes
}

// GetScopes returns the scopes the client may request.
func (c *Client) GetScopes() fosite.Arguments { return fosite.Arguments(strings.Fields(c.Scope)) }

// IsPublic reports whether the client has no credentials.
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == "none" }

// GetAudience returns the audiences the client may request.
func (c *Client) GetAudience() fosite.Arguments { return c.Audience }

// GetRequestURIs returns the registered request_uri values.
func (c *Client) GetRequestURIs() []string { return c.RequestURIs }

// GetJSONWebKeys returns the client's inline JWKS.
func (c *Client) GetJSONWebKeys() *jose.JSONWebKeySet { return c.JWKS }

// GetJSONWebKeysURI returns the client's jwks_uri.
func (c *Client) GetJSONWebKeysURI() string { return c.JWKSURI }

// GetRequestObjectSigningAlgorithm returns the pinned request object alg, if any.
func (c *Client) GetRequestObjectSigningAlgorithm() string { return c.RequestObjectSigningAlg }

// GetTokenEndpointAuthMethod returns the auth method, client_secret_basic when unset (RFC 7591 §2).
func (c *Client) GetTokenEndpointAuthMethod() string {
	if c.TokenEndpointAuthMethod == "" {
		return "client_secret_basic"
	}
	return c.TokenEndpointAuthMethod
}

// GetTokenEndpointAuthSigningAlgorithm returns the alg for private_key_jwt, RS256 when unset.
func (c *Client) GetTokenEndpointAuthSigningAlgorithm() string {
	if c.TokenEndpointAuthSigningAlg == "" {
		return "RS256"
	}
	return c.TokenEndpointAuthSigningAlg
}

// GetResponseModes allows every response mode; fosite still refuses modes
// that are insecure for the response type.
func (c *Client) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery, fosite.ResponseModeFragment, fosite.ResponseModeFormPost}
}

// GetEffectiveLifespan returns the client's own lifespan for a grant and
// token type, or fallback.
func (c *Client) GetEffectiveLifespan(gt fosite.GrantType, tt fosite.TokenType, fallback time.Duration) time.Duration {
	l := fosite.DefaultClientWithCustomTokenLifespans{TokenLifespans: c.TokenLifespans}
	return l.GetEffectiveLifespan(gt, tt, fallback)
}
