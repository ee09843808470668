package login

import (
	"cmp"
	"errors"
	"net/http"
	"strings"
)

type deviceData struct {
	Challenge string
	UserCode  string
}

// devicePage asks for the code a device shows (RFC 8628), pre-filled when
// the user came through verification_uri_complete.
func (a *App) devicePage(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("device_challenge")
	ch, err := a.admin.get(r.Context(), kindDevice, id)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	a.showDevice(w, r, http.StatusOK, id, cmp.Or(q.Get("user_code"), ch.UserCode), "")
}

func (a *App) showDevice(w http.ResponseWriter, r *http.Request, status int, id, code, msg string) {
	a.pages.render(w, status, "device", view{
		Title: "Connect a device", CSRF: a.cookies.csrfToken(w, r), Error: msg,
		Data: deviceData{Challenge: id, UserCode: code},
	})
}

// deviceCode hands the user code to the provider, which checks it and then
// continues into sign-in and consent.
func (a *App) deviceCode(w http.ResponseWriter, r *http.Request) {
	if !a.parseForm(w, r) {
		return
	}
	id := r.PostFormValue("device_challenge")
	code := strings.TrimSpace(r.PostFormValue("user_code"))
	to, err := a.admin.accept(r.Context(), kindDevice, id, deviceAccept{UserCode: code})
	switch adminStatus(err) {
	case 0:
	case http.StatusBadRequest:
		a.showDevice(w, r, http.StatusBadRequest, id, code, "That code is not right, or it has expired. Check the code on your device.")
		return
	case http.StatusTooManyRequests:
		var ae *adminError
		if errors.As(err, &ae) && ae.RedirectTo != "" {
			// The provider ended the challenge: it tells the user why.
			redirect(w, r, ae.RedirectTo)
			return
		}
		a.showDevice(w, r, http.StatusTooManyRequests, id, code, "Too many wrong codes. Wait a minute and try again.")
		return
	default:
		a.challengeError(w, r, err)
		return
	}
	redirect(w, r, to)
}
