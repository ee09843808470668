package login

import (
	"errors"
	"net/http"

	"github.com/latchkey-oidc/latchkey/store"
)

// consentData is the consent page's data.
type consentData struct {
	Challenge  string
	Client     *client
	ClientName string
	Scopes     []string
	Audience   []string
}

// consentPage asks the user whether the client may have what it asked
// for, or decides at once when the provider says the user need not be asked.
func (a *App) consentPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("consent_challenge")
	ch, err := a.admin.get(r.Context(), kindConsent, id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	if ch.Skip {
		a.grantConsent(w, r, ch, false)
		return
	}
	a.pages.render(w, http.StatusOK, "consent", view{
		Title: "Allow access?", CSRF: a.cookies.csrfToken(w, r),
		Data: consentData{Challenge: id, Client: ch.Client, ClientName: ch.Client.displayName(), Scopes: ch.RequestedScope, Audience: ch.RequestedAudience},
	})
}

// consentDecision records the user's answer.
func (a *App) consentDecision(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	ctx := r.Context()
	id := r.PostFormValue("consent_challenge")
	// The decision is taken against what the provider says was asked, not
	// what the form carries.
	ch, err := a.admin.get(ctx, kindConsent, id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	if r.PostFormValue("decision") != "allow" {
		to, err := a.admin.reject(ctx, kindConsent, id, rejection{Error: "access_denied", ErrorDescription: "The user denied access."})
		if err != nil {
			a.challengeError(w, r, err)
			return
		}
		redirect(w, r, to)
		return
	}
	a.grantConsent(w, r, ch, r.PostFormValue("remember") != "")
}

// grantConsent accepts the consent challenge with everything requested and
// the user's current claims.
func (a *App) grantConsent(w http.ResponseWriter, r *http.Request, ch *challenge, remember bool) {
	ctx := r.Context()
	user, err := a.store.GetUser(ctx, ch.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && user.Disabled) {
		to, rerr := a.admin.reject(ctx, kindConsent, ch.Challenge, rejection{Error: "access_denied", ErrorDescription: "The account no longer exists or is disabled."})
		if rerr != nil {
			a.challengeError(w, r, rerr)
			return
		}
		redirect(w, r, to)
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	claims, err := userClaims(user)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	scope := ch.RequestedScope
	if scope == nil {
		scope = []string{}
	}
	to, err := a.admin.accept(ctx, kindConsent, ch.Challenge, consentAccept{
		GrantScope: scope, GrantAudience: ch.RequestedAudience,
		Remember: remember, Session: consentSession{Claims: claims},
	})
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	redirect(w, r, to)
}
