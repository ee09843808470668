package login

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/login/upstream"
	"github.com/latchkey-oidc/latchkey/store"
)

// upstreamStart sends the browser to an upstream OpenID provider (code flow
// with PKCE and a nonce), remembering the sign-in it serves.
func (a *App) upstreamStart(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["name"]
	u, ok := a.upstreams[name]
	if !ok {
		a.pages.fail(w, r, http.StatusNotFound, "There is no such way to sign in.")
		return
	}
	q := r.URL.Query()
	id := q.Get("login_challenge")
	// A stale link should fail here, not after the round trip.
	if _, err := a.loginChallenge(r.Context(), id); err != nil {
		a.challengeError(w, r, err)
		return
	}
	state, nonce, verifier := upstream.NewState()
	c := ceremony{Purpose: "upstream", Upstream: name, Challenge: id, Next: safeNext(q.Get("next")), OAuth: state, Nonce: nonce, Verifier: verifier}
	if err := a.cookies.setSealed(w, cookieCeremony, c, progressTTL); err != nil {
		a.serverError(w, r, err)
		return
	}
	to, err := u.AuthURL(r.Context(), a.upstreamCallback(name), state, nonce, verifier)
	if err != nil {
		a.cfg.Log.WarnContext(r.Context(), "upstream unavailable", "upstream", name, "error", err)
		a.pages.fail(w, r, http.StatusBadGateway, u.DisplayName()+" is not available right now. Try again later or sign in another way.")
		return
	}
	redirect(w, r, to)
}

func (a *App) upstreamCallback(name string) string {
	return a.url("/login/upstream/" + name + "/callback")
}

// upstreamReturn finishes an upstream sign-in: it checks the state, redeems
// the code, verifies the ID token and finds, links or creates the user.
func (a *App) upstreamReturn(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := mux.Vars(r)["name"]
	u, ok := a.upstreams[name]
	if !ok {
		a.pages.fail(w, r, http.StatusNotFound, "There is no such way to sign in.")
		return
	}
	q := r.URL.Query()
	var c ceremony
	if err := a.cookies.openSealed(r, cookieCeremony, &c); err != nil || c.Purpose != "upstream" || c.Upstream != name ||
		subtle.ConstantTimeCompare([]byte(c.OAuth), []byte(q.Get("state"))) != 1 {
		a.metrics.signIns.WithLabelValues(methodUpstream, resultFailure).Inc()
		a.pages.fail(w, r, http.StatusBadRequest, "This sign-in took too long or did not start here. Go back and try again.")
		return
	}
	a.cookies.clear(w, cookieCeremony)
	if e := q.Get("error"); e != "" {
		a.metrics.signIns.WithLabelValues(methodUpstream, resultFailure).Inc()
		a.pages.fail(w, r, http.StatusUnauthorized, u.DisplayName()+" did not sign you in ("+e+"). Go back and try again, or sign in another way.")
		return
	}
	id, err := u.Exchange(ctx, a.upstreamCallback(name), q.Get("code"), c.Verifier, c.Nonce)
	if err != nil {
		a.cfg.Log.WarnContext(ctx, "upstream sign-in failed", "upstream", name, "error", err)
		a.metrics.signIns.WithLabelValues(methodUpstream, resultFailure).Inc()
		a.pages.fail(w, r, http.StatusBadGateway, u.DisplayName()+" sign-in failed. Try again, or sign in another way.")
		return
	}
	user, err := a.federatedUser(ctx, u, id)
	if errors.Is(err, errAmbiguousEmail) {
		a.metrics.signIns.WithLabelValues(methodUpstream, resultFailure).Inc()
		a.pages.fail(w, r, http.StatusConflict, "Several accounts use this email address, so it cannot be linked. Ask an administrator.")
		return
	}
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if user.Disabled {
		a.metrics.signIns.WithLabelValues(methodUpstream, resultFailure).Inc()
		a.pages.fail(w, r, http.StatusForbidden, "This account cannot sign in.")
		return
	}
	ch, err := a.loginChallenge(ctx, c.Challenge)
	if err != nil {
		a.challengeError(w, r, err)
		return
	}
	amr := []string{"fed"}
	if upstreamAMR, _ := id.Claims["amr"].([]any); slices.Contains(upstreamAMR, any("mfa")) {
		amr = append(amr, "mfa")
	}
	p := &signInProgress{Challenge: c.Challenge, UserID: user.ID, Method: "upstream", AMR: amr, AuthTime: a.cfg.Now().Unix(), Next: c.Next}
	a.advance(w, r, p, ch, user)
}

var errAmbiguousEmail = errors.New("several users have this email address")

// federatedUser returns the user linked to the upstream account; else,
// when the upstream allows it, the one user with the same verified email,
// linking them; else a new user, linked.
func (a *App) federatedUser(ctx context.Context, u *upstream.Upstream, id upstream.Identity) (*store.User, error) {
	user, err := a.store.GetUserByFederatedIdentity(ctx, id.Issuer, id.Subject)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return user, err
	}
	if u.LinkByEmail() && id.EmailVerified && id.Email != "" {
		same, err := a.store.GetUsersByEmail(ctx, id.Email)
		if err != nil {
			return nil, err
		}
		switch len(same) {
		case 0:
		case 1:
			user = same[0]
		default:
			return nil, errAmbiguousEmail
		}
	}
	if user == nil {
		if user, err = a.createFederatedUser(ctx, u, id); err != nil {
			return nil, err
		}
	}
	err = a.store.LinkFederatedIdentity(ctx, id.Issuer, id.Subject, user.ID)
	if errors.Is(err, store.ErrAlreadyExists) {
		// A concurrent first sign-in linked it; use that.
		return a.store.GetUserByFederatedIdentity(ctx, id.Issuer, id.Subject)
	}
	return user, err
}

// createFederatedUser makes a local account for a first upstream sign-in.
// It has no password; the username is the upstream's when free.
func (a *App) createFederatedUser(ctx context.Context, u *upstream.Upstream, id upstream.Identity) (*store.User, error) {
	profile := "{}"
	if id.Name != "" {
		profile = fmt.Sprintf(`{"name":%q}`, id.Name)
	}
	base := store.NormalizeUsername(cmpFirst(id.PreferredUsername, id.Email, u.Name()+"-"+id.Subject))
	for attempt := 0; ; attempt++ {
		name := base
		if attempt > 0 {
			name = base + "-" + strings.ToLower(newRecoveryCode()[:4])
		}
		user := &store.User{Username: name, Email: id.Email, EmailVerified: id.EmailVerified, Profile: []byte(profile)}
		err := a.store.CreateUser(ctx, user)
		if err == nil {
			return user, nil
		}
		if !errors.Is(err, store.ErrAlreadyExists) || attempt >= 5 {
			return nil, err
		}
	}
}

func cmpFirst(vals ...string) string {
	for _, v := range vals {
		if strings.TrimSpace(v) != "" {
			return v
		}
	}
	return ""
}
