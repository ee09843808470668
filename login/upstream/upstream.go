// Package upstream signs users in with an upstream OpenID Connect provider
// ("Sign in with Acme"): it builds the authorization request (code flow with
// PKCE and a nonce), exchanges the returned code, and verifies the ID token,
// yielding the upstream Identity for the login app to link to a local user.
package upstream

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors of Upstream, each wrapping the detail, so a page can say which
// upstream sign-in failed without showing the detail to the user.
var (
	// ErrDiscovery: the provider's discovery document could not be fetched
	// or did not describe the configured issuer.
	ErrDiscovery = errors.New("upstream discovery failed")
	// ErrExchange: the token endpoint refused the code (wrong code, PKCE
	// verifier, client credentials, …) or could not be reached, or the
	// userinfo request needed for the email failed.
	ErrExchange = errors.New("upstream code exchange failed")
	// ErrInvalidIDToken: the ID token was missing, or its signature, issuer,
	// audience, expiry, nonce or access-token hash was wrong.
	ErrInvalidIDToken = errors.New("upstream ID token invalid")
)

// defaultScopes are requested when Config.Scopes is empty.
var defaultScopes = []string{oidc.ScopeOpenID, "email", "profile"}

// defaultTimeout bounds each request to the provider when Config.HTTPClient
// is nil.
const defaultTimeout = 15 * time.Second

var nameRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// Config describes one upstream provider.
type Config struct {
	Name         string   // slug used in URLs, [a-z0-9-]+
	DisplayName  string   // "Sign in with Acme"
	Issuer       string   // discovery at Issuer + "/.well-known/openid-configuration"
	ClientID     string   // Latchkey's client at the provider
	ClientSecret string   // sent with client_secret_basic
	Scopes       []string // openid, email and profile when empty; openid is always added
	// LinkByEmail links a first upstream sign-in to the existing local user
	// whose email equals the upstream's email, but only when the upstream
	// says that email is verified (Identity.EmailVerified).
	LinkByEmail bool
	HTTPClient  *http.Client // for every request to the provider; one with a timeout when nil
}

// Upstream is a configured upstream provider. It discovers the provider's
// endpoints on first use, retrying on later calls until discovery succeeds,
// and is safe for concurrent use.
type Upstream struct {
	cfg    Config
	client *http.Client

	// sem guards provider and verifier, and lets a caller waiting for another
	// caller's discovery give up when its own context ends.
	sem      chan struct{}
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// Identity is who the upstream says signed in.
type Identity struct {
	Issuer            string
	Subject           string // stable upstream user ID; link on (Issuer, Subject)
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Claims            map[string]any // all claims of the ID token (not of userinfo)
}

// New validates cfg and returns its Upstream. It does not contact the
// provider.
func New(cfg Config) (*Upstream, error) {
	if !nameRE.MatchString(cfg.Name) {
		return nil, fmt.Errorf("upstream name %q: want [a-z0-9-]+", cfg.Name)
	}
	if err := checkIssuer(cfg.Issuer); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", cfg.Name, err)
	}
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, fmt.Errorf("upstream %q: client ID and secret are required", cfg.Name)
	}
	if cfg.DisplayName == "" {
		cfg.DisplayName = "Sign in with " + cfg.Name
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = defaultScopes
	}
	if !slices.Contains(scopes, oidc.ScopeOpenID) {
		scopes = append([]string{oidc.ScopeOpenID}, scopes...)
	}
	cfg.Scopes = slices.Clone(scopes)
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout}
	}
	return &Upstream{cfg: cfg, client: client, sem: make(chan struct{}, 1)}, nil
}

// checkIssuer requires an absolute https URL, or http to a loopback host
// (development and tests), with no query or fragment (OpenID Connect
// Discovery §2).
func checkIssuer(issuer string) error {
	u, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("issuer %q: %w", issuer, err)
	}
	if u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("issuer %q: want an absolute URL without query or fragment", issuer)
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("issuer %q: want https (http only to a loopback host)", issuer)
}

// Name returns the slug used in URLs.
func (u *Upstream) Name() string { return u.cfg.Name }

// DisplayName returns the button label, "Sign in with Acme".
func (u *Upstream) DisplayName() string { return u.cfg.DisplayName }

// LinkByEmail reports whether a first sign-in may be linked to the local
// user with the same verified email.
func (u *Upstream) LinkByEmail() bool { return u.cfg.LinkByEmail }

// clientContext makes go-oidc and oauth2 use u's HTTP client.
func (u *Upstream) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, u.client)
}

// discover returns the provider and ID token verifier, fetching the
// discovery document on first use. A failure is not cached, so the next
// call tries again.
func (u *Upstream) discover(ctx context.Context) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	select {
	case u.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("upstream %q: %w: %w", u.cfg.Name, ErrDiscovery, ctx.Err())
	}
	defer func() { <-u.sem }()
	if u.provider != nil {
		return u.provider, u.verifier, nil
	}
	p, err := oidc.NewProvider(u.clientContext(ctx), u.cfg.Issuer)
	if err != nil {
		return nil, nil, fmt.Errorf("upstream %q: %w: %w", u.cfg.Name, ErrDiscovery, err)
	}
	// The key set outlives this request, so it gets a context of its own
	// carrying only the HTTP client.
	v := p.VerifierContext(u.clientContext(context.Background()), &oidc.Config{ClientID: u.cfg.ClientID})
	u.provider, u.verifier = p, v
	return p, v, nil
}

func (u *Upstream) oauth2Config(p *oidc.Provider, redirectURL string) *oauth2.Config {
	ep := p.Endpoint()
	// client_secret_basic; oauth2 form-urlencodes the ID and secret first
	// (RFC 6749 §2.3.1).
	ep.AuthStyle = oauth2.AuthStyleInHeader
	return &oauth2.Config{
		ClientID:     u.cfg.ClientID,
		ClientSecret: u.cfg.ClientSecret,
		Endpoint:     ep,
		RedirectURL:  redirectURL,
		Scopes:       u.cfg.Scopes,
	}
}

// AuthURL returns the provider's authorization URL to send the browser to:
// the code flow with state, nonce and a PKCE S256 challenge derived from
// codeVerifier. The caller keeps state, nonce and codeVerifier (see
// NewState) for the callback.
func (u *Upstream) AuthURL(ctx context.Context, redirectURL, state, nonce, codeVerifier string) (string, error) {
	if redirectURL == "" || state == "" || nonce == "" || codeVerifier == "" {
		return "", fmt.Errorf("upstream %q: redirect URL, state, nonce and code verifier are required", u.cfg.Name)
	}
	p, _, err := u.discover(ctx)
	if err != nil {
		return "", err
	}
	return u.oauth2Config(p, redirectURL).AuthCodeURL(state,
		oidc.Nonce(nonce),
		oauth2.S256ChallengeOption(codeVerifier),
	), nil
}

// idClaims are the ID token and userinfo claims Identity is made of.
type idClaims struct {
	Email             string     `json:"email"`
	EmailVerified     stringBool `json:"email_verified"`
	Name              string     `json:"name"`
	PreferredUsername string     `json:"preferred_username"`
}

// stringBool accepts true and "true": some providers send email_verified as
// a string.
type stringBool bool

func (b *stringBool) UnmarshalJSON(data []byte) error {
	switch string(data) {
	case "true", `"true"`:
		*b = true
	case "false", `"false"`, "null":
		*b = false
	default:
		return fmt.Errorf("boolean claim: unexpected %s", data)
	}
	return nil
}

// Exchange redeems the authorization code returned to redirectURL with the
// PKCE codeVerifier, verifies the ID token (signature, issuer, audience,
// expiry, and nonce against the one given to AuthURL) and returns the
// identity it asserts. When the ID token has no email and the provider has a
// userinfo endpoint, email, email_verified and name are taken from userinfo,
// but only if it describes the same subject.
func (u *Upstream) Exchange(ctx context.Context, redirectURL, code, codeVerifier, nonce string) (Identity, error) {
	if code == "" || codeVerifier == "" || nonce == "" {
		return Identity{}, fmt.Errorf("upstream %q: code, code verifier and nonce are required", u.cfg.Name)
	}
	p, verifier, err := u.discover(ctx)
	if err != nil {
		return Identity{}, err
	}
	ctx = u.clientContext(ctx)
	tok, err := u.oauth2Config(p, redirectURL).Exchange(ctx, code, oauth2.VerifierOption(codeVerifier))
	if err != nil {
		return Identity{}, fmt.Errorf("upstream %q: %w: %w", u.cfg.Name, ErrExchange, err)
	}
	invalid := func(format string, args ...any) error {
		return fmt.Errorf("upstream %q: %w: %w", u.cfg.Name, ErrInvalidIDToken, fmt.Errorf(format, args...))
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok || raw == "" {
		return Identity{}, invalid("token response has no id_token")
	}
	idt, err := verifier.Verify(ctx, raw)
	if err != nil {
		return Identity{}, invalid("%w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return Identity{}, invalid("nonce mismatch")
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Identity{}, invalid("%w", err)
		}
	}
	var c idClaims
	all := map[string]any{}
	if err := idt.Claims(&c); err != nil {
		return Identity{}, invalid("claims: %w", err)
	}
	if err := idt.Claims(&all); err != nil {
		return Identity{}, invalid("claims: %w", err)
	}
	id := Identity{
		Issuer:            idt.Issuer,
		Subject:           idt.Subject,
		Email:             c.Email,
		EmailVerified:     bool(c.EmailVerified),
		Name:              c.Name,
		PreferredUsername: c.PreferredUsername,
		Claims:            all,
	}
	if id.Subject == "" {
		return Identity{}, invalid("no subject")
	}
	if id.Email == "" && p.UserInfoEndpoint() != "" {
		if err := u.addUserInfo(ctx, p, tok, &id); err != nil {
			return Identity{}, fmt.Errorf("upstream %q: %w: userinfo: %w", u.cfg.Name, ErrExchange, err)
		}
	}
	return id, nil
}

// addUserInfo fills the email and name of id from the userinfo endpoint.
// A response about another subject is ignored (OpenID Connect Core §5.3.2):
// it must not lend its email to this identity.
func (u *Upstream) addUserInfo(ctx context.Context, p *oidc.Provider, tok *oauth2.Token, id *Identity) error {
	info, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return err
	}
	if info.Subject != id.Subject {
		return nil
	}
	var c idClaims
	if err := info.Claims(&c); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	id.Email, id.EmailVerified = c.Email, bool(c.EmailVerified)
	if id.Name == "" {
		id.Name = c.Name
	}
	return nil
}

// NewState returns fresh random values for one sign-in: the state and nonce
// (128 bits each) and a PKCE code verifier (RFC 7636, 256 bits).
func NewState() (state, nonce, verifier string) {
	return rand.Text(), rand.Text(), oauth2.GenerateVerifier()
}
