package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// deviceWorker polls the token endpoint for a device authorization nobody
// approves, as a device waiting for its user does, without waiting the
// interval between polls.
type deviceWorker struct {
	t    *target
	c    client
	code string
}

// prepare starts a device authorization (RFC 8628 §3.1): at set-up, and
// again when the last one expired.
func (w *deviceWorker) prepare(ctx context.Context) error {
	if w.code != "" {
		return nil
	}
	status, body, err := w.t.postForm(ctx, w.t.meta.DeviceAuthorizationEndpoint, w.c, url.Values{"scope": {"openid"}})
	if err != nil {
		return fmt.Errorf("device authorization: %w", err)
	}
	if status != http.StatusOK {
		return fmt.Errorf("device authorization: %w", answerFailure(status, body))
	}
	var ans struct {
		DeviceCode string `json:"device_code"`
	}
	if err := json.Unmarshal(body, &ans); err != nil || ans.DeviceCode == "" {
		return &failure{kind: kindBadAnswer, detail: fmt.Sprintf("device authorization answered without a device_code: %s", snippet(body))}
	}
	w.code = ans.DeviceCode
	return nil
}

// Poll answers that are expected while nobody approves the device.
const (
	answerPending  = "authorization_pending"
	answerSlowDown = "slow_down"
)

func (w *deviceWorker) do(ctx context.Context) (string, error) {
	status, body, err := w.t.postForm(ctx, w.t.meta.TokenEndpoint, w.c, url.Values{"grant_type": {deviceGrantType}, "device_code": {w.code}})
	if err != nil {
		return "", err
	}
	if status == http.StatusOK {
		w.code = ""
		return "", &failure{kind: "approved", detail: "the device authorization was approved, which nothing in the scenario does"}
	}
	f := answerFailure(status, body)
	switch f.kind {
	case "oauth:" + answerPending:
		return answerPending, nil
	case "oauth:" + answerSlowDown:
		return answerSlowDown, nil
	case "oauth:expired_token", "oauth:invalid_grant", "oauth:access_denied":
		w.code = "" // start a new one
	}
	return "", f
}

func setUpDevice(ctx context.Context, e *env, n int) ([]worker, error) {
	if e.t.meta.DeviceAuthorizationEndpoint == "" {
		return nil, errors.New("the discovery document has no device_authorization_endpoint")
	}
	c, err := e.clientFor(ctx, map[string]any{
		"client_name":                "latchkey-bench device",
		"grant_types":                []string{deviceGrantType},
		"response_types":             []string{},
		"token_endpoint_auth_method": "none",
		"scope":                      "openid",
	})
	if err != nil {
		return nil, err
	}
	return prepareAll(ctx, n, func() *deviceWorker { return &deviceWorker{t: e.t, c: c} })
}
