package provider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// flow is an authorization in progress: what the provider needs to resume
// it after the login app decided a challenge. It travels in the challenges'
// Request column, from the login challenge to the consent challenge.
type flow struct {
	// ID names the flow cookie that binds the flow to the browser that
	// started it; CSRF is the SHA-256 of that cookie's value.
	ID   string `json:"id"`
	CSRF string `json:"csrf"`
	// Form holds the authorization request's parameters with any request
	// object and pushed request already resolved; empty for device flows.
	Form url.Values `json:"form,omitempty"`
	// DeviceSignature is the device code signature of a device flow.
	DeviceSignature string `json:"device_signature,omitempty"`

	ClientID          string    `json:"client_id"`
	RequestedAt       time.Time `json:"requested_at"`
	RequestedScopes   []string  `json:"requested_scope"`
	RequestedAudience []string  `json:"requested_audience,omitempty"`

	// Known once the user signed in (or was signed in already).
	Subject  string          `json:"subject,omitempty"`
	SID      string          `json:"sid,omitempty"`
	AuthTime time.Time       `json:"auth_time,omitempty"`
	ACR      string          `json:"acr,omitempty"`
	AMR      []string        `json:"amr,omitempty"`
	Context  json.RawMessage `json:"context,omitempty"`
	// Skip tells the login app it may decide without asking the user:
	// the user is signed in already (login) or consent is remembered or
	// not needed (consent).
	Skip bool `json:"skip,omitempty"`
}

// randomToken returns n random bytes, base64url-encoded.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

const flowCookiePrefix = "latchkey_flow_"

// beginFlow gives fl its ID and binds it to the browser with a cookie that
// lives as long as the challenges.
func (p *Provider) beginFlow(w http.ResponseWriter, fl *flow) {
	fl.ID = randomToken(9)
	value := randomToken(32)
	fl.CSRF = sha256Hex(value)
	http.SetCookie(w, p.cookie(flowCookiePrefix+fl.ID, value, p.cfg.ChallengeLifespan))
}

// checkFlowCookie reports whether the request comes from the browser that
// started fl. Without this check, a challenge ID that leaked (from a log or a
// Referer) would let another browser finish the flow, or push a victim into
// an attacker's session.
func (p *Provider) checkFlowCookie(r *http.Request, fl *flow) bool {
	c, err := r.Cookie(flowCookiePrefix + fl.ID)
	if err != nil || fl.CSRF == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(sha256Hex(c.Value)), []byte(fl.CSRF)) == 1
}

// endFlow removes the flow cookie.
func (p *Provider) endFlow(w http.ResponseWriter, fl *flow) {
	http.SetCookie(w, p.cookie(flowCookiePrefix+fl.ID, "", -1))
}

// createChallenge stores fl in a new challenge of kind and returns its ID.
func (p *Provider) createChallenge(ctx context.Context, kind store.ChallengeKind, fl *flow) (string, error) {
	req, err := json.Marshal(fl)
	if err != nil {
		return "", fmt.Errorf("encode %s challenge: %w", kind, err)
	}
	c := &store.Challenge{
		ID:        randomToken(32),
		Kind:      kind,
		Subject:   fl.Subject,
		ClientID:  fl.ClientID,
		SessionID: fl.SID,
		Request:   req,
		ExpiresAt: time.Now().Add(p.cfg.ChallengeLifespan),
	}
	if err := p.store.CreateChallenge(ctx, c); err != nil {
		return "", fmt.Errorf("create %s challenge: %w", kind, err)
	}
	return c.ID, nil
}

// errChallengeGone is why a continue URL no longer works: the challenge is
// unknown, expired, or was already used.
var errChallengeGone = errors.New("challenge not found, expired or already used")

// errWrongBrowser is why a continue URL is refused in a browser other than
// the one that started the flow.
var errWrongBrowser = errors.New("the flow was started in another browser")

// consumeFlow takes the decided challenge id of kind and returns it with its
// flow, once; a second call for the same challenge fails. The browser is
// checked first, so a verifier that leaked to another browser does not even
// use up the victim's challenge.
func (p *Provider) consumeFlow(r *http.Request, kind store.ChallengeKind, id string) (*store.Challenge, *flow, error) {
	ctx := r.Context()
	if id == "" {
		return nil, nil, errChallengeGone
	}
	pending, err := p.store.GetChallenge(ctx, kind, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil, errChallengeGone
	}
	if err != nil {
		return nil, nil, fmt.Errorf("load %s challenge: %w", kind, err)
	}
	if pending.State != store.ChallengeAccepted && pending.State != store.ChallengeRejected {
		return nil, nil, errChallengeGone // undecided, or used already
	}
	fl := &flow{}
	if err := json.Unmarshal(pending.Request, fl); err != nil {
		return nil, nil, fmt.Errorf("decode %s challenge: %w", kind, err)
	}
	if !p.checkFlowCookie(r, fl) {
		return nil, nil, errWrongBrowser
	}
	c, err := p.store.ConsumeChallenge(ctx, kind, id)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) {
		return nil, nil, errChallengeGone
	}
	if err != nil {
		return nil, nil, fmt.Errorf("consume %s challenge: %w", kind, err)
	}
	return c, fl, nil
}

// writeFlowError answers a continue link that consumeFlow refused: what
// names the flow for the person ("sign-in", "sign-out"), gone says what to do
// when the link is spent or expired.
func (p *Provider) writeFlowError(w http.ResponseWriter, r *http.Request, err error, what, gone string) {
	switch {
	case errors.Is(err, errChallengeGone):
		p.errorPage(w, http.StatusBadRequest, "This "+what+" link has expired", "invalid_request", gone)
	case errors.Is(err, errWrongBrowser):
		p.errorPage(w, http.StatusForbidden, "This "+what+" was started in another browser", "access_denied",
			"For your safety the "+what+" must finish in the browser where it started.")
	default:
		p.logFailure(r.Context(), what+" continue", err)
		p.serverErrorPage(w, err, "Please try again.")
	}
}

// cookie builds a provider cookie: HttpOnly, SameSite=Lax (the login app
// sends the browser back with top-level GET redirects) and Secure unless the
// issuer is plain http. maxAge 0 makes a browser-session cookie; negative
// deletes it.
func (p *Provider) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     p.urls.cookiePath,
		HttpOnly: true,
		Secure:   p.urls.secure,
		SameSite: http.SameSiteLaxMode,
	}
	switch {
	case maxAge < 0:
		c.MaxAge = -1
	case maxAge > 0:
		c.MaxAge = int(maxAge / time.Second)
	}
	return c
}
