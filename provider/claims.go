package provider

import (
	"encoding/json"
	"fmt"
	"reflect"
)

// claimsRequest is the OpenID Connect "claims" request parameter (Core
// §5.5): which claims the client wants in userinfo and in the ID token.
type claimsRequest struct {
	Userinfo map[string]*claimRequest `json:"userinfo,omitempty"`
	IDToken  map[string]*claimRequest `json:"id_token,omitempty"`
}

// claimRequest is one claim's request: null (just asked for), or with
// essential, value or values.
type claimRequest struct {
	Essential bool  `json:"essential,omitempty"`
	Value     any   `json:"value,omitempty"`
	Values    []any `json:"values,omitempty"`
}

// parseClaimsRequest parses the claims parameter; empty means none.
func parseClaimsRequest(s string) (*claimsRequest, error) {
	if s == "" {
		return nil, nil
	}
	var cr claimsRequest
	if err := json.Unmarshal([]byte(s), &cr); err != nil {
		return nil, fmt.Errorf("the claims parameter is not a JSON object of userinfo and id_token requests: %w", err)
	}
	return &cr, nil
}

// acrValues returns the acr values the id_token member of the claims
// request asks for, so they reach the login app like acr_values.
func (cr *claimsRequest) acrValues() []string {
	if cr == nil || cr.IDToken["acr"] == nil {
		return nil
	}
	var out []string
	req := cr.IDToken["acr"]
	if s, ok := req.Value.(string); ok {
		out = append(out, s)
	}
	for _, v := range req.Values {
		if s, ok := v.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// scopeClaims are the standard claims each scope stands for (Core §5.4).
var scopeClaims = map[string][]string{
	"profile": {"name", "family_name", "given_name", "middle_name", "nickname", "preferred_username",
		"profile", "picture", "website", "gender", "birthdate", "zoneinfo", "locale", "updated_at"},
	"email":   {"email", "email_verified"},
	"address": {"address"},
	"phone":   {"phone_number", "phone_number_verified"},
}

// supportedClaims lists every claim the provider can return, for discovery.
func supportedClaims() []string {
	out := []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "azp", "at_hash", "c_hash", "sid"}
	for _, scope := range []string{"profile", "email", "address", "phone"} {
		out = append(out, scopeClaims[scope]...)
	}
	return out
}

// reservedClaims are set by the provider and never taken from the login
// app's user claims.
var reservedClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true, "jti": true,
	"auth_time": true, "nonce": true, "acr": true, "amr": true, "azp": true, "at_hash": true,
	"c_hash": true, "sid": true, "rat": true,
}

// selectClaims picks from the user's claims what userinfo and the ID token
// carry: claims of the granted scopes go to userinfo, and also to the ID
// token when no access token is issued (response_type=id_token, Core
// §5.4); claims the claims parameter names go where it asks. A requested
// value the user's claim does not have is left out rather than sent wrong.
func selectClaims(user map[string]any, granted []string, cr *claimsRequest, scopeClaimsInIDToken bool) (idToken, userinfo map[string]any) {
	idToken, userinfo = map[string]any{}, map[string]any{}
	for _, scope := range granted {
		for _, name := range scopeClaims[scope] {
			v, ok := user[name]
			if !ok {
				continue
			}
			userinfo[name] = v
			if scopeClaimsInIDToken {
				idToken[name] = v
			}
		}
	}
	if cr != nil {
		pick := func(into map[string]any, reqs map[string]*claimRequest) {
			for name, req := range reqs {
				if reservedClaims[name] {
					continue
				}
				v, ok := user[name]
				if !ok || !req.matches(v) {
					continue
				}
				into[name] = v
			}
		}
		pick(userinfo, cr.Userinfo)
		pick(idToken, cr.IDToken)
	}
	return idToken, userinfo
}

// matches reports whether v satisfies the request's value or values.
func (req *claimRequest) matches(v any) bool {
	if req == nil || (req.Value == nil && len(req.Values) == 0) {
		return true
	}
	if req.Value != nil && reflect.DeepEqual(normalizeJSON(req.Value), normalizeJSON(v)) {
		return true
	}
	for _, want := range req.Values {
		if reflect.DeepEqual(normalizeJSON(want), normalizeJSON(v)) {
			return true
		}
	}
	return false
}

// normalizeJSON makes values from different sources comparable by passing
// them through JSON (numbers become float64, structs maps).
func normalizeJSON(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}
