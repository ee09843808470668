package login

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// The provider's challenge API, as the login app sees it. These types
// mirror the JSON of provider/README.md; the login app does not import the
// provider.

// challengeKind names a kind of challenge in admin API paths.
type challengeKind string

const (
	kindLogin   challengeKind = "login"
	kindConsent challengeKind = "consent"
	kindDevice  challengeKind = "device"
	kindLogout  challengeKind = "logout"
)

// challenge is GET /admin/{kind}?challenge=… .
type challenge struct {
	Challenge         string          `json:"challenge"`
	Kind              string          `json:"kind"`
	Skip              bool            `json:"skip"`
	Subject           string          `json:"subject"`
	SessionID         string          `json:"session_id"`
	Client            *client         `json:"client"`
	RequestedScope    []string        `json:"requested_scope"`
	RequestedAudience []string        `json:"requested_audience"`
	OIDCContext       oidcContext     `json:"oidc_context"`
	ACR               string          `json:"acr"`
	AMR               []string        `json:"amr"`
	Context           json.RawMessage `json:"context"`
	UserCode          string          `json:"user_code"`
	RPInitiated       bool            `json:"rp_initiated"`
}

// client is the part of a client's RFC 7591 metadata the pages show.
type client struct {
	ID         string `json:"client_id"`
	Name       string `json:"client_name"`
	LogoURI    string `json:"logo_uri"`
	ClientURI  string `json:"client_uri"`
	PolicyURI  string `json:"policy_uri"`
	TOSURI     string `json:"tos_uri"`
	RequireMFA bool   `json:"latchkey_require_mfa"`
}

// displayName is what pages call the client.
func (c *client) displayName() string {
	if c == nil {
		return "an application"
	}
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}

type oidcContext struct {
	ACRValues []string `json:"acr_values"`
	UILocales []string `json:"ui_locales"`
	LoginHint string   `json:"login_hint"`
	Display   string   `json:"display"`
	Prompt    []string `json:"prompt"`
}

type loginAccept struct {
	Subject     string          `json:"subject"`
	ACR         string          `json:"acr,omitempty"`
	AMR         []string        `json:"amr,omitempty"`
	Remember    bool            `json:"remember,omitempty"`
	RememberFor int64           `json:"remember_for,omitempty"`
	Context     json.RawMessage `json:"context,omitempty"`
}

type consentAccept struct {
	GrantScope    []string       `json:"grant_scope"`
	GrantAudience []string       `json:"grant_audience,omitempty"`
	Remember      bool           `json:"remember,omitempty"`
	RememberFor   int64          `json:"remember_for,omitempty"`
	Session       consentSession `json:"session"`
}

type consentSession struct {
	Claims map[string]any `json:"claims,omitempty"`
}

type deviceAccept struct {
	UserCode string `json:"user_code"`
}

type rejection struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description,omitempty"`
}

// adminError is an error answer of the admin API.
type adminError struct {
	Status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	// RedirectTo is where the user goes when the provider ended the
	// challenge while refusing the call (too many wrong device codes).
	RedirectTo string `json:"redirect_to"`
}

func (e *adminError) Error() string {
	return fmt.Sprintf("admin API: %d %s: %s", e.Status, e.Code, e.Description)
}

// Errors the pages tell apart.
var (
	// errChallengeGone is an unknown, expired or already decided challenge.
	errChallengeGone = errors.New("the sign-in request expired or was already used")
)

// adminStatus returns the HTTP status of an admin API error, or 0.
func adminStatus(err error) int {
	var ae *adminError
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

// adminClient calls the provider's admin API.
type adminClient struct {
	base  string // e.g. http://127.0.0.1:8081
	token string
	http  *http.Client
}

// get fetches a pending challenge.
func (a *adminClient) get(ctx context.Context, kind challengeKind, id string) (*challenge, error) {
	if id == "" {
		return nil, errChallengeGone
	}
	var c challenge
	if err := a.call(ctx, http.MethodGet, "/admin/"+string(kind), id, nil, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// accept decides a challenge and returns where the browser goes next.
func (a *adminClient) accept(ctx context.Context, kind challengeKind, id string, body any) (string, error) {
	return a.decide(ctx, kind, "accept", id, body)
}

// reject refuses a challenge and returns where the browser goes next.
func (a *adminClient) reject(ctx context.Context, kind challengeKind, id string, body any) (string, error) {
	return a.decide(ctx, kind, "reject", id, body)
}

func (a *adminClient) decide(ctx context.Context, kind challengeKind, verb, id string, body any) (string, error) {
	var out struct {
		RedirectTo string `json:"redirect_to"`
	}
	if err := a.call(ctx, http.MethodPut, "/admin/"+string(kind)+"/"+verb, id, body, &out); err != nil {
		return "", err
	}
	if out.RedirectTo == "" {
		return "", fmt.Errorf("%s %s challenge: the provider gave no redirect", verb, kind)
	}
	return out.RedirectTo, nil
}

func (a *adminClient) call(ctx context.Context, method, path, id string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	u := strings.TrimRight(a.base, "/") + path + "?challenge=" + url.QueryEscape(id)
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &adminError{Status: resp.StatusCode}
		_ = json.Unmarshal(data, ae)
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusConflict {
			return fmt.Errorf("%s %s: %w", method, path, errors.Join(errChallengeGone, ae))
		}
		return fmt.Errorf("%s %s: %w", method, path, ae)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}
