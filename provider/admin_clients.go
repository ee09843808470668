package provider

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/latchkey-oidc/latchkey/provider/clientsecret"
	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// ClientRequest is client metadata as an operator sends it to the admin API
// or the CLI: the RFC 7591 / OpenID Connect Registration fields of
// store.Client, plus the secret fields that are never stored in clear.
//
// On create, a confidential client without ClientSecret gets a generated
// secret. On update, ClientSecret sets a new chosen secret and RotateSecret
// generates one; without either the secret stays as it is. KeepOldSecret
// lets the previous secret keep working next to the new one (one previous
// secret at most) until the secret changes again, so the client's
// deployments can be moved over without downtime.
//
// client_id_issued_at is set by the registrar, and client_secret_expires_at
// is always 0: secrets do not expire, they are rotated.
type ClientRequest struct {
	store.Client
	ClientSecret  string `json:"client_secret,omitempty"`
	RotateSecret  bool   `json:"latchkey_rotate_secret,omitempty"`
	KeepOldSecret bool   `json:"latchkey_keep_old_secret,omitempty"`
	unsupportedMetadata
}

// RegisteredClient is a stored client as the admin API and the CLI answer
// it. ClientSecret is set only in the answer that created the secret: it is
// shown once and stored only as a hash.
type RegisteredClient struct {
	*store.Client
	ClientSecret string `json:"client_secret,omitempty"`
	// SecretExpiresAt is RFC 7591's client_secret_expires_at, required
	// next to a new secret; 0 means it does not expire.
	SecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
}

// ClientMetadataError is a client the registrar refuses, in the RFC 7591
// §3.2.2 shape: Code is invalid_client_metadata or invalid_redirect_uri.
type ClientMetadataError struct {
	Code        string
	Description string
}

func (e *ClientMetadataError) Error() string { return e.Code + ": " + e.Description }

func invalidMetadata(format string, args ...any) error {
	return &ClientMetadataError{Code: "invalid_client_metadata", Description: fmt.Sprintf(format, args...)}
}

func invalidRedirectURI(format string, args ...any) error {
	return &ClientMetadataError{Code: "invalid_redirect_uri", Description: fmt.Sprintf(format, args...)}
}

// maxClientBody bounds a client metadata document.
const maxClientBody = 1 << 20

// ParseClientRequest decodes one client metadata document of at most 1 MiB.
// Unknown fields are ignored, as RFC 7591 §2 asks.
func ParseClientRequest(r io.Reader) (*ClientRequest, error) {
	return parseClientRequest(r, maxClientBody)
}

// parseClientRequest decodes one client metadata document of at most limit
// bytes.
func parseClientRequest(r io.Reader, limit int64) (*ClientRequest, error) {
	size := fmt.Sprintf("%d KiB", limit>>10)
	if limit%(1<<20) == 0 {
		size = fmt.Sprintf("%d MiB", limit>>20)
	}
	body, err := io.ReadAll(&io.LimitedReader{R: r, N: limit + 1})
	if err != nil {
		return nil, invalidMetadata("the client metadata could not be read: %v", err)
	}
	if int64(len(body)) > limit {
		return nil, invalidMetadata("the client metadata is larger than %s", size)
	}
	// JSON is UTF-8 (RFC 8259 §8.1); the decoder would quietly put U+FFFD
	// in place of bad bytes, in redirect URIs too.
	if !utf8.Valid(body) {
		return nil, invalidMetadata("the client metadata is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	var req ClientRequest
	if err := dec.Decode(&req); err != nil {
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			field := typeErr.Field[strings.LastIndexByte(typeErr.Field, '.')+1:]
			return nil, invalidMetadata("%s must not be a JSON %s", field, typeErr.Value)
		}
		return nil, invalidMetadata("the client metadata is not a JSON object: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalidMetadata("the client metadata must be a single JSON object")
	}
	return &req, nil
}

// ClientRegistrar validates client metadata and stores clients with their
// secrets hashed. The admin API, the CLI and dynamic registration all go
// through it, so a client is held to the same rules however it arrives.
type ClientRegistrar struct {
	store   *store.Store
	secrets *clientsecret.Hasher
	algs    []string
	dev     bool
	now     func() time.Time
	// http fetches sector_identifier_uri documents.
	http *http.Client
}

// NewClientRegistrar returns a registrar on st. It needs from cfg only the
// system secrets (the pepper of generated client secrets must be the
// server's), the signing algorithms, Dev, and OutboundAllow or HTTPClient
// (for sector_identifier_uri documents), so tools can use it without a
// running provider.
func NewClientRegistrar(st *store.Store, cfg Config) (*ClientRegistrar, error) {
	h, err := clientsecret.NewHasher(cfg.SystemSecret, cfg.OldSystemSecrets...)
	if err != nil {
		return nil, fmt.Errorf("client secret hasher: %w", err)
	}
	algs := cfg.KeyAlgs
	if len(algs) == 0 {
		algs = keys.DefaultAlgs()
	}
	fetch, _ := cfg.outboundClients()
	return &ClientRegistrar{store: st, secrets: h, algs: algs, dev: cfg.Dev, now: time.Now, http: fetch}, nil
}

// clients returns the provider's registrar, sharing its hasher and keys.
func (p *Provider) clients() *ClientRegistrar {
	return &ClientRegistrar{store: p.store, secrets: p.secrets, algs: p.keys.Algs(), dev: p.cfg.Dev, now: time.Now, http: p.cfg.fetchHTTP}
}

// Create validates req and stores it as a new client. A client_id that is
// taken gives an error wrapping store.ErrAlreadyExists; metadata that does
// not pass, a *ClientMetadataError.
func (r *ClientRegistrar) Create(ctx context.Context, req *ClientRequest) (*RegisteredClient, error) {
	return r.create(ctx, req, "")
}

// create is Create, storing registrationTokenHash (RFC 7592) with the
// client when dynamic registration issued a registration access token.
func (r *ClientRegistrar) create(ctx context.Context, req *ClientRequest, registrationTokenHash string) (*RegisteredClient, error) {
	if req.RotateSecret || req.KeepOldSecret {
		return nil, invalidMetadata("latchkey_rotate_secret and latchkey_keep_old_secret apply to updates only")
	}
	if err := req.unsupportedMetadata.check(); err != nil {
		return nil, err
	}
	c := req.Client
	c.SecretHash, c.RotatedSecretHashes, c.RegistrationTokenHash = "", nil, registrationTokenHash
	if c.ID == "" {
		c.ID = randomClientID()
	}
	if err := r.Validate(&c); err != nil {
		return nil, err
	}
	if err := r.checkSectorIdentifier(ctx, &c); err != nil {
		return nil, err
	}
	c.ClientIDIssuedAt, c.ClientSecretExpiresAt = r.now().Unix(), 0
	secret, err := r.setSecret(&c, req.ClientSecret, req.ClientSecret == "")
	if err != nil {
		return nil, err
	}
	if err := r.store.CreateClient(ctx, &c); err != nil {
		return nil, err
	}
	return registered(&c, secret), nil
}

// Update replaces the metadata of client id with req (PUT semantics: what
// req leaves out is reset to its default) and changes the secret as req
// asks; see ClientRequest. A missing client gives an error wrapping
// store.ErrNotFound.
func (r *ClientRegistrar) Update(ctx context.Context, id string, req *ClientRequest) (*RegisteredClient, error) {
	if req.ID != "" && req.ID != id {
		return nil, invalidMetadata("client_id cannot be changed")
	}
	if req.RotateSecret && req.ClientSecret != "" {
		return nil, invalidMetadata("send either client_secret or latchkey_rotate_secret, not both")
	}
	if req.KeepOldSecret && !req.RotateSecret && req.ClientSecret == "" {
		return nil, invalidMetadata("latchkey_keep_old_secret needs a new secret: client_secret or latchkey_rotate_secret")
	}
	if err := req.unsupportedMetadata.check(); err != nil {
		return nil, err
	}
	old, err := r.store.LoadClient(ctx, id)
	if err != nil {
		return nil, err
	}
	c := req.Client
	c.ID = id
	if err := r.Validate(&c); err != nil {
		return nil, err
	}
	if err := r.checkSectorIdentifier(ctx, &c); err != nil {
		return nil, err
	}
	if req.RotateSecret && !usesSecret(&c) {
		return nil, invalidMetadata("a client with token_endpoint_auth_method %q has no secret to rotate", c.TokenEndpointAuthMethod)
	}
	c.ClientIDIssuedAt, c.ClientSecretExpiresAt = old.ClientIDIssuedAt, 0
	c.RegistrationTokenHash = old.RegistrationTokenHash
	c.CreatedAt = old.CreatedAt
	c.SecretHash, c.RotatedSecretHashes = old.SecretHash, old.RotatedSecretHashes
	// A client that becomes confidential without a secret gets one, as
	// on create; one that stops using a secret drops it.
	newSecret := req.RotateSecret || req.ClientSecret != "" || c.SecretHash == ""
	var secret string
	if newSecret {
		if secret, err = r.setSecret(&c, req.ClientSecret, req.ClientSecret == ""); err != nil {
			return nil, err
		}
		c.RotatedSecretHashes = nil
		if req.KeepOldSecret && old.SecretHash != "" && c.SecretHash != "" {
			c.RotatedSecretHashes = []string{old.SecretHash}
		}
	}
	if !usesSecret(&c) {
		c.SecretHash, c.RotatedSecretHashes, secret = "", nil, ""
	}
	if err := r.store.UpdateClient(ctx, &c); err != nil {
		return nil, err
	}
	return registered(&c, secret), nil
}

func registered(c *store.Client, secret string) *RegisteredClient {
	rc := &RegisteredClient{Client: c, ClientSecret: secret}
	if secret != "" {
		rc.SecretExpiresAt = new(int64)
	}
	return rc
}

// minChosenSecret is the shortest secret an operator may choose.
const minChosenSecret = 16

// setSecret hashes the client's secret into c: chosen when the operator
// gave one, generated when generate is set. It returns the secret in clear
// when the server generated it or it was chosen, for the answer. Clients
// that authenticate without a secret refuse one.
func (r *ClientRegistrar) setSecret(c *store.Client, chosen string, generate bool) (string, error) {
	if !usesSecret(c) {
		if chosen != "" {
			return "", invalidMetadata("a client with token_endpoint_auth_method %q has no client_secret", c.TokenEndpointAuthMethod)
		}
		c.SecretHash = ""
		return "", nil
	}
	if chosen != "" {
		if len(chosen) < minChosenSecret {
			return "", invalidMetadata("client_secret must be at least %d characters", minChosenSecret)
		}
		if len(chosen) > 1024 {
			return "", invalidMetadata("client_secret must be at most 1024 characters")
		}
		h, err := r.secrets.HashChosen([]byte(chosen))
		if err != nil {
			return "", fmt.Errorf("hash client secret: %w", err)
		}
		c.SecretHash = string(h)
		return chosen, nil
	}
	if !generate {
		return "", nil
	}
	secret, err := clientsecret.Generate()
	if err != nil {
		return "", err
	}
	h, err := r.secrets.HashGenerated([]byte(secret))
	if err != nil {
		return "", fmt.Errorf("hash client secret: %w", err)
	}
	c.SecretHash = string(h)
	return secret, nil
}

// usesSecret reports whether the client authenticates with a client secret.
func usesSecret(c *store.Client) bool {
	switch c.TokenEndpointAuthMethod {
	case "client_secret_basic", "client_secret_post":
		return true
	}
	return false
}

// randomClientID returns a new client ID: 128 random bits, URL-safe.
func randomClientID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// The metadata values the provider implements; discovery advertises the same.
var (
	supportedGrantTypes = []string{
		"authorization_code", "implicit", "refresh_token", "client_credentials", "password",
		deviceGrantType,
	}
	supportedAuthMethods = []string{"client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
	// supportedResponseTypes are in canonical word order (see
	// canonicalResponseType).
	supportedResponseTypes = []string{"code", "id_token", "token", "code id_token", "code token", "id_token token", "code id_token token"}
	// unsafeSchemes are never redirect targets: they run code or read
	// local data in the browser.
	unsafeSchemes = []string{"javascript", "data", "vbscript", "file", "about", "blob", "filesystem"}
)

// Validate checks client metadata and normalises it in place: defaults
// filled in (token_endpoint_auth_method client_secret_basic, grant_types
// authorization_code, response_types code when a code grant is allowed,
// scope openid), lists deduplicated. It does not look at the secret.
func (r *ClientRegistrar) Validate(c *store.Client) error {
	if err := checkClientID(c.ID); err != nil {
		return err
	}
	if c.TokenEndpointAuthMethod == "" {
		c.TokenEndpointAuthMethod = "client_secret_basic"
	}
	if !slices.Contains(supportedAuthMethods, c.TokenEndpointAuthMethod) {
		return invalidMetadata("token_endpoint_auth_method must be one of %s", strings.Join(supportedAuthMethods, ", "))
	}
	if err := checkClientKeys(c); err != nil {
		return err
	}
	if err := r.checkGrants(c); err != nil {
		return err
	}
	if err := r.checkURIs(c); err != nil {
		return err
	}
	if err := r.checkRegistrationMetadata(c); err != nil {
		return err
	}
	if err := r.checkAlgs(c); err != nil {
		return err
	}
	return checkScopesAndRest(c)
}

func checkClientID(id string) error {
	if id == "" || len(id) > 255 {
		return invalidMetadata("client_id must be 1 to 255 characters")
	}
	for _, ch := range id {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.ContainsRune("-._~", ch)) {
			return invalidMetadata("client_id may only contain letters, digits and - . _ ~")
		}
	}
	return nil
}

// checkClientKeys checks how a private_key_jwt client proves itself: by
// keys given inline or at a URL, never both (RFC 7591 §2), public only.
func checkClientKeys(c *store.Client) error {
	if c.JWKS != nil && c.JWKSURI != "" {
		return invalidMetadata("send jwks or jwks_uri, not both")
	}
	if c.TokenEndpointAuthMethod == "private_key_jwt" && c.JWKS == nil && c.JWKSURI == "" {
		return invalidMetadata("token_endpoint_auth_method private_key_jwt needs jwks or jwks_uri")
	}
	if c.JWKS != nil {
		if len(c.JWKS.Keys) == 0 {
			return invalidMetadata("jwks has no keys")
		}
		for i := range c.JWKS.Keys {
			k := &c.JWKS.Keys[i]
			if !k.Valid() {
				return invalidMetadata("jwks key %d is not a valid JSON Web Key", i)
			}
			if !k.IsPublic() {
				return invalidMetadata("jwks key %d is a private or symmetric key; register only public keys", i)
			}
		}
	}
	if c.TokenEndpointAuthSigningAlg != "" {
		if c.TokenEndpointAuthMethod != "private_key_jwt" {
			return invalidMetadata("token_endpoint_auth_signing_alg applies to private_key_jwt only")
		}
		if !slices.Contains(clientAssertionAlgs, c.TokenEndpointAuthSigningAlg) {
			return invalidMetadata("token_endpoint_auth_signing_alg must be one of %s", strings.Join(clientAssertionAlgs, ", "))
		}
	}
	return nil
}

// checkGrants checks grant and response types and their consistency
// (OpenID Connect Registration §2): a response type that returns a code
// needs the authorization_code grant, one that returns tokens from the
// authorization endpoint needs implicit.
func (r *ClientRegistrar) checkGrants(c *store.Client) error {
	if len(c.GrantTypes) == 0 {
		c.GrantTypes = []string{"authorization_code"}
	}
	c.GrantTypes = dedupe(c.GrantTypes)
	for _, g := range c.GrantTypes {
		if !slices.Contains(supportedGrantTypes, g) {
			return invalidMetadata("grant_types: %q is not supported; use %s", g, strings.Join(supportedGrantTypes, ", "))
		}
	}
	code := slices.Contains(c.GrantTypes, "authorization_code")
	implicit := slices.Contains(c.GrantTypes, "implicit")
	if len(c.ResponseTypes) == 0 && code {
		c.ResponseTypes = []string{"code"}
	}
	for i, rt := range c.ResponseTypes {
		canon, ok := canonicalResponseType(rt)
		if !ok {
			return invalidMetadata("response_types: %q is not supported; use %s", rt, strings.Join(supportedResponseTypes, ", "))
		}
		c.ResponseTypes[i] = canon
		words := strings.Fields(canon)
		if slices.Contains(words, "code") && !code {
			return invalidMetadata("response type %q needs the authorization_code grant type", canon)
		}
		if (slices.Contains(words, "id_token") || slices.Contains(words, "token")) && !implicit {
			return invalidMetadata("response type %q needs the implicit grant type", canon)
		}
	}
	c.ResponseTypes = dedupe(c.ResponseTypes)
	if (code || implicit) && len(c.ResponseTypes) == 0 {
		return invalidMetadata("the authorization_code and implicit grant types need response_types")
	}
	public := c.TokenEndpointAuthMethod == "none"
	if public && slices.Contains(c.GrantTypes, "client_credentials") {
		return invalidMetadata("a public client (token_endpoint_auth_method none) cannot use the client_credentials grant")
	}
	return nil
}

// canonicalResponseType puts the words of a response type in one order, as
// response types are sets of words.
func canonicalResponseType(rt string) (string, bool) {
	words := strings.Fields(rt)
	order := []string{"code", "id_token", "token"}
	var out []string
	for _, w := range order {
		if n := countOf(words, w); n > 1 {
			return "", false
		} else if n == 1 {
			out = append(out, w)
		}
	}
	if len(out) != len(words) {
		return "", false
	}
	canon := strings.Join(out, " ")
	return canon, slices.Contains(supportedResponseTypes, canon)
}

func countOf(list []string, s string) int {
	n := 0
	for _, v := range list {
		if v == s {
			n++
		}
	}
	return n
}

func dedupe(list []string) []string {
	out := list[:0:0]
	for _, v := range list {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// checkURIs checks every URL of the metadata.
func (r *ClientRegistrar) checkURIs(c *store.Client) error {
	needRedirect := len(c.ResponseTypes) > 0
	if needRedirect && len(c.RedirectURIs) == 0 {
		return invalidRedirectURI("redirect_uris is required for the authorization_code and implicit grant types")
	}
	c.RedirectURIs = dedupe(c.RedirectURIs)
	for _, u := range c.RedirectURIs {
		if err := r.checkRedirectURI(u, true); err != nil {
			return invalidRedirectURI("redirect_uris: %v", err)
		}
	}
	c.PostLogoutRedirectURIs = dedupe(c.PostLogoutRedirectURIs)
	for _, u := range c.PostLogoutRedirectURIs {
		if err := r.checkRedirectURI(u, true); err != nil {
			return invalidMetadata("post_logout_redirect_uris: %v", err)
		}
	}
	for _, u := range c.RequestURIs {
		if err := r.checkRedirectURI(u, false); err != nil {
			return invalidMetadata("request_uris: %v", err)
		}
	}
	web := []struct{ name, value string }{
		{"jwks_uri", c.JWKSURI},
		{"frontchannel_logout_uri", c.FrontchannelLogoutURI},
		{"backchannel_logout_uri", c.BackchannelLogoutURI},
		{"logo_uri", c.LogoURI},
		{"client_uri", c.ClientURI},
		{"policy_uri", c.PolicyURI},
		{"tos_uri", c.TOSURI},
	}
	for _, f := range web {
		if f.value == "" {
			continue
		}
		if err := r.checkRedirectURI(f.value, false); err != nil {
			return invalidMetadata("%s: %v", f.name, err)
		}
	}
	if c.FrontchannelLogoutSessionRequired && c.FrontchannelLogoutURI == "" {
		return invalidMetadata("frontchannel_logout_session_required needs frontchannel_logout_uri")
	}
	if c.BackchannelLogoutSessionRequired && c.BackchannelLogoutURI == "" {
		return invalidMetadata("backchannel_logout_session_required needs backchannel_logout_uri")
	}
	if u := c.FrontchannelLogoutURI; u != "" && !slices.Contains(uriOrigins(c.RedirectURIs), uriOrigin(u)) {
		// Front-Channel Logout 1.0 §2.
		return invalidMetadata("frontchannel_logout_uri must have the scheme, host and port of one of the redirect_uris")
	}
	return nil
}

// uriOrigin is an absolute URI's scheme, host and port, lower-cased and
// with the scheme's default port made explicit; "" when raw does not parse.
func uriOrigin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return ""
	}
	scheme, port := strings.ToLower(u.Scheme), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	return scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

func uriOrigins(uris []string) []string {
	var out []string
	for _, u := range uris {
		if o := uriOrigin(u); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// checkRedirectURI checks a URL the provider sends browsers or requests
// to: absolute, without a fragment or credentials, and https, except plain
// http to this machine (RFC 8252 §7.3) or anywhere in dev mode. With
// nativeSchemes, private-use schemes of native apps (RFC 8252 §7.1, e.g.
// com.example.app:/callback) are allowed too.
func (r *ClientRegistrar) checkRedirectURI(raw string, nativeSchemes bool) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%q must not have a fragment", raw)
	}
	if u.User != nil {
		return fmt.Errorf("%q must not carry credentials", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
	case scheme == "http":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
		if !r.dev && !IsLoopback(u.Hostname()) {
			return fmt.Errorf("%q: plain http is allowed only to loopback hosts (127.0.0.1, [::1], localhost)", raw)
		}
	case nativeSchemes && !slices.Contains(unsafeSchemes, scheme) && u.Opaque == "":
		// A native app's own scheme, in the hierarchical form RFC 8252
		// shows (an opaque one such as "localhost:8080/cb" is a typo
		// far more often than an app).
	default:
		return fmt.Errorf("%q: the scheme %q is not allowed", raw, u.Scheme)
	}
	return nil
}

// checkAlgs checks the signing algorithms a client asks for (ID tokens,
// userinfo and JWT access tokens are signed with the provider's own keys)
// and its access token format. ID tokens may also be
// unsigned ("none") for a client that gets them only from the token
// endpoint; it runs after checkGrants, so response_types has its default.
func (r *ClientRegistrar) checkAlgs(c *store.Client) error {
	for _, f := range []struct {
		name, value string
		allowed     []string
	}{
		{"id_token_signed_response_alg", c.IDTokenSignedResponseAlg, slices.Concat(r.algs, []string{algNone})},
		{"userinfo_signed_response_alg", c.UserinfoSignedResponseAlg, r.algs},
		{"latchkey_access_token_signing_alg", c.AccessTokenSigningAlg, r.algs},
		{"latchkey_access_token_format", c.AccessTokenFormat, AccessTokenFormats},
	} {
		if f.value != "" && !slices.Contains(f.allowed, f.value) {
			return invalidMetadata("%s must be one of %s", f.name, strings.Join(f.allowed, ", "))
		}
	}
	if c.IDTokenSignedResponseAlg == algNone {
		for _, rt := range c.ResponseTypes {
			if slices.Contains(strings.Fields(rt), "id_token") {
				return invalidMetadata("id_token_signed_response_alg none is allowed only for clients whose response types return no ID token "+
					"from the authorization endpoint (OpenID Connect Core §2, Registration §2), such as code; response type %q does", rt)
			}
		}
	}
	if a := c.RequestObjectSigningAlg; a != "" && !slices.Contains(requestObjectAlgs, a) {
		return invalidMetadata("request_object_signing_alg must be one of %s", strings.Join(requestObjectAlgs, ", "))
	}
	return nil
}

// checkScopesAndRest checks the remaining fields: scope (default openid),
// subject_type, default_max_age, audience and token lifespans.
func checkScopesAndRest(c *store.Client) error {
	scopes := dedupe(strings.Fields(c.Scope))
	if len(scopes) == 0 {
		scopes = []string{"openid"}
	}
	for _, s := range scopes {
		for _, ch := range s {
			// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
			if ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\' {
				return invalidMetadata("scope %q has a character RFC 6749 §3.3 does not allow", s)
			}
		}
	}
	c.Scope = strings.Join(scopes, " ")
	switch c.SubjectType {
	case "", "public":
	case subjectPairwise:
		if _, err := sectorHost(c); err != nil {
			return invalidMetadata("subject_type pairwise: %v", err)
		}
	default:
		return invalidMetadata("subject_type must be public or pairwise")
	}
	if c.DefaultMaxAge < 0 {
		return invalidMetadata("default_max_age must not be negative")
	}
	c.Audience = dedupe(c.Audience)
	for _, a := range c.Audience {
		if strings.TrimSpace(a) == "" {
			return invalidMetadata("audience must not contain empty values")
		}
	}
	c.DefaultACRValues = dedupe(c.DefaultACRValues)
	if l := c.TokenLifespans; l != nil {
		for _, d := range []*time.Duration{
			l.AuthorizationCodeGrantAccessTokenLifespan, l.AuthorizationCodeGrantIDTokenLifespan, l.AuthorizationCodeGrantRefreshTokenLifespan,
			l.ClientCredentialsGrantAccessTokenLifespan, l.ImplicitGrantAccessTokenLifespan, l.ImplicitGrantIDTokenLifespan,
			l.JwtBearerGrantAccessTokenLifespan, l.PasswordGrantAccessTokenLifespan, l.PasswordGrantRefreshTokenLifespan,
			l.RefreshTokenGrantIDTokenLifespan, l.RefreshTokenGrantAccessTokenLifespan, l.RefreshTokenGrantRefreshTokenLifespan,
		} {
			if d != nil && *d <= 0 {
				return invalidMetadata("latchkey_token_lifespans must be positive durations")
			}
		}
	}
	if c.TokenRateLimit < 0 {
		return invalidMetadata("latchkey_token_rate_limit must be a positive number of token requests per second")
	}
	return nil
}
