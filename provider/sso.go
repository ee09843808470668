package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// sessionCookie is the SSO session cookie. Its value is a bearer secret; the
// store keeps only its hash.
const sessionCookie = "latchkey_session"

// currentSession returns the browser's live SSO session, or nil.
func (p *Provider) currentSession(r *http.Request) (*store.LoginSession, error) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	ls, err := p.store.GetLoginSession(r.Context(), c.Value)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load SSO session: %w", err)
	}
	return ls, nil
}

// establishSession records a sign-in the login app accepted: the browser's
// session is refreshed when it belongs to the same user, and replaced by a
// new one (new cookie, new sid) otherwise. A session the login app was not
// asked to remember still exists, so its sid reaches ID tokens and logout,
// but its cookie ends with the browser session.
func (p *Provider) establishSession(ctx context.Context, w http.ResponseWriter, r *http.Request, la *LoginAccept) (*store.LoginSession, error) {
	now := time.Now().UTC()
	lifespan := p.cfg.SessionLifespan
	if la.Remember && la.RememberFor > 0 {
		lifespan = time.Duration(la.RememberFor) * time.Second
	}
	cookieAge := time.Duration(0)
	if la.Remember {
		cookieAge = lifespan
	}
	ls := &store.LoginSession{
		Subject:         la.Subject,
		AuthenticatedAt: now,
		ACR:             la.ACR,
		AMR:             la.AMR,
		Remember:        la.Remember,
		ExpiresAt:       now.Add(lifespan),
	}
	if c, err := r.Cookie(sessionCookie); err == nil && c.Value != "" {
		ls.ID = c.Value
		err := p.store.ReauthenticateLoginSession(ctx, ls)
		if err == nil {
			cur, err := p.store.GetLoginSession(ctx, c.Value)
			if err != nil {
				return nil, fmt.Errorf("reload SSO session: %w", err)
			}
			http.SetCookie(w, p.cookie(sessionCookie, c.Value, cookieAge))
			return cur, nil
		}
		if !errors.Is(err, store.ErrNotFound) {
			return nil, fmt.Errorf("refresh SSO session: %w", err)
		}
		// Another user, or the session ended: start a new one.
	}
	ls.ID = randomToken(32)
	ls.SID = randomToken(16)
	if err := p.store.CreateLoginSession(ctx, ls); err != nil {
		return nil, fmt.Errorf("create SSO session: %w", err)
	}
	http.SetCookie(w, p.cookie(sessionCookie, ls.ID, cookieAge))
	return ls, nil
}
