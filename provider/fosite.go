package provider

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v3"
	"github.com/hashicorp/go-retryablehttp"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/handler/rfc8628"

	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// fositeConfig is fosite's configuration with the answers fosite's own
// Config cannot give.
type fositeConfig struct {
	*fosite.Config
	tokenURLs []string
}

// GetTokenURLs lists the audiences a private_key_jwt client assertion may
// name: the token endpoint, and also the issuer and the other endpoints
// that authenticate clients (RFC 7523 §3 and RFC 9126 §2 allow the issuer).
func (c *fositeConfig) GetTokenURLs(context.Context) []string { return c.tokenURLs }

// GetMinParameterEntropy is one: fosite would otherwise refuse a state or
// nonce shorter than eight characters, which OpenID Connect allows (it
// treats zero as eight, so one is the lowest). A missing state is handled by
// newAuthorizeRequest and checkAuthorizeRequest.
func (c *fositeConfig) GetMinParameterEntropy(context.Context) int { return 1 }

// GetTokenEndpointHandlers returns, while fosite handles a token request
// (it puts the request in ctx), only the handlers of its grant type.
// fosite's NewAccessResponse asks every handler to populate the response,
// and each one of another grant type answers with an error that records a
// stack trace: about a sixth of the CPU of a client_credentials token.
func (c *fositeConfig) GetTokenEndpointHandlers(ctx context.Context) fosite.TokenEndpointHandlers {
	all := c.Config.GetTokenEndpointHandlers(ctx)
	ar, ok := ctx.Value(fosite.AccessRequestContextKey).(fosite.AccessRequester)
	if !ok {
		return all
	}
	var mine fosite.TokenEndpointHandlers
	for _, h := range all {
		if h.CanHandleTokenEndpointRequest(ctx, ar) {
			mine = append(mine, h)
		}
	}
	return mine
}

// clientAuthentication is fosite's client authentication with two lapses
// mended. A client assertion that is not valid is a failed client
// authentication, invalid_client (RFC 7523 §3.2 says MUST, RFC 6749 §5.2),
// but fosite answers an assertion whose exp, iat or nbf fails the check
// with the JWT library's plain error (a server error), and one whose key
// is not in the client's key set (an unknown kid) with invalid_request.
// fosite reports every other failure, the store's included, as its own
// error; a malformed request stays invalid_request.
func clientAuthentication(authenticate fosite.ClientAuthenticationStrategy) fosite.ClientAuthenticationStrategy {
	return func(ctx context.Context, r *http.Request, form url.Values) (fosite.Client, error) {
		c, err := authenticate(ctx, r, form)
		var rfcErr *fosite.RFC6749Error
		switch {
		case err == nil:
		case !errors.As(err, &rfcErr):
			return nil, fosite.ErrInvalidClient.WithHintf("The client assertion is not valid: %s.", err).WithDebug(err.Error())
		case rfcErr.ErrorField == fosite.ErrInvalidRequest.ErrorField && form.Get("client_assertion") != "" &&
			form.Get("client_assertion_type") == clientAssertionJWTBearer:
			// With an assertion of the right type, fosite's
			// invalid_request is about the assertion's key.
			return nil, fosite.ErrInvalidClient.WithHint(rfcErr.HintField).WithWrap(err).WithDebug(rfcErr.DebugField)
		}
		return c, err
	}
}

const clientAssertionJWTBearer = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// clientKeysFetcher is fosite's JWKS fetcher with its failures answered
// as the client's: a jwks_uri that cannot be fetched (unreachable, refused
// by the outbound address policy, not a key set) fails the client's
// authentication, invalid_client (RFC 6749 §5.2), where fosite answers
// server_error. Why it failed stays in the debug text, which is not sent:
// a registrant must not use the provider to map a network. Request objects
// get fosite's invalid_request_object around it.
//
// fosite fetches a key set again, past its cache, when it does not hold
// the kid a JWT names. That refetch is allowed once per
// jwksForcedRefreshEvery and location: else every assertion naming a
// made-up kid would cost a fetch from the client's server.
type clientKeysFetcher struct {
	fosite.JWKSFetcherStrategy
	now func() time.Time

	mu     sync.Mutex
	forced map[string]time.Time // location → its last refetch past the cache
}

// jwksForcedRefreshEvery is how often an unknown kid may make the provider
// fetch a key set again; a client that rotated its keys waits at most this
// long for its new key to be seen.
const jwksForcedRefreshEvery = 10 * time.Second

func newClientKeysFetcher(f fosite.JWKSFetcherStrategy, now func() time.Time) *clientKeysFetcher {
	return &clientKeysFetcher{JWKSFetcherStrategy: f, now: now, forced: map[string]time.Time{}}
}

func (f *clientKeysFetcher) Resolve(ctx context.Context, location string, ignoreCache bool) (*jose.JSONWebKeySet, error) {
	if ignoreCache && !f.mayRefetch(location) {
		ignoreCache = false
	}
	set, err := f.JWKSFetcherStrategy.Resolve(ctx, location, ignoreCache)
	if err != nil {
		return nil, fosite.ErrInvalidClient.WithHint("The client's jwks_uri could not be fetched.").WithWrap(err).WithDebug(err.Error())
	}
	return set, nil
}

// mayRefetch reports whether location may be fetched past the cache now,
// and if so records it.
func (f *clientKeysFetcher) mayRefetch(location string) bool {
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if last, ok := f.forced[location]; ok && now.Sub(last) < jwksForcedRefreshEvery {
		return false
	}
	for loc, last := range f.forced {
		if now.Sub(last) >= jwksForcedRefreshEvery {
			delete(f.forced, loc) // one entry per client key set at most
		}
	}
	f.forced[location] = now
	return true
}

// deriveSecret derives a key for one purpose from the system secret, so the
// token HMAC key, the client secret pepper and the store's sealing keys are
// independent.
func deriveSecret(secret []byte, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, secret, nil, purpose, 32)
}

const tokenHMACPurpose = "latchkey token hmac"

// deviceStrategy is fosite's device code strategy with the poll checks
// fosite leaves out (notes §2.5): slow_down when a device polls faster than
// the interval, and expired_token for a code that expired undecided.
type deviceStrategy struct {
	*rfc8628.DefaultDeviceStrategy
	polls interface {
		PollDeviceCode(ctx context.Context, signature string, interval time.Duration) (store.DevicePoll, error)
	}
	interval time.Duration
}

// ShouldRateLimit records the poll. fosite answers slow_down when it returns
// true and passes its error through unchanged, which is how expired_token
// reaches a device whose user never decided.
func (d *deviceStrategy) ShouldRateLimit(ctx context.Context, code string) (bool, error) {
	sig, err := d.DeviceCodeSignature(ctx, code)
	if err != nil {
		return false, nil // fosite rejects the malformed code next
	}
	poll, err := d.polls.PollDeviceCode(ctx, sig, d.interval)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return false, nil // unknown or used: fosite answers invalid_grant
	case err != nil:
		return false, fmt.Errorf("record device poll: %w", err)
	case poll.Expired:
		return false, fosite.ErrDeviceExpiredToken
	}
	return poll.TooFast, nil
}

// fositeParts are what composeFosite builds that the provider uses itself.
type fositeParts struct {
	oauth  *fosite.Fosite
	fcfg   *fositeConfig
	device *deviceStrategy
	// codes gives the signatures authorization codes are stored under.
	codes oauth2.AuthorizeCodeStrategy
}

// composeFosite builds the OAuth 2.0 provider from fosite's handlers in the
// order notes §8.1 gives: PKCE after every handler that issues a code, and
// the OpenID Connect handlers after their OAuth 2.0 counterparts.
func composeFosite(cfg Config, st *store.Store, ring *keys.Ring, hasher fosite.Hasher, subject func(fosite.Requester) string) (fositeParts, error) {
	secret, err := deriveSecret(cfg.SystemSecret, tokenHMACPurpose)
	if err != nil {
		return fositeParts{}, err
	}
	var rotated [][]byte
	for _, old := range cfg.OldSystemSecrets {
		k, err := deriveSecret(old, tokenHMACPurpose)
		if err != nil {
			return fositeParts{}, err
		}
		rotated = append(rotated, k)
	}
	// fosite fetches client JWKS (and could fetch request objects) with
	// the client that refuses non-public addresses.
	httpClient := retryablehttp.NewClient()
	httpClient.HTTPClient = cfg.fetchHTTP
	httpClient.RetryMax = 0
	httpClient.Logger = nil

	u := endpointsFor(cfg.Issuer)
	fc := &fositeConfig{
		Config: &fosite.Config{
			AccessTokenLifespan:            cfg.AccessTokenLifespan,
			RefreshTokenLifespan:           cfg.RefreshTokenLifespan,
			AuthorizeCodeLifespan:          cfg.AuthorizeCodeLifespan,
			IDTokenLifespan:                cfg.IDTokenLifespan,
			IDTokenIssuer:                  cfg.Issuer,
			AccessTokenIssuer:              cfg.Issuer,
			DeviceAndUserCodeLifespan:      cfg.DeviceCodeLifespan,
			DeviceAuthTokenPollingInterval: cfg.DevicePollInterval,
			DeviceVerificationURL:          u.deviceVerification,
			UserCodeLength:                 8,
			UserCodeSymbols:                []rune(userCodeSymbols),
			ScopeStrategy:                  fosite.ExactScopeStrategy,
			AudienceMatchingStrategy:       fosite.ExactAudienceMatchingStrategy,
			EnforcePKCEForPublicClients:    true,
			// Plain is allowed here and refused at the authorize and PAR
			// endpoints for every client that did not opt in.
			EnablePKCEPlainChallengeMethod:  true,
			AllowedPromptValues:             []string{"login", "none", "consent", "select_account"},
			TokenURL:                        u.token,
			RefreshTokenScopes:              []string{"offline_access", "offline"},
			ClientSecretsHasher:             hasher,
			HTTPClient:                      httpClient,
			JWKSFetcherStrategy:             newClientKeysFetcher(fosite.NewDefaultJWKSFetcherStrategy(fosite.JWKSFetcherWithHTTPClient(httpClient)), time.Now),
			GlobalSecret:                    secret,
			RotatedGlobalSecrets:            rotated,
			PushedAuthorizeRequestURIPrefix: "urn:ietf:params:oauth:request_uri:",
			PushedAuthorizeContextLifespan:  cfg.PARLifespan,
			FormPostHTMLTemplate:            formPostTemplate,
			SanitationWhiteList:             nil,
		},
		tokenURLs: []string{u.token, cfg.Issuer, u.par, u.introspect, u.revoke, u.deviceAuth},
	}
	device := &deviceStrategy{
		DefaultDeviceStrategy: compose.NewDeviceStrategy(fc),
		polls:                 st,
		interval:              cfg.DevicePollInterval,
	}
	core := compose.NewOAuth2HMACStrategy(fc)
	strategy := &compose.CommonStrategy{
		CoreStrategy: &accessTokens{
			CoreStrategy:    core,
			ring:            ring,
			issuer:          cfg.Issuer,
			defaultFormat:   cfg.AccessTokenFormat,
			defaultAudience: u.userinfo,
			subject:         subject,
		},
		RFC8628CodeStrategy:        device,
		OpenIDConnectTokenStrategy: &openid.DefaultStrategy{Signer: idTokenSigner{ring}, Config: fc},
		Signer:                     ring,
	}
	f := fosite.NewOAuth2Provider(st, fc)
	fc.ClientAuthenticationStrategy = clientAuthentication(f.DefaultClientAuthenticationStrategy)
	factories := []compose.Factory{
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2AuthorizeImplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		//lint:ignore SA1019 the password grant is required; it is off unless a client lists it
		compose.OAuth2ResourceOwnerPasswordCredentialsFactory,
		compose.RFC8628DeviceFactory,
		compose.RFC8628DeviceAuthorizationTokenFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectImplicitFactory,
		compose.OpenIDConnectHybridFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OpenIDConnectDeviceFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OAuth2PKCEFactory,
		compose.PushedAuthorizeHandlerFactory,
	}
	c := fc.Config
	for _, factory := range factories {
		h := factory(fc, st, strategy)
		if ah, ok := h.(fosite.AuthorizeEndpointHandler); ok {
			c.AuthorizeEndpointHandlers.Append(ah)
		}
		if th, ok := h.(fosite.TokenEndpointHandler); ok {
			c.TokenEndpointHandlers.Append(th)
		}
		if ti, ok := h.(fosite.TokenIntrospector); ok {
			c.TokenIntrospectionHandlers.Append(ti)
		}
		if rh, ok := h.(fosite.RevocationHandler); ok {
			c.RevocationHandlers.Append(rh)
		}
		if ph, ok := h.(fosite.PushedAuthorizeEndpointHandler); ok {
			c.PushedAuthorizeEndpointHandlers.Append(ph)
		}
		if dh, ok := h.(fosite.DeviceEndpointHandler); ok {
			c.DeviceEndpointHandlers.Append(dh)
		}
	}
	return fositeParts{oauth: f, fcfg: fc, device: device, codes: core}, nil
}

// userCodeSymbols are the letters of device user codes: consonants only,
// so no code spells a word, and none that are easily confused.
const userCodeSymbols = "BCDFGHJKLMNPQRSTVWXZ"
