package login

import "net/http"

type logoutData struct {
	Challenge  string
	ClientName string
}

// logoutPage asks the user to confirm signing out, unless the provider
// says the request proved it came from a client of the session.
func (a *App) logoutPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("logout_challenge")
	ch, err := a.admin.get(r.Context(), kindLogout, id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	if ch.Skip {
		a.signOut(w, r, id)
		return
	}
	name := ""
	if ch.Client != nil {
		name = ch.Client.displayName()
	}
	a.pages.render(w, http.StatusOK, "logout", view{
		Title: "Sign out?", CSRF: a.cookies.csrfToken(w, r), Lang: pageLang(ch.OIDCContext.UILocales),
		Data: logoutData{Challenge: id, ClientName: name},
	})
}

// logoutDecision signs out or stays signed in, as the user chose.
func (a *App) logoutDecision(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	id := r.PostFormValue("logout_challenge")
	if r.PostFormValue("decision") != "logout" {
		to, err := a.admin.reject(r.Context(), kindLogout, id, struct{}{})
		if err != nil {
			a.challengeError(w, r, err)
			return
		}
		redirect(w, r, to)
		return
	}
	a.signOut(w, r, id)
}

// signOut ends the login app's own session too, then lets the provider end
// its session and send the browser on.
func (a *App) signOut(w http.ResponseWriter, r *http.Request, id string) {
	if err := a.endAccountSession(w, r); err != nil {
		a.serverError(w, r, err)
		return
	}
	to, err := a.admin.accept(r.Context(), kindLogout, id, struct{}{})
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	redirect(w, r, to)
}
