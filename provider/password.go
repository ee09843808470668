package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// passwordChecker asks the login side to check resource-owner credentials
// for the password grant. The login app owns users, password hashes and
// lockout, so its brute-force limits apply to the password grant too.
//
// The call: POST {url} with Authorization: Bearer <admin token> and the JSON
// body {"username": …, "password": …}. 200 with {"subject": …} accepts; 401,
// 403, 404 and 429 (locked) reject without saying which.
type passwordChecker struct {
	url    string
	token  string
	client *http.Client
}

// CheckPassword implements store.PasswordChecker.
func (c *passwordChecker) CheckPassword(ctx context.Context, username, password string) (string, error) {
	body, err := json.Marshal(map[string]string{"username": username, "password": password})
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return "", fmt.Errorf("password check: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("password check: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusTooManyRequests:
		return "", fosite.ErrNotFound
	case http.StatusServiceUnavailable:
		// The login side's database is unavailable: the client may retry.
		return "", fmt.Errorf("password check: login side answered %s: %w", resp.Status, store.ErrUnavailable)
	default:
		return "", fmt.Errorf("password check: login side answered %s", resp.Status)
	}
	var out struct {
		Subject string `json:"subject"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out); err != nil {
		return "", fmt.Errorf("password check: decode answer: %w", err)
	}
	if out.Subject == "" {
		return "", fmt.Errorf("password check: login side accepted without a subject")
	}
	return out.Subject, nil
}
