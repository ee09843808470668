package provider

import (
	"net/http"
	"net/url"
	"slices"
	"unicode/utf8"

	"github.com/ory/fosite"
)

// Request parameters are checked before an endpoint acts on them. Each may
// appear once (RFC 6749 §3.1): with two values the provider and fosite
// could each act on a different one. And each is valid UTF-8, as every
// value the protocols define is: anything else could not be stored
// (PostgreSQL refuses it) nor given back unchanged (state, nonce).

// repeatable are the parameters that may appear more than once: the
// audience fosite reads from one or many, and RFC 8707's resource.
var repeatable = map[string]bool{"audience": true, "resource": true}

// checkParams refuses a parameter of form that is repeated or not valid
// UTF-8, as invalid_request naming it.
func checkParams(form url.Values) error {
	var bad []string
	for name, values := range form {
		if paramError(name, values) != nil {
			bad = append(bad, name)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	slices.Sort(bad) // the same request gets the same answer
	return paramError(bad[0], form[bad[0]])
}

// paramError says what is wrong with one parameter, if anything.
func paramError(name string, values []string) error {
	if !utf8.ValidString(name) {
		return fosite.ErrInvalidRequest.WithHint("A parameter name is not valid UTF-8.")
	}
	if len(values) > 1 && !repeatable[name] {
		return fosite.ErrInvalidRequest.WithHintf("The %s parameter must not be included more than once.", name)
	}
	for _, v := range values {
		if !utf8.ValidString(v) {
			return fosite.ErrInvalidRequest.WithHintf("The %s parameter is not valid UTF-8.", name)
		}
	}
	return nil
}

// parseParams parses the request's query and form body into r.Form and
// checks them; a parameter in both is repeated.
func parseParams(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request's parameters could not be parsed.").WithWrap(err)
	}
	return checkParams(r.Form)
}

// parseFormBody is parseParams for the endpoints clients POST a form to
// the token endpoint (RFC 6749 §3.2) and those modelled on it
// (introspection, revocation, pushed and device authorization requests).
// A body of another type would be read as no parameters at all, and
// answered for whichever of them fosite happens to miss first.
func parseFormBody(r *http.Request) error {
	if !isFormContent(r) {
		return fosite.ErrInvalidRequest.WithHint("The request body must be application/x-www-form-urlencoded.")
	}
	if err := parseParams(r); err != nil {
		return err
	}
	// A client_id next to HTTP Basic credentials must name the same
	// client: a request naming two would be answered for one of them.
	if user, _, ok := r.BasicAuth(); ok && r.PostForm.Has("client_id") {
		if id, err := url.QueryUnescape(user); err != nil || id != r.PostForm.Get("client_id") {
			return fosite.ErrInvalidRequest.WithHint("The client_id is not the client of the Authorization header.")
		}
	}
	return nil
}

// paramProblem says what checkParams or parseFormBody found wrong.
func paramProblem(err error) string {
	return fosite.ErrorToRFC6749Error(err).HintField
}
