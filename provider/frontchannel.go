package provider

import (
	"context"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/latchkey-oidc/latchkey/store"
)

// OpenID Connect Front-Channel Logout 1.0. After a logout ends the SSO
// session, the page the browser gets loads the frontchannel_logout_uri of
// every client of that session in an iframe, so each relying party clears
// its own cookies, and then continues to the post_logout_redirect_uri.
// Without any such client, the browser is redirected at once as before.

// frontchannelFrames returns the frontchannel_logout_uri of each client of
// the ended session that registered one, with iss and sid added (keeping
// the URI's own query) for the clients that asked for them with
// frontchannel_logout_session_required. Clients deleted since are left out.
func (p *Provider) frontchannelFrames(ctx context.Context, ended *store.EndedSession) []*url.URL {
	if ended == nil {
		return nil
	}
	var frames []*url.URL
	for _, id := range ended.ClientIDs {
		c, err := p.sessionClient(ctx, id)
		if err != nil {
			p.log.WarnContext(ctx, "front-channel logout: load client", "client_id", id, "err", err)
			continue
		}
		if c == nil || c.FrontchannelLogoutURI == "" {
			continue
		}
		u, err := url.Parse(c.FrontchannelLogoutURI)
		if err != nil || frameOrigin(u) == "" {
			p.log.WarnContext(ctx, "front-channel logout: unusable frontchannel_logout_uri", "client_id", id)
			continue
		}
		if c.FrontchannelLogoutSessionRequired {
			q := u.Query()
			q.Set("iss", p.cfg.Issuer)
			q.Set("sid", ended.SID)
			u.RawQuery = q.Encode()
		}
		frames = append(frames, u)
	}
	return frames
}

// frameOrigin is the CSP source naming u's origin, "" when u is not an
// absolute http(s) URL whose host can be written into a CSP header as is.
func frameOrigin(u *url.URL) string {
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return ""
	}
	for _, ch := range u.Host {
		if !(ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || strings.ContainsRune(".-:[]", ch)) {
			return ""
		}
	}
	return u.Scheme + "://" + u.Host
}

// signedOutContinueScript continues to the link's target once every frame
// has loaded, or after three seconds. The page's CSP allows exactly this
// script by its hash; the target travels in the link, so the script never
// changes.
const signedOutContinueScript = `(function(){var a=document.getElementById("continue"),f=document.querySelectorAll("iframe"),n=f.length,done=false;` +
	`function go(){if(!done){done=true;location.replace(a.href)}}` +
	`f.forEach(function(e){e.addEventListener("load",function(){if(--n<=0)go()})});` +
	`setTimeout(go,3000);if(n===0)go()})()`

// signedOutRefreshSeconds is when a browser without JavaScript continues.
const signedOutRefreshSeconds = "5"

var signedOutTemplate = template.Must(template.New("signed-out").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
{{if .Continue}}<meta http-equiv="refresh" content="` + signedOutRefreshSeconds + `;url={{.Continue}}">
{{end}}<title>You are signed out</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}iframe.rp-logout{position:absolute;width:0;height:0;border:0;visibility:hidden}</style>
</head><body><h1>You are signed out</h1>
<p>{{if .Continue}}Signing you out of your applications…{{else}}You have been signed out. You may close this window.{{end}}</p>
{{range .Frames}}<iframe class="rp-logout" src="{{.}}" title="Signing out of an application"></iframe>
{{end}}{{if .Continue}}<p><a id="continue" href="{{.Continue}}">Continue</a></p>
<script>` + signedOutContinueScript + `</script>
{{end}}</body></html>
`))

// signedOutPage answers a completed logout with the front-channel frames,
// continuing to continueTo (the checked post_logout_redirect_uri with
// state) when it is set. Its CSP lets exactly the frames' origins be
// framed, and still forbids framing the page itself.
func (p *Provider) signedOutPage(w http.ResponseWriter, frames []*url.URL, continueTo string) {
	var origins []string
	srcs := make([]template.URL, 0, len(frames))
	for _, u := range frames {
		if o := frameOrigin(u); !slices.Contains(origins, o) {
			origins = append(origins, o)
		}
		// Checked against the client's registration, and http(s) only.
		srcs = append(srcs, template.URL(u.String()))
	}
	csp := "default-src 'none'; style-src 'unsafe-inline'; frame-src " + strings.Join(origins, " ") +
		"; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
	var next template.URL
	if u, err := url.Parse(continueTo); err != nil || slices.Contains(unsafeSchemes, strings.ToLower(u.Scheme)) {
		continueTo = ""
	}
	if continueTo != "" {
		// A post_logout_redirect_uri the client registered, which may use
		// a native app's scheme that html/template would not let through.
		next = template.URL(continueTo)
		csp += "; script-src '" + scriptHash(signedOutContinueScript) + "'"
	}
	h := w.Header()
	h.Set("Content-Type", "text/html;charset=UTF-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(http.StatusOK)
	_ = signedOutTemplate.Execute(w, struct {
		Frames   []template.URL
		Continue template.URL
	}{srcs, next})
}
