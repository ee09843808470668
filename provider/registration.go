package provider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/provider/clientsecret"
	"github.com/latchkey-oidc/latchkey/store"
)

// Dynamic client registration: RFC 7591 at /oauth2/register and RFC 7592
// management at /oauth2/register/{client_id}. A registered client is the
// same store.Client the admin API makes, checked by the same
// ClientRegistrar; what differs is who asks. A registrant is not trusted:
// it cannot choose its client_id or secret, nor the settings only an
// operator grants (see registrantRules).

// RegistrationPolicy says who may register clients dynamically.
type RegistrationPolicy string

const (
	// RegistrationClosed serves no registration endpoint and advertises
	// none. It is the default.
	RegistrationClosed RegistrationPolicy = "closed"
	// RegistrationOpen lets anyone register a client.
	RegistrationOpen RegistrationPolicy = "open"
	// RegistrationToken asks for one of Config.RegistrationTokens as an
	// initial access token (RFC 7591 §3: Authorization: Bearer …).
	RegistrationToken RegistrationPolicy = "token"
)

// minRegistrationToken is the shortest initial access token accepted.
const minRegistrationToken = 16

// ParseRegistrationPolicy checks a registration policy and its initial
// access tokens, and returns the policy; empty means closed.
func ParseRegistrationPolicy(s string, tokens []string) (RegistrationPolicy, error) {
	policy := RegistrationPolicy(s)
	switch policy {
	case "":
		policy = RegistrationClosed
	case RegistrationClosed, RegistrationOpen, RegistrationToken:
	default:
		return policy, fmt.Errorf("registration policy %q: use closed, open or token", s)
	}
	if policy != RegistrationToken {
		if len(tokens) > 0 {
			// Tokens with another policy are a mistake that would leave an
			// operator believing registration is protected.
			return policy, fmt.Errorf("registration tokens are set but the registration policy is %s, not token", policy)
		}
		return policy, nil
	}
	if len(tokens) == 0 {
		return policy, errors.New("the token registration policy needs at least one registration token")
	}
	for _, t := range tokens {
		if len(t) < minRegistrationToken {
			return policy, fmt.Errorf("every registration token must be at least %d characters", minRegistrationToken)
		}
	}
	return policy, nil
}

// Limits of dynamic registration.
const (
	// maxRegistrationBody bounds a registration or update document.
	maxRegistrationBody = 64 << 10
	// maxSectorIdentifierDocument bounds the document at a
	// sector_identifier_uri, and sectorIdentifierTimeout its fetch.
	maxSectorIdentifierDocument = 64 << 10
	sectorIdentifierTimeout     = 5 * time.Second
)

// supportedScopes are the scopes the provider gives meaning to, published in
// discovery. A dynamically registered client may ask only for these, and
// gets all of them when it asks for none.
var supportedScopes = []string{"openid", "profile", "email", "address", "phone", "offline_access"}

// unsupportedMetadata are OpenID Connect Registration fields of features
// Latchkey lacks (encrypted ID tokens, userinfo responses and request
// objects). A client that asks for them is refused rather than sent plain
// tokens it did not ask for.
type unsupportedMetadata struct {
	IDTokenEncryptedResponseAlg  string `json:"id_token_encrypted_response_alg,omitempty"`
	IDTokenEncryptedResponseEnc  string `json:"id_token_encrypted_response_enc,omitempty"`
	UserinfoEncryptedResponseAlg string `json:"userinfo_encrypted_response_alg,omitempty"`
	UserinfoEncryptedResponseEnc string `json:"userinfo_encrypted_response_enc,omitempty"`
	RequestObjectEncryptionAlg   string `json:"request_object_encryption_alg,omitempty"`
	RequestObjectEncryptionEnc   string `json:"request_object_encryption_enc,omitempty"`
}

func (u unsupportedMetadata) check() error {
	if u != (unsupportedMetadata{}) {
		return invalidMetadata("encryption (id_token_encrypted_response_*, userinfo_encrypted_response_*, request_object_encryption_*) is not supported")
	}
	return nil
}

// checkRegistrationMetadata checks the OpenID Connect Registration §2 fields
// beyond OAuth's: application_type with its redirect URI rules,
// initiate_login_uri and the form of sector_identifier_uri (its content is
// checked by checkSectorIdentifier).
//
// A client without application_type is held to the redirect URI rules of
// checkURIs only: the admin API has always taken native schemes and
// loopback implicit clients from the operator. Dynamic registration fills
// in the default web (registrantRules), so a registrant meets these rules.
func (r *ClientRegistrar) checkRegistrationMetadata(c *store.Client) error {
	switch c.ApplicationType {
	case "", "native":
		// native: private-use schemes, loopback http and claimed https
		// URLs (RFC 8252 §7), all of which checkURIs allows.
	case "web":
		implicit := slices.Contains(c.GrantTypes, "implicit")
		for _, raw := range c.RedirectURIs {
			u, err := url.Parse(raw)
			if err != nil {
				return invalidRedirectURI("redirect_uris: %q is not a URL", raw)
			}
			scheme := strings.ToLower(u.Scheme)
			if scheme != "https" && scheme != "http" {
				return invalidRedirectURI("redirect_uris: %q: a web client redirects only to http(s) URLs; an app with its own scheme registers with application_type native", raw)
			}
			// Tokens in a front-channel response must not travel in the
			// clear or to whatever listens on the user's machine.
			if implicit && !r.dev && (scheme != "https" || IsLoopback(u.Hostname())) {
				return invalidRedirectURI("redirect_uris: %q: a web client using the implicit grant must redirect to https and not to localhost", raw)
			}
		}
	default:
		return invalidMetadata("application_type must be web or native")
	}
	for _, f := range []struct{ name, value string }{
		{"initiate_login_uri", c.InitiateLoginURI},
		{"sector_identifier_uri", c.SectorIdentifierURI},
	} {
		if f.value == "" {
			continue
		}
		if err := checkHTTPSURL(f.value); err != nil {
			return invalidMetadata("%s: %v", f.name, err)
		}
	}
	return nil
}

// checkHTTPSURL checks a URL that OpenID Connect Registration requires to
// be https, in dev mode too.
func checkHTTPSURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if !strings.EqualFold(u.Scheme, "https") {
		return fmt.Errorf("%q must use https", raw)
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("%q must not have credentials or a fragment", raw)
	}
	return nil
}

// checkSectorIdentifier fetches the client's sector_identifier_uri, which
// must hold a JSON array listing every redirect URI (OpenID Connect
// Core §8.1), with the provider's HTTP client, a timeout and a size limit.
// Why a fetch failed is not told: the answer goes to the registrant, who
// must not use the provider to map a network.
func (r *ClientRegistrar) checkSectorIdentifier(ctx context.Context, c *store.Client) error {
	if c.SectorIdentifierURI == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, sectorIdentifierTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.SectorIdentifierURI, nil)
	if err != nil {
		return invalidMetadata("sector_identifier_uri: %q is not a URL", c.SectorIdentifierURI)
	}
	req.Header.Set("Accept", "application/json")
	unreachable := invalidMetadata("sector_identifier_uri: %q could not be fetched", c.SectorIdentifierURI)
	resp, err := r.http.Do(req)
	if err != nil {
		return unreachable
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return unreachable
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSectorIdentifierDocument+1))
	if err != nil {
		return unreachable
	}
	if len(body) > maxSectorIdentifierDocument {
		return invalidMetadata("sector_identifier_uri: the document is larger than %d KiB", maxSectorIdentifierDocument>>10)
	}
	var listed []string
	if err := json.Unmarshal(body, &listed); err != nil {
		return invalidMetadata("sector_identifier_uri: the document is not a JSON array of URLs")
	}
	for _, u := range c.RedirectURIs {
		if !slices.Contains(listed, u) {
			return invalidMetadata("sector_identifier_uri: the document does not list the redirect URI %q", u)
		}
	}
	return nil
}

// registrantRules holds a dynamic registration (old nil) or an RFC 7592
// update of client old to what a registrant may ask for, and fills in the
// OpenID Connect Registration §2 defaults that differ from the admin API's.
// Settings only an operator grants (through the admin API) keep their
// stored values: a client may send them back unchanged but not change them.
func (r *ClientRegistrar) registrantRules(req *ClientRequest, old *store.Client) error {
	if req.RotateSecret || req.KeepOldSecret {
		return invalidMetadata("latchkey_rotate_secret and latchkey_keep_old_secret are for the operator")
	}
	if old == nil {
		if req.ID != "" {
			return invalidMetadata("client_id is assigned by the server")
		}
		if req.ClientSecret != "" {
			return invalidMetadata("client_secret is issued by the server")
		}
		old = &store.Client{}
	}
	c := &req.Client
	operatorOnly := func(name string, changed bool) error {
		if changed {
			return invalidMetadata("%s can be set only by the operator", name)
		}
		return nil
	}
	for _, err := range []error{
		operatorOnly("latchkey_skip_consent", c.SkipConsent && !old.SkipConsent),
		operatorOnly("latchkey_pkce_plain_allowed", c.PKCEPlainAllowed && !old.PKCEPlainAllowed),
		operatorOnly("latchkey_token_lifespans", c.TokenLifespans != nil && !reflect.DeepEqual(c.TokenLifespans, old.TokenLifespans)),
		operatorOnly("latchkey_token_rate_limit", c.TokenRateLimit != 0 && c.TokenRateLimit != old.TokenRateLimit),
		operatorOnly("audience", slices.ContainsFunc(c.Audience, func(a string) bool { return !slices.Contains(old.Audience, a) })),
		operatorOnly("the password grant type", slices.Contains(c.GrantTypes, "password") && !slices.Contains(old.GrantTypes, "password")),
	} {
		if err != nil {
			return err
		}
	}
	c.SkipConsent, c.PKCEPlainAllowed, c.TokenLifespans, c.Audience = old.SkipConsent, old.PKCEPlainAllowed, old.TokenLifespans, old.Audience
	c.TokenRateLimit = old.TokenRateLimit
	// A client may ask for MFA, but not drop it once the operator asked.
	c.RequireMFA = c.RequireMFA || old.RequireMFA

	oldScopes := strings.Fields(old.Scope)
	scopes := strings.Fields(c.Scope)
	if len(scopes) == 0 {
		scopes = supportedScopes
	}
	for _, s := range scopes {
		if !slices.Contains(supportedScopes, s) && !slices.Contains(oldScopes, s) {
			return invalidMetadata("scope %q is not supported; use %s", s, strings.Join(supportedScopes, " "))
		}
	}
	c.Scope = strings.Join(scopes, " ")
	if c.ApplicationType == "" {
		c.ApplicationType = "web"
	}
	if c.IDTokenSignedResponseAlg == "" {
		c.IDTokenSignedResponseAlg = "RS256"
	}
	return nil
}

// Register stores a dynamically registered client (RFC 7591 §3) and
// returns it with its registration access token (RFC 7592), which is
// shown this once and stored only as a hash.
func (r *ClientRegistrar) Register(ctx context.Context, req *ClientRequest) (*RegisteredClient, string, error) {
	if err := r.registrantRules(req, nil); err != nil {
		return nil, "", err
	}
	token := newRegistrationToken()
	rc, err := r.create(ctx, req, hashRegistrationToken(token))
	if err != nil {
		return nil, "", err
	}
	return rc, token, nil
}

// UpdateRegistered replaces a dynamically registered client's metadata at
// its own, authenticated, request (RFC 7592 §2.2): the body names the
// client, and a client_secret in it must be the current one, since a client
// cannot choose its secret.
func (r *ClientRegistrar) UpdateRegistered(ctx context.Context, id string, req *ClientRequest) (*RegisteredClient, error) {
	if req.ID != id {
		return nil, invalidMetadata("client_id must be sent and be the client's own")
	}
	old, err := r.store.LoadClient(ctx, id)
	if err != nil {
		return nil, err
	}
	if req.ClientSecret != "" {
		ok, err := r.currentSecret(ctx, old, req.ClientSecret)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, invalidMetadata("client_secret is not the client's secret; the server issues secrets")
		}
		req.ClientSecret = ""
	}
	if err := r.registrantRules(req, old); err != nil {
		return nil, err
	}
	return r.Update(ctx, id, req)
}

// currentSecret reports whether secret is one of c's secrets.
func (r *ClientRegistrar) currentSecret(ctx context.Context, c *store.Client, secret string) (bool, error) {
	for _, h := range append([]string{c.SecretHash}, c.RotatedSecretHashes...) {
		if h == "" {
			continue
		}
		// A mismatch, or a stored hash that cannot be used, matches
		// nothing; only a request that went away is an error.
		err := r.secrets.Compare(ctx, []byte(h), []byte(secret))
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, clientsecret.ErrMismatch) && ctx.Err() != nil {
			return false, ctx.Err()
		}
	}
	return false, nil
}

// newRegistrationToken returns a registration access token: 256 random
// bits, URL-safe.
func newRegistrationToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// hashRegistrationToken is what the store keeps of a registration access
// token. A token has 256 random bits, so a plain SHA-256 cannot be reversed.
func hashRegistrationToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ClientRegistration is the answer of the registration endpoints: the
// client's metadata, client_secret when this answer issued one,
// client_secret_expires_at (0) for a client with a secret, and RFC 7592's
// registration_access_token and registration_client_uri.
type ClientRegistration struct {
	*RegisteredClient
	RegistrationAccessToken string `json:"registration_access_token"`
	RegistrationClientURI   string `json:"registration_client_uri"`
}

func (p *Provider) clientRegistration(rc *RegisteredClient, token string) ClientRegistration {
	if rc.SecretExpiresAt == nil && usesSecret(rc.Client) {
		rc.SecretExpiresAt = new(int64)
	}
	return ClientRegistration{
		RegisteredClient:        rc,
		RegistrationAccessToken: token,
		RegistrationClientURI:   p.cfg.Issuer + pathRegister + "/" + url.PathEscape(rc.ID),
	}
}

// registrationEndpoint is discovery's registration_endpoint: empty, so left
// out, when registration is closed.
func (p *Provider) registrationEndpoint() string {
	if p.cfg.RegistrationPolicy == RegistrationClosed {
		return ""
	}
	return p.cfg.Issuer + pathRegister
}

// register serves POST /oauth2/register (RFC 7591 §3).
func (p *Provider) register(w http.ResponseWriter, r *http.Request) {
	if p.cfg.RegistrationPolicy == RegistrationToken {
		token, ok := presentedToken(w, r, "Registration needs an initial access token.")
		if !ok {
			return
		}
		if !p.initialAccessTokenValid(token) {
			writeBearerError(w, http.StatusUnauthorized, "invalid_token", "The initial access token is not valid.")
			return
		}
	}
	req, ok := p.parseRegistrationBody(w, r)
	if !ok {
		return
	}
	rc, token, err := p.clients().Register(r.Context(), req)
	if err != nil {
		p.writeRegistrationError(w, r, err)
		return
	}
	answer := p.clientRegistration(rc, token)
	w.Header().Set("Location", answer.RegistrationClientURI)
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusCreated, answer)
}

// readRegistration serves GET /oauth2/register/{client_id} (RFC 7592 §2.1).
// The client's secret is stored only as a hash, so the answer has none; the
// registration access token is the one the client presented.
func (p *Provider) readRegistration(w http.ResponseWriter, r *http.Request) {
	c, token, ok := p.registeredClient(w, r)
	if !ok {
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, p.clientRegistration(&RegisteredClient{Client: c}, token))
}

// updateRegistration serves PUT /oauth2/register/{client_id} (RFC 7592
// §2.2): a full replacement of the metadata. A client that becomes
// confidential gets a secret in the answer.
func (p *Provider) updateRegistration(w http.ResponseWriter, r *http.Request) {
	c, token, ok := p.registeredClient(w, r)
	if !ok {
		return
	}
	req, ok := p.parseRegistrationBody(w, r)
	if !ok {
		return
	}
	rc, err := p.clients().UpdateRegistered(r.Context(), c.ID, req)
	if err != nil {
		p.writeRegistrationError(w, r, err)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, p.clientRegistration(rc, token))
}

// deleteRegistration serves DELETE /oauth2/register/{client_id} (RFC 7592
// §2.3). The client's tokens stop working with it.
func (p *Provider) deleteRegistration(w http.ResponseWriter, r *http.Request) {
	c, _, ok := p.registeredClient(w, r)
	if !ok {
		return
	}
	if err := p.store.DeleteClient(r.Context(), c.ID); err != nil {
		p.writeRegistrationError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// registeredClient authenticates an RFC 7592 request by the client's
// registration access token, answering 401 itself when it fails. Whether
// the client is missing, was made through the admin API (it has no
// token), or the token is wrong, the answer is the same.
func (p *Provider) registeredClient(w http.ResponseWriter, r *http.Request) (*store.Client, string, bool) {
	token, ok := presentedToken(w, r, "The client configuration endpoint needs the registration access token.")
	if !ok {
		return nil, "", false
	}
	c, err := p.store.LoadClient(r.Context(), mux.Vars(r)["client_id"])
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		p.registrationServerError(w, r, err)
		return nil, "", false
	}
	want := unusedTokenHash
	if err == nil && c.RegistrationTokenHash != "" {
		want = c.RegistrationTokenHash
	}
	match := subtle.ConstantTimeCompare([]byte(hashRegistrationToken(token)), []byte(want)) == 1
	if err != nil || c.RegistrationTokenHash == "" || !match {
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", wrongRegistrationToken)
		return nil, "", false
	}
	return c, token, true
}

// unusedTokenHash is compared against when there is no stored hash, so that
// every refusal does the same work. No presented token hashes to it: an
// empty token is refused before.
var unusedTokenHash = hashRegistrationToken("")

// initialAccessTokenValid compares token with every configured initial
// access token in constant time. Comparing digests keeps the tokens'
// lengths out of the timing too.
func (p *Provider) initialAccessTokenValid(token string) bool {
	got := sha256.Sum256([]byte(token))
	match := 0
	for _, t := range p.cfg.RegistrationTokens {
		want := sha256.Sum256([]byte(t))
		match |= subtle.ConstantTimeCompare(got[:], want[:])
	}
	return match == 1
}

// presentedToken returns the request's bearer token (RFC 6750 §2.1-2.2),
// answering the request itself when there is none to check: 400 when it
// is malformed, 401 with a bare challenge (§3.1) when it has none.
func presentedToken(w http.ResponseWriter, r *http.Request, missing string) (string, bool) {
	token, problem := bearerToken(w, r)
	if problem != "" {
		writeBearerError(w, http.StatusBadRequest, "invalid_request", problem)
		return "", false
	}
	if token == "" {
		w.Header().Set("WWW-Authenticate", "Bearer")
		writeError(w, http.StatusUnauthorized, "invalid_token", missing)
		return "", false
	}
	return token, true
}

// wrongRegistrationToken is the one refusal of the client configuration
// endpoint, whatever the reason.
const wrongRegistrationToken = "The registration access token is not valid for this client."

// parseRegistrationBody reads the client metadata of a registration or
// update, answering 415 or 400 itself when it cannot.
func (p *Provider) parseRegistrationBody(w http.ResponseWriter, r *http.Request) (*ClientRequest, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			writeError(w, http.StatusUnsupportedMediaType, "invalid_request", "Client metadata must be sent as application/json.")
			return nil, false
		}
	}
	req, err := parseClientRequest(r.Body, maxRegistrationBody)
	if err != nil {
		p.writeRegistrationError(w, r, err)
		return nil, false
	}
	return req, true
}

// writeRegistrationError answers a failed registration or update: 400 in
// the RFC 7591 §3.2.2 shape for metadata, 401 for a client deleted
// meanwhile (as for any unknown client), 500 for the rest.
func (p *Provider) writeRegistrationError(w http.ResponseWriter, r *http.Request, err error) {
	var me *ClientMetadataError
	switch {
	case errors.As(err, &me):
		writeError(w, http.StatusBadRequest, me.Code, me.Description)
	case errors.Is(err, store.ErrNotFound):
		writeBearerError(w, http.StatusUnauthorized, "invalid_token", wrongRegistrationToken)
	default:
		p.registrationServerError(w, r, err)
	}
}

// registrationServerError answers an unexpected failure without detail and
// logs it; the log has the path, never the request's tokens.
func (p *Provider) registrationServerError(w http.ResponseWriter, r *http.Request, err error) {
	p.logFailure(r.Context(), "client registration", err, "path", r.URL.Path)
	writeServerError(w, err, "The request could not be completed.")
}
