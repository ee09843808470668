package provider

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json;charset=UTF-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError is the RFC 6749 §5.2 error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeError writes an RFC 6749-shaped JSON error.
func writeError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

// retryAfter is the Retry-After, in seconds, of an answer given while the
// database is unavailable.
const retryAfter = "5"

const unavailableDescription = "The authorization server cannot reach its database; try again shortly."

// retryable turns a failure caused by the database being unavailable into
// fosite's temporarily_unavailable (503): the client may try again, and a
// client whose lookup failed is not told its credentials are wrong. Any
// other error comes back unchanged. Every 503 gets a Retry-After header.
func retryable(w http.ResponseWriter, err error) error {
	if errors.Is(err, store.ErrUnavailable) {
		err = fosite.ErrTemporarilyUnavailable.WithDescription(unavailableDescription).WithWrap(err)
	}
	if unavailable(err) {
		w.Header().Set("Retry-After", retryAfter)
	}
	return err
}

// unavailable tells a failure that may pass if tried again shortly: the
// database is unavailable, or fosite said so (it answers revocations that
// failed in the store with temporarily_unavailable).
func unavailable(err error) bool {
	return errors.Is(err, store.ErrUnavailable) ||
		fosite.ErrorToRFC6749Error(err).CodeField == http.StatusServiceUnavailable
}

// logFailure logs a request that failed on Latchkey's side: at error
// level, or at warning level while the database is unavailable, when
// /health/ready and latchkey_database_up already say so and every request
// would repeat it.
func (p *Provider) logFailure(ctx context.Context, msg string, err error, args ...any) {
	level := slog.LevelError
	if unavailable(err) {
		level = slog.LevelWarn
	}
	p.log.Log(ctx, level, msg, append(args, "err", err)...)
}

// writeServerError answers a JSON endpoint whose request failed on
// Latchkey's side: 503 temporarily_unavailable while the database is
// unavailable, else 500 server_error with description.
func writeServerError(w http.ResponseWriter, err error, description string) {
	if unavailable(err) {
		w.Header().Set("Retry-After", retryAfter)
		writeError(w, http.StatusServiceUnavailable, "temporarily_unavailable", unavailableDescription)
		return
	}
	writeError(w, http.StatusInternalServerError, "server_error", description)
}

// serverErrorPage is writeServerError for a person: a page saying to try
// again shortly while the database is unavailable, else message.
func (p *Provider) serverErrorPage(w http.ResponseWriter, err error, message string) {
	if unavailable(err) {
		w.Header().Set("Retry-After", retryAfter)
		p.errorPage(w, http.StatusServiceUnavailable, "Temporarily unavailable", "temporarily_unavailable",
			"This service is unavailable for a moment. Please try again shortly.")
		return
	}
	p.errorPage(w, http.StatusInternalServerError, "Something went wrong", "server_error", message)
}

func notFound(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "There is nothing at this address.")
}

func methodNotAllowed(w http.ResponseWriter, _ *http.Request) {
	writeError(w, http.StatusMethodNotAllowed, "invalid_request", "This endpoint does not accept that HTTP method.")
}

// requireAdminToken lets through only requests with the admin bearer token.
func (p *Provider) requireAdminToken(next http.Handler) http.Handler {
	want := []byte("Bearer " + p.cfg.AdminToken)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="latchkey-admin"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "The admin API needs the admin bearer token.")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// htmlCSP is the Content-Security-Policy of the provider's own pages.
const htmlCSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"

var errorPageTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#eee;padding:.1rem .3rem}</style>
</head><body><h1>{{.Title}}</h1><p>{{.Message}}</p>{{if .Code}}<p>Error: <code>{{.Code}}</code></p>{{end}}</body></html>
`))

// errorPage renders an error for a person, not a client: used when there is
// no redirect URI the error may safely go to.
func (p *Provider) errorPage(w http.ResponseWriter, status int, title, code, message string) {
	h := w.Header()
	h.Set("Content-Type", "text/html;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", htmlCSP)
	w.WriteHeader(status)
	_ = errorPageTemplate.Execute(w, struct{ Title, Code, Message string }{title, code, message})
}

// writeAuthorizeError answers an authorization request with an error. With
// a registered redirect URI the error goes there in the request's response
// mode, with state and iss (RFC 9207); without one, it never redirects: the
// person sees an error page.
func (p *Provider) writeAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	err = retryable(w, err)
	rfcErr := fosite.ErrorToRFC6749Error(err)
	if rfcErr.CodeField >= 500 {
		p.logFailure(r.Context(), "authorize", err, "debug", rfcErr.GetDescription()+" "+rfcErr.DebugField)
	}
	if ar == nil || !ar.IsRedirectURIValid() {
		p.metrics.authorize.WithLabelValues(responseTypeLabel(ar), authorizeRefused).Inc()
		if unavailable(err) {
			p.serverErrorPage(w, err, "")
			return
		}
		status := rfcErr.CodeField
		if status < 400 {
			status = http.StatusBadRequest
		}
		p.errorPage(w, status, "The sign-in request is not valid", rfcErr.ErrorField, rfcErr.GetDescription())
		return
	}
	p.metrics.authorize.WithLabelValues(responseTypeLabel(ar), authorizeError).Inc()
	params := url.Values{"error": {rfcErr.ErrorField}}
	if d := rfcErr.GetDescription(); d != "" {
		params.Set("error_description", d)
	}
	if s := ar.GetState(); s != "" {
		params.Set("state", s)
	}
	params.Set("iss", p.cfg.Issuer)
	p.writeAuthorizeRedirect(w, ar, params)
}

// responseMode is the mode an authorization response goes back in.
func responseMode(ar fosite.AuthorizeRequester) fosite.ResponseModeType {
	if m := ar.GetResponseMode(); m != fosite.ResponseModeDefault {
		return m
	}
	if m := ar.GetDefaultResponseMode(); m != fosite.ResponseModeDefault {
		return m
	}
	// fosite stopped before it parsed the response type: read it here.
	types := ar.GetResponseTypes()
	if len(types) == 0 {
		types = fosite.RemoveEmpty(strings.Split(ar.GetRequestForm().Get("response_type"), " "))
	}
	if types.ExactOne("code") || len(types) == 0 {
		return fosite.ResponseModeQuery
	}
	return fosite.ResponseModeFragment
}

// writeAuthorizeRedirect sends params to the request's redirect URI in its
// response mode.
func (p *Provider) writeAuthorizeRedirect(w http.ResponseWriter, ar fosite.AuthorizeRequester, params url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	redirect := *ar.GetRedirectURI()
	redirect.Fragment = ""
	switch responseMode(ar) {
	case fosite.ResponseModeFormPost:
		writeFormPost(w, redirect.String(), params)
		return
	case fosite.ResponseModeFragment:
		w.Header().Set("Location", redirect.String()+"#"+params.Encode())
	default:
		q := redirect.Query()
		for k, v := range params {
			q[k] = v
		}
		redirect.RawQuery = q.Encode()
		w.Header().Set("Location", redirect.String())
	}
	w.WriteHeader(http.StatusSeeOther)
}

// formPostScript submits the form_post page; the page's CSP allows exactly
// this script by its hash.
const formPostScript = `document.forms[0].submit()`

var formPostTemplate = template.Must(template.New("form_post").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Submit This Form</title></head>
<body><form method="post" action="{{ .RedirURL }}">
{{ range $key, $value := .Parameters }}{{ range $parameter := $value }}<input type="hidden" name="{{ $key }}" value="{{ $parameter }}">
{{ end }}{{ end }}<noscript><button type="submit">Continue</button></noscript></form>
<script>` + formPostScript + `</script></body></html>
`))

// formPostCSP allows the auto-submit script by hash and the form to post
// anywhere (the redirect URI was checked against the client's).
var formPostCSP = "default-src 'none'; script-src '" + scriptHash(formPostScript) + "'; frame-ancestors 'none'; base-uri 'none'"

func writeFormPost(w http.ResponseWriter, redirectURI string, params url.Values) {
	h := w.Header()
	h.Set("Content-Type", "text/html;charset=UTF-8")
	h.Set("Content-Security-Policy", formPostCSP)
	fosite.WriteAuthorizeFormPostResponse(redirectURI, params, formPostTemplate, w)
}
