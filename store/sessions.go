package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// LoginSession is a user's single sign-on session behind the provider's
// session cookie. The cookie value is a bearer secret, so the database keeps
// only its SHA-256; the SID is the public session ID put in ID tokens and
// logout tokens.
type LoginSession struct {
	ID              string // the cookie value; empty when found by SID
	SID             string
	Subject         string
	AuthenticatedAt time.Time
	ACR             string
	AMR             []string
	Remember        bool // the cookie outlives the browser session
	CreatedAt       time.Time
	ExpiresAt       time.Time
}

type loginSessionRow struct {
	SID             string    `db:"sid"`
	Subject         string    `db:"subject"`
	AuthenticatedAt time.Time `db:"authenticated_at"`
	ACR             string    `db:"acr"`
	AMR             string    `db:"amr"`
	Remember        bool      `db:"remember"`
	CreatedAt       time.Time `db:"created_at"`
	ExpiresAt       time.Time `db:"expires_at"`
}

// loginSessionColumns leaves out id, which only the caller knows in clear.
const loginSessionColumns = `sid, subject, authenticated_at, acr, amr, remember, created_at, expires_at`

func (r loginSessionRow) session(cookieValue string) (*LoginSession, error) {
	var amr []string
	if err := json.Unmarshal([]byte(r.AMR), &amr); err != nil {
		return nil, fmt.Errorf("decode amr of session %q: %w", r.SID, err)
	}
	return &LoginSession{
		ID:              cookieValue,
		SID:             r.SID,
		Subject:         r.Subject,
		AuthenticatedAt: r.AuthenticatedAt.UTC(),
		ACR:             r.ACR,
		AMR:             amr,
		Remember:        r.Remember,
		CreatedAt:       r.CreatedAt.UTC(),
		ExpiresAt:       r.ExpiresAt.UTC(),
	}, nil
}

func encodeAMR(amr []string) (string, error) {
	if amr == nil {
		amr = []string{}
	}
	b, err := json.Marshal(amr)
	return string(b), err
}

// CreateLoginSession stores a new session. AuthenticatedAt defaults to now.
// A cookie value or SID already taken gives ErrAlreadyExists.
func (s *Store) CreateLoginSession(ctx context.Context, ls *LoginSession) error {
	switch {
	case ls.ID == "":
		return errors.New("create login session: cookie value is empty")
	case ls.SID == "":
		return errors.New("create login session: SID is empty")
	case strings.TrimSpace(ls.Subject) == "":
		return errors.New("create login session: subject is empty")
	case ls.ExpiresAt.IsZero():
		return errors.New("create login session: no expiry")
	}
	amr, err := encodeAMR(ls.AMR)
	if err != nil {
		return fmt.Errorf("create login session: %w", err)
	}
	now := s.now()
	authAt := now
	if !ls.AuthenticatedAt.IsZero() {
		authAt = utc(ls.AuthenticatedAt)
	}
	exp := utc(ls.ExpiresAt)
	if _, err := s.exec(ctx, `INSERT INTO login_sessions (id, `+loginSessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		hashKey(ls.ID), ls.SID, ls.Subject, authAt, ls.ACR, amr, ls.Remember, now, exp); err != nil {
		return fmt.Errorf("create login session: %w", err)
	}
	ls.AuthenticatedAt, ls.CreatedAt, ls.ExpiresAt = authAt, now, exp
	return nil
}

// GetLoginSession returns the session behind a cookie value. An expired
// session is ErrNotFound.
func (s *Store) GetLoginSession(ctx context.Context, cookieValue string) (*LoginSession, error) {
	var row loginSessionRow
	if err := s.get(ctx, &row, `SELECT `+loginSessionColumns+` FROM login_sessions WHERE id = ? AND expires_at > ?`,
		hashKey(cookieValue), s.now()); err != nil {
		return nil, fmt.Errorf("load login session: %w", err)
	}
	return row.session(cookieValue)
}

// GetLoginSessionBySID returns a session by its public ID, for logout
// requests that name it. The cookie value is not known, so ID is empty. An
// expired session is ErrNotFound.
func (s *Store) GetLoginSessionBySID(ctx context.Context, sid string) (*LoginSession, error) {
	var row loginSessionRow
	if err := s.get(ctx, &row, `SELECT `+loginSessionColumns+` FROM login_sessions WHERE sid = ? AND expires_at > ?`,
		sid, s.now()); err != nil {
		return nil, fmt.Errorf("load login session %q: %w", sid, err)
	}
	return row.session("")
}

// TouchLoginSession moves the expiry of a live session, for sessions that
// slide with use. A missing or expired session is ErrNotFound.
func (s *Store) TouchLoginSession(ctx context.Context, cookieValue string, expiresAt time.Time) error {
	if err := s.execOne(ctx, `UPDATE login_sessions SET expires_at = ? WHERE id = ? AND expires_at > ?`,
		utc(expiresAt), hashKey(cookieValue), s.now()); err != nil {
		return fmt.Errorf("touch login session: %w", err)
	}
	return nil
}

// ReauthenticateLoginSession records that the session's user authenticated
// again: it stores ls.AuthenticatedAt (now when zero), ACR, AMR, Remember and
// ExpiresAt for the session whose cookie value is ls.ID. ls.Subject must be
// the session's subject: another user signing in needs a new session. A
// missing or expired session, or one of another subject, is ErrNotFound.
func (s *Store) ReauthenticateLoginSession(ctx context.Context, ls *LoginSession) error {
	if ls.ExpiresAt.IsZero() {
		return errors.New("reauthenticate login session: no expiry")
	}
	amr, err := encodeAMR(ls.AMR)
	if err != nil {
		return fmt.Errorf("reauthenticate login session: %w", err)
	}
	now := s.now()
	authAt := now
	if !ls.AuthenticatedAt.IsZero() {
		authAt = utc(ls.AuthenticatedAt)
	}
	exp := utc(ls.ExpiresAt)
	if err := s.execOne(ctx, `UPDATE login_sessions SET authenticated_at = ?, acr = ?, amr = ?, remember = ?, expires_at = ?
		WHERE id = ? AND subject = ? AND expires_at > ?`,
		authAt, ls.ACR, amr, ls.Remember, exp, hashKey(ls.ID), ls.Subject, now); err != nil {
		return fmt.Errorf("reauthenticate login session: %w", err)
	}
	ls.AuthenticatedAt, ls.ExpiresAt = authAt, exp
	return nil
}

// EndedSession is an SSO session that was ended, with the clients that
// took part in it, so that logout can reach them.
type EndedSession struct {
	SID       string
	Subject   string
	ClientIDs []string // sorted
}

// EndLoginSession ends the session behind a cookie value, expired or not,
// and returns it with the clients that took part in it: their list is gone
// with the session, so this is the last moment it can be read. Run it in
// the transaction that queues the back-channel logouts, so that the session
// ends if and only if they are queued. A missing session is ErrNotFound.
func (s *Store) EndLoginSession(ctx context.Context, cookieValue string) (*EndedSession, error) {
	var ended *EndedSession
	err := s.InTx(ctx, func(ctx context.Context) error {
		var row struct {
			SID     string `db:"sid"`
			Subject string `db:"subject"`
		}
		if err := s.get(ctx, &row, `DELETE FROM login_sessions WHERE id = ? RETURNING sid, subject`, hashKey(cookieValue)); err != nil {
			return err
		}
		clients, err := s.deleteSessionClients(ctx, row.SID)
		if err != nil {
			return err
		}
		ended = &EndedSession{SID: row.SID, Subject: row.Subject, ClientIDs: clients}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end login session: %w", err)
	}
	return ended, nil
}

// DeleteLoginSession ends the session behind a cookie value, expired or not,
// with its list of clients. A missing session is ErrNotFound.
func (s *Store) DeleteLoginSession(ctx context.Context, cookieValue string) error {
	_, err := s.EndLoginSession(ctx, cookieValue)
	return err
}

// EndLoginSessionsBySubject ends every session of a subject, expired or
// not, and returns them, sorted by SID, each with the clients that took part
// in it (see EndLoginSession).
func (s *Store) EndLoginSessionsBySubject(ctx context.Context, subject string) ([]*EndedSession, error) {
	var ended []*EndedSession
	err := s.InTx(ctx, func(ctx context.Context) error {
		var sids []string
		if err := s.selectAll(ctx, &sids, `DELETE FROM login_sessions WHERE subject = ? RETURNING sid`, subject); err != nil {
			return err
		}
		slices.Sort(sids)
		for _, sid := range sids {
			clients, err := s.deleteSessionClients(ctx, sid)
			if err != nil {
				return err
			}
			ended = append(ended, &EndedSession{SID: sid, Subject: subject, ClientIDs: clients})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end login sessions of %q: %w", subject, err)
	}
	return ended, nil
}

// DeleteLoginSessionsBySubject ends every session of a subject, expired or
// not, with their lists of clients, and returns the SIDs it ended, sorted.
func (s *Store) DeleteLoginSessionsBySubject(ctx context.Context, subject string) ([]string, error) {
	ended, err := s.EndLoginSessionsBySubject(ctx, subject)
	if err != nil {
		return nil, err
	}
	var sids []string
	for _, es := range ended {
		sids = append(sids, es.SID)
	}
	return sids, nil
}

// deleteSessionClients deletes a session's list of clients and returns it,
// sorted.
func (s *Store) deleteSessionClients(ctx context.Context, sid string) ([]string, error) {
	var ids []string
	if err := s.selectAll(ctx, &ids, `DELETE FROM login_session_clients WHERE sid = ? RETURNING client_id`, sid); err != nil {
		return nil, fmt.Errorf("delete clients of session %q: %w", sid, err)
	}
	slices.Sort(ids)
	return ids, nil
}

// AddSessionClient records that a client received tokens in a session, so
// logout reaches it. Adding a client twice is not an error; a missing or
// expired session is ErrNotFound. (A client added while the session is being
// deleted may leave a row behind; the janitor removes rows of sessions that
// no longer exist.)
func (s *Store) AddSessionClient(ctx context.Context, sid, clientID string) error {
	if clientID == "" {
		return errors.New("add session client: client ID is empty")
	}
	now := s.now()
	res, err := s.exec(ctx, `INSERT INTO login_session_clients (sid, client_id, created_at)
		SELECT ?, ?, ? WHERE EXISTS (SELECT 1 FROM login_sessions WHERE sid = ? AND expires_at > ?)
		ON CONFLICT (sid, client_id) DO NOTHING`,
		sid, clientID, now, sid, now)
	if err != nil {
		return fmt.Errorf("add client %q to session %q: %w", clientID, sid, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("add client %q to session %q: %w", clientID, sid, err)
	} else if n == 0 {
		// Either the client was there already or the session is not.
		if _, err := s.GetLoginSessionBySID(ctx, sid); err != nil {
			return fmt.Errorf("add client %q: %w", clientID, err)
		}
	}
	return nil
}

// ListSessionClients returns the IDs of the clients that took part in a
// session, sorted. An unknown session has none.
func (s *Store) ListSessionClients(ctx context.Context, sid string) ([]string, error) {
	var ids []string
	if err := s.selectAll(ctx, &ids, `SELECT client_id FROM login_session_clients WHERE sid = ?`, sid); err != nil {
		return nil, fmt.Errorf("list clients of session %q: %w", sid, err)
	}
	slices.Sort(ids)
	return ids, nil
}

// LiveSession is an SSO session that has not expired, with the clients
// that took part in it so far, as operators list them.
type LiveSession struct {
	LoginSession
	ClientIDs []string // sorted
}

// ListLoginSessionsBySubject returns a subject's sessions that have not
// expired, oldest first, each with its clients. The cookie values are not
// known, so ID is empty.
func (s *Store) ListLoginSessionsBySubject(ctx context.Context, subject string) ([]*LiveSession, error) {
	now := s.now()
	var rows []loginSessionRow
	if err := s.selectAll(ctx, &rows, `SELECT `+loginSessionColumns+` FROM login_sessions WHERE subject = ? AND expires_at > ? ORDER BY created_at, sid`,
		subject, now); err != nil {
		return nil, fmt.Errorf("list login sessions of %q: %w", subject, err)
	}
	var pairs []struct {
		SID      string `db:"sid"`
		ClientID string `db:"client_id"`
	}
	if err := s.selectAll(ctx, &pairs, `SELECT c.sid, c.client_id FROM login_session_clients c
		JOIN login_sessions s ON s.sid = c.sid WHERE s.subject = ? AND s.expires_at > ?`, subject, now); err != nil {
		return nil, fmt.Errorf("list clients of the login sessions of %q: %w", subject, err)
	}
	clients := map[string][]string{}
	for _, p := range pairs {
		clients[p.SID] = append(clients[p.SID], p.ClientID)
	}
	out := make([]*LiveSession, 0, len(rows))
	for _, r := range rows {
		ls, err := r.session("")
		if err != nil {
			return nil, err
		}
		ids := clients[r.SID]
		if ids == nil {
			ids = []string{}
		}
		slices.Sort(ids)
		out = append(out, &LiveSession{LoginSession: *ls, ClientIDs: ids})
	}
	return out, nil
}

// EndLoginSessionBySID ends one session of a subject, expired or not, and
// returns it with the clients that took part in it (see EndLoginSession).
// A session that does not exist, or is another subject's, is ErrNotFound.
func (s *Store) EndLoginSessionBySID(ctx context.Context, subject, sid string) (*EndedSession, error) {
	var ended *EndedSession
	err := s.InTx(ctx, func(ctx context.Context) error {
		var gone string
		if err := s.get(ctx, &gone, `DELETE FROM login_sessions WHERE sid = ? AND subject = ? RETURNING sid`, sid, subject); err != nil {
			return err
		}
		clients, err := s.deleteSessionClients(ctx, sid)
		if err != nil {
			return err
		}
		ended = &EndedSession{SID: sid, Subject: subject, ClientIDs: clients}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end login session %q of %q: %w", sid, subject, err)
	}
	return ended, nil
}

// CountLoginSessions returns how many SSO sessions have not expired, for
// the active sessions gauge.
func (s *Store) CountLoginSessions(ctx context.Context) (int64, error) {
	var n int64
	if err := s.get(ctx, &n, `SELECT COUNT(*) FROM login_sessions WHERE expires_at > ?`, s.now()); err != nil {
		return 0, fmt.Errorf("count login sessions: %w", err)
	}
	return n, nil
}
