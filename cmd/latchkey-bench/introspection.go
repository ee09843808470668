package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
)

// introspectionWorker introspects one access token of its client, as a
// resource server checks the token of each request it serves.
type introspectionWorker struct {
	t     *target
	c     client
	token string
}

// prepare gets the worker a token: at set-up, and again when the last one
// stopped being active (it expired or was revoked).
func (w *introspectionWorker) prepare(ctx context.Context) error {
	if w.token != "" {
		return nil
	}
	ta, err := w.t.token(ctx, w.c, url.Values{"grant_type": {"client_credentials"}, "scope": {ccScope}})
	if err != nil {
		return fmt.Errorf("get a token to introspect: %w", err)
	}
	w.token = ta.AccessToken
	return nil
}

func (w *introspectionWorker) do(ctx context.Context) (string, error) {
	status, body, err := w.t.postForm(ctx, w.t.meta.IntrospectionEndpoint, w.c,
		url.Values{"token": {w.token}, "token_type_hint": {"access_token"}})
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", answerFailure(status, body)
	}
	var ans struct {
		Active bool `json:"active"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return "", &failure{kind: kindBadAnswer, detail: fmt.Sprintf("introspection answer is not JSON: %s", snippet(body))}
	}
	if !ans.Active {
		w.token = ""
		return "", &failure{kind: "inactive", detail: "the provider answered active: false for a token it issued"}
	}
	return "", nil
}

func setUpIntrospection(ctx context.Context, e *env, n int) ([]worker, error) {
	if e.t.meta.IntrospectionEndpoint == "" {
		return nil, errors.New("the discovery document has no introspection_endpoint")
	}
	c, err := e.clientFor(ctx, ccClientMeta("introspection"))
	if err != nil {
		return nil, err
	}
	return prepareAll(ctx, n, func() *introspectionWorker { return &introspectionWorker{t: e.t, c: c} })
}
