package provider

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// maxRequestObjectSize bounds a fetched request object.
const maxRequestObjectSize = 64 << 10

// resolveRequestURI fetches a request object by reference (request_uri,
// Core §6.2) and puts it into the form as a request parameter, so fosite
// verifies it as if it had been sent by value. fosite's own fetch has no
// context, timeout or size limit; here the URI must be registered for the
// client, and the fetch is bounded. Pushed request_uris (PAR) are left to
// fosite.
func (p *Provider) resolveRequestURI(ctx context.Context, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return nil // fosite reports the malformed body
	}
	uri := r.Form.Get("request_uri")
	if uri == "" || strings.HasPrefix(uri, p.fcfg.GetPushedAuthorizeRequestURIPrefix(ctx)) {
		return nil
	}
	r.Form.Del("request_uri")
	c, err := p.store.GetClient(ctx, r.Form.Get("client_id"))
	if err != nil {
		return nil // fosite answers invalid_client
	}
	client := c.(*store.Client)
	if !slices.Contains(client.RequestURIs, uri) {
		return fosite.ErrInvalidRequestURI.WithHint("The request_uri is not registered for this client.")
	}
	if r.Form.Get("request") != "" {
		return fosite.ErrInvalidRequest.WithHint("request and request_uri must not both be used.")
	}
	obj, err := p.fetchRequestObject(ctx, uri)
	if err != nil {
		return fosite.ErrInvalidRequestURI.WithHint("The request_uri could not be fetched.").WithWrap(err)
	}
	r.Form.Set("request", obj)
	return nil
}

func (p *Provider) fetchRequestObject(ctx context.Context, uri string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/oauth-authz-req+jwt, application/jwt")
	resp, err := p.cfg.fetchHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("request_uri answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRequestObjectSize+1))
	if err != nil {
		return "", err
	}
	if len(body) > maxRequestObjectSize {
		return "", fmt.Errorf("request object larger than %d bytes", maxRequestObjectSize)
	}
	return string(bytes.TrimSpace(body)), nil
}

// repairRequestObject fixes what fosite does to request object claims that
// are not strings: it copies every claim into the form with fmt's %s, so
// max_age 300 becomes "%!s(int64=300)" and a claims object becomes "map[…]"
// (notes §3.6). fosite verified the object already; this decodes its
// payload again and writes numbers as decimals and objects as JSON.
func repairRequestObject(ar fosite.AuthorizeRequester) error {
	form := ar.GetRequestForm()
	obj := form.Get("request")
	if obj == "" || !ar.GetRequestedScopes().Has("openid") {
		return nil
	}
	parts := strings.Split(obj, ".")
	if len(parts) != 3 {
		return nil // fosite rejected it already, or it is encrypted
	}
	claims, err := objectClaims(parts[1])
	if err != nil {
		return err
	}
	return setFormClaims(form, claims)
}

// objectClaims decodes a request object's payload, keeping numbers as
// written.
func objectClaims(payload string) (map[string]any, error) {
	data, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return nil, fosite.ErrInvalidRequestObject.WithHint("The request object payload is not base64url.")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil {
		return nil, fosite.ErrInvalidRequestObject.WithHint("The request object payload is not a JSON object.")
	}
	return claims, nil
}

// setFormClaims writes request object claims into the form as request
// parameters: strings as they are, numbers as decimals, objects as JSON.
func setFormClaims(form url.Values, claims map[string]any) error {
	for k, v := range claims {
		switch v := v.(type) {
		case string:
			form.Set(k, v)
		case json.Number:
			form.Set(k, v.String())
		case bool:
			form.Set(k, fmt.Sprint(v))
		case nil:
			form.Del(k)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return fosite.ErrInvalidRequestObject.WithWrap(err)
			}
			form.Set(k, string(b))
		}
	}
	return nil
}

// openUnsignedRequestObject takes apart an unsigned (alg none) request
// object sent by a client that has no keys. fosite refuses those: it
// looks up the client's keys even for alg none (notes §3.6), though
// OpenID Connect Core §6.1 allows unsigned objects and the conformance
// suite's static clients send them. A client that pinned another
// request_object_signing_alg is left to fosite, which refuses the object.
// The claims go into the form as parameters, after the checks fosite
// would make and the Core §6.1 rule that client_id and response_type
// match the ones outside.
func (p *Provider) openUnsignedRequestObject(ctx context.Context, r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return nil // fosite reports the malformed body
	}
	obj := r.Form.Get("request")
	scope := strings.Fields(r.Form.Get("scope"))
	if obj == "" || !slices.Contains(scope, "openid") {
		return nil
	}
	parts := strings.Split(obj, ".")
	if len(parts) != 3 || parts[2] != "" {
		return nil // signed or encrypted: fosite's job
	}
	header, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return nil
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if json.Unmarshal(header, &h) != nil || h.Alg != "none" {
		return nil
	}
	c, err := p.store.GetClient(ctx, r.Form.Get("client_id"))
	if err != nil {
		return nil // fosite answers invalid_client
	}
	client := c.(*store.Client)
	if client.JWKS != nil || client.JWKSURI != "" || (client.RequestObjectSigningAlg != "" && client.RequestObjectSigningAlg != "none") {
		return nil
	}
	claims, err := objectClaims(parts[1])
	if err != nil {
		return err
	}
	now := time.Now()
	if exp, ok := claims["exp"].(json.Number); ok {
		if s, err := exp.Int64(); err != nil || now.After(time.Unix(s, 0)) {
			return fosite.ErrInvalidRequestObject.WithHint("The request object has expired.")
		}
	}
	if nbf, ok := claims["nbf"].(json.Number); ok {
		if s, err := nbf.Int64(); err != nil || now.Before(time.Unix(s, 0)) {
			return fosite.ErrInvalidRequestObject.WithHint("The request object is not valid yet.")
		}
	}
	for _, k := range []string{"client_id", "response_type"} {
		if v, ok := claims[k]; ok && v != r.Form.Get(k) {
			return fosite.ErrInvalidRequestObject.WithHintf("The request object's %s does not match the request's.", k)
		}
	}
	if err := setFormClaims(r.Form, claims); err != nil {
		return err
	}
	r.Form.Del("request")
	return nil
}
