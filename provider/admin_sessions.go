package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/store"
)

// A subject's SSO sessions, as the operator sees them: the admin API's
// /admin/subjects/{subject}/sessions and the CLI's "latchkey sessions".
// Ending a session here has the consequences a logout has: the next
// authorization in that browser asks the user to sign in again, and the
// session's clients with a backchannel_logout_uri get a logout token. With
// revoke_tokens the tokens issued in the session are revoked too.

// SessionView is what the admin API and the CLI show of an SSO session.
type SessionView struct {
	SID             string    `json:"sid"`
	AuthenticatedAt time.Time `json:"authenticated_at"`
	CreatedAt       time.Time `json:"created_at"`
	ExpiresAt       time.Time `json:"expires_at"`
	ACR             string    `json:"acr,omitempty"`
	AMR             []string  `json:"amr"`
	// Remember says whether the session's cookie outlives the browser
	// session.
	Remember bool `json:"remember"`
	// ClientIDs are the clients that received tokens or ID tokens in the
	// session: those a logout of it reaches.
	ClientIDs []string `json:"client_ids"`
}

// SessionList answers GET /admin/subjects/{subject}/sessions: the
// subject's sessions that have not expired, oldest first.
type SessionList struct {
	Subject  string        `json:"subject"`
	Sessions []SessionView `json:"sessions"`
}

// SessionsRevoked answers DELETE /admin/subjects/{subject}/sessions and
// …/sessions/{sid}: the SIDs of the SSO sessions that ended, and with
// revoke_tokens, how many tokens and codes issued in them were revoked.
type SessionsRevoked struct {
	Subject       string   `json:"subject"`
	SIDs          []string `json:"sids"`
	RevokedTokens *int64   `json:"revoked_tokens,omitempty"`
}

// SSOSessions lists and ends subjects' SSO sessions. Ending them needs
// only the store: the logouts they queue are sent by the providers'
// workers.
type SSOSessions struct {
	store *store.Store
	// wake, when set, tells the local provider's worker that logouts
	// were queued, so they go out at once rather than at its next poll.
	wake func()
}

// NewSSOSessions returns the sessions of st, for tools that run without a
// provider (the CLI). The back-channel logouts it queues are sent by the
// running providers' workers at their next poll.
func NewSSOSessions(st *store.Store) *SSOSessions { return &SSOSessions{store: st} }

// ssoSessions returns the provider's sessions, whose logouts its own
// worker sends at once.
func (p *Provider) ssoSessions() *SSOSessions {
	return &SSOSessions{store: p.store, wake: p.wakeBackchannel}
}

// List returns a subject's live sessions, oldest first.
func (s *SSOSessions) List(ctx context.Context, subject string) (*SessionList, error) {
	live, err := s.store.ListLoginSessionsBySubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	out := &SessionList{Subject: subject, Sessions: make([]SessionView, 0, len(live))}
	for _, ls := range live {
		amr := ls.AMR
		if amr == nil {
			amr = []string{}
		}
		out.Sessions = append(out.Sessions, SessionView{
			SID:             ls.SID,
			AuthenticatedAt: ls.AuthenticatedAt,
			CreatedAt:       ls.CreatedAt,
			ExpiresAt:       ls.ExpiresAt,
			ACR:             ls.ACR,
			AMR:             amr,
			Remember:        ls.Remember,
			ClientIDs:       ls.ClientIDs,
		})
	}
	return out, nil
}

// Revoke ends the subject's session sid, or with sid "" every session of
// the subject, expired or not, and queues the back-channel logouts of
// their clients. With revokeTokens it also revokes, in the same
// transaction, every grant issued in those sessions: its code, access
// tokens and refresh tokens (store.RevokeTokensBySessions); tokens the
// subject got outside them, in another session or without a browser, stay.
// A sid that is not one of the subject's sessions is store.ErrNotFound.
func (s *SSOSessions) Revoke(ctx context.Context, subject, sid string, revokeTokens bool) (*SessionsRevoked, error) {
	st := s.store
	var revoked int64
	ended, err := s.end(ctx, func(ctx context.Context) ([]*store.EndedSession, error) {
		var ended []*store.EndedSession
		if sid == "" {
			all, err := st.EndLoginSessionsBySubject(ctx, subject)
			if err != nil {
				return nil, err
			}
			ended = all
		} else {
			es, err := st.EndLoginSessionBySID(ctx, subject, sid)
			if err != nil {
				return nil, err
			}
			ended = []*store.EndedSession{es}
		}
		if revokeTokens {
			var err error
			if revoked, err = st.RevokeTokensBySessions(ctx, subject, endedSIDs(ended)); err != nil {
				return nil, err
			}
		}
		return ended, nil
	})
	if err != nil {
		return nil, err
	}
	out := &SessionsRevoked{Subject: subject, SIDs: endedSIDs(ended)}
	if revokeTokens {
		out.RevokedTokens = &revoked
	}
	return out, nil
}

// endedSIDs lists the SIDs of ended sessions; never nil.
func endedSIDs(ended []*store.EndedSession) []string {
	sids := []string{}
	for _, es := range ended {
		sids = append(sids, es.SID)
	}
	return sids
}

// adminListSessions lists a subject's live SSO sessions. A subject
// without any has an empty list.
func (p *Provider) adminListSessions(w http.ResponseWriter, r *http.Request) {
	sub, ok := adminSubject(w, r)
	if !ok {
		return
	}
	list, err := p.ssoSessions().List(r.Context(), sub)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, list)
}

// adminRevokeSessions signs a subject out of every browser: its SSO
// sessions end, so the next authorization asks it to sign in again, and
// the clients of those sessions that registered a backchannel_logout_uri
// get a logout token. The tokens issued in those sessions are revoked too
// with ?revoke_tokens=true; otherwise they are not touched (…/tokens
// revokes all the subject's tokens).
func (p *Provider) adminRevokeSessions(w http.ResponseWriter, r *http.Request) {
	p.adminRevoke(w, r, "")
}

// adminRevokeSession ends one SSO session of a subject, as
// adminRevokeSessions ends them all: 404 when the subject has no session
// with that SID.
func (p *Provider) adminRevokeSession(w http.ResponseWriter, r *http.Request) {
	sid := mux.Vars(r)["sid"]
	if sid == "" {
		writeError(w, http.StatusNotFound, "not_found", "The subject has no such session.")
		return
	}
	p.adminRevoke(w, r, sid)
}

func (p *Provider) adminRevoke(w http.ResponseWriter, r *http.Request, sid string) {
	sub, ok := adminSubject(w, r)
	if !ok {
		return
	}
	revokeTokens := false
	if v := r.URL.Query().Get("revoke_tokens"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "revoke_tokens must be true or false.")
			return
		}
		revokeTokens = b
	}
	res, err := p.ssoSessions().Revoke(r.Context(), sub, sid, revokeTokens)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("The subject has no session %q.", sid))
		return
	}
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}
