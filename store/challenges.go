package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ChallengeKind tells apart the challenges the provider hands to the login
// app; a challenge of one kind is never found as another.
type ChallengeKind string

// The kinds of challenge.
const (
	ChallengeLogin   ChallengeKind = "login"
	ChallengeConsent ChallengeKind = "consent"
	ChallengeLogout  ChallengeKind = "logout"
	ChallengeDevice  ChallengeKind = "device"
)

func (k ChallengeKind) valid() bool {
	switch k {
	case ChallengeLogin, ChallengeConsent, ChallengeLogout, ChallengeDevice:
		return true
	}
	return false
}

// ChallengeState is where a challenge is in its one-way life: pending until
// the login app decides it, accepted or rejected until the provider consumes
// the decision, then used.
type ChallengeState string

// The states of a challenge.
const (
	ChallengePending  ChallengeState = "pending"
	ChallengeAccepted ChallengeState = "accepted"
	ChallengeRejected ChallengeState = "rejected"
	ChallengeUsed     ChallengeState = "used"
)

// Challenge is one step of the login, consent, logout or device flow that
// the provider hands to the login app and gets back decided. The ID is the
// bearer value handed out; the database keeps only its SHA-256.
type Challenge struct {
	ID        string
	Kind      ChallengeKind
	State     ChallengeState
	Subject   string
	ClientID  string
	SessionID string
	Request   json.RawMessage // what the provider needs to resume the flow
	Result    json.RawMessage // what the login app decided, with the decision
	CreatedAt time.Time
	DecidedAt *time.Time
	ExpiresAt time.Time
}

type challengeRow struct {
	Kind      string     `db:"kind"`
	State     string     `db:"state"`
	Subject   string     `db:"subject"`
	ClientID  string     `db:"client_id"`
	SessionID string     `db:"session_id"`
	Request   string     `db:"request"`
	Result    string     `db:"result"`
	CreatedAt time.Time  `db:"created_at"`
	DecidedAt *time.Time `db:"decided_at"`
	ExpiresAt time.Time  `db:"expires_at"`
}

// challengeColumns leaves out id: rows are found by the hash of the ID and
// the challenge returned carries the ID the caller gave.
const challengeColumns = `kind, state, subject, client_id, session_id, request, result, created_at, decided_at, expires_at`

func (r challengeRow) challenge(id string) *Challenge {
	return &Challenge{
		ID:        id,
		Kind:      ChallengeKind(r.Kind),
		State:     ChallengeState(r.State),
		Subject:   r.Subject,
		ClientID:  r.ClientID,
		SessionID: r.SessionID,
		Request:   json.RawMessage(r.Request),
		Result:    json.RawMessage(r.Result),
		CreatedAt: r.CreatedAt.UTC(),
		DecidedAt: optUTC(r.DecidedAt),
		ExpiresAt: r.ExpiresAt.UTC(),
	}
}

// jsonOrEmptyObject returns raw as text for a JSON column, "{}" when it is empty.
func jsonOrEmptyObject(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "{}", nil
	}
	if !json.Valid(raw) {
		return "", errors.New("not valid JSON")
	}
	return string(raw), nil
}

// CreateChallenge stores a new, pending challenge that expires at
// c.ExpiresAt. A taken ID gives ErrAlreadyExists.
func (s *Store) CreateChallenge(ctx context.Context, c *Challenge) error {
	switch {
	case c.ID == "":
		return errors.New("create challenge: ID is empty")
	case !c.Kind.valid():
		return fmt.Errorf("create challenge: unknown kind %q", c.Kind)
	case c.State != "" && c.State != ChallengePending:
		return fmt.Errorf("create challenge: a new challenge is pending, not %q", c.State)
	case c.ExpiresAt.IsZero():
		return errors.New("create challenge: no expiry")
	}
	req, err := jsonOrEmptyObject(c.Request)
	if err != nil {
		return fmt.Errorf("create challenge: request: %w", err)
	}
	res, err := jsonOrEmptyObject(c.Result)
	if err != nil {
		return fmt.Errorf("create challenge: result: %w", err)
	}
	now := s.now()
	exp := utc(c.ExpiresAt)
	if _, err := s.exec(ctx, `INSERT INTO challenges (id, `+challengeColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		hashKey(c.ID), string(c.Kind), string(ChallengePending), c.Subject, c.ClientID, c.SessionID, req, res, now, nil, exp); err != nil {
		return fmt.Errorf("create %s challenge: %w", c.Kind, err)
	}
	c.State, c.Request, c.Result = ChallengePending, json.RawMessage(req), json.RawMessage(res)
	c.CreatedAt, c.DecidedAt, c.ExpiresAt = now, nil, exp
	return nil
}

// GetChallenge returns a challenge of the given kind in whatever state it
// is. An expired challenge, or one of another kind, is ErrNotFound.
func (s *Store) GetChallenge(ctx context.Context, kind ChallengeKind, id string) (*Challenge, error) {
	var row challengeRow
	if err := s.get(ctx, &row, `SELECT `+challengeColumns+` FROM challenges WHERE id = ? AND kind = ? AND expires_at > ?`,
		hashKey(id), string(kind), s.now()); err != nil {
		return nil, fmt.Errorf("load %s challenge: %w", kind, err)
	}
	return row.challenge(id), nil
}

// DecideChallenge accepts or rejects a pending challenge and records the
// result; a non-empty subject replaces the stored one (the login app names
// the user it authenticated). It is one conditional UPDATE, so of two
// concurrent decisions exactly one succeeds: the other, and any decision on a
// challenge no longer pending, gets ErrConflict. Missing, expired or of
// another kind is ErrNotFound. Whether the subject may change is the caller's
// policy; the stored subject only ever changes here, once.
func (s *Store) DecideChallenge(ctx context.Context, kind ChallengeKind, id string, state ChallengeState, result json.RawMessage, subject string) (*Challenge, error) {
	if state != ChallengeAccepted && state != ChallengeRejected {
		return nil, fmt.Errorf("decide %s challenge: a decision is accepted or rejected, not %q", kind, state)
	}
	res, err := jsonOrEmptyObject(result)
	if err != nil {
		return nil, fmt.Errorf("decide %s challenge: result: %w", kind, err)
	}
	now := s.now()
	var row challengeRow
	err = s.getWrite(ctx, &row, `UPDATE challenges SET state = ?, result = ?, decided_at = ?,
		subject = CASE WHEN ? = '' THEN subject ELSE ? END
		WHERE id = ? AND kind = ? AND state = ? AND expires_at > ?
		RETURNING `+challengeColumns,
		string(state), res, now, subject, subject, hashKey(id), string(kind), string(ChallengePending), now)
	if errors.Is(err, ErrNotFound) {
		cur, gerr := s.GetChallenge(ctx, kind, id)
		if gerr != nil {
			return nil, fmt.Errorf("decide %s challenge: %w", kind, gerr)
		}
		return nil, fmt.Errorf("decide %s challenge: already %s: %w", kind, cur.State, ErrConflict)
	}
	if err != nil {
		return nil, fmt.Errorf("decide %s challenge: %w", kind, err)
	}
	return row.challenge(id), nil
}

// ConsumeChallenge marks a decided challenge used and returns it as it was
// decided (State accepted or rejected), so the provider acts on each
// decision exactly once: of concurrent calls one gets the challenge, the
// others ErrConflict. A challenge still pending or already used is also
// ErrConflict; missing, expired or of another kind is ErrNotFound.
func (s *Store) ConsumeChallenge(ctx context.Context, kind ChallengeKind, id string) (*Challenge, error) {
	var c *Challenge
	err := s.InTx(ctx, func(ctx context.Context) error {
		var err error
		if c, err = s.GetChallenge(ctx, kind, id); err != nil {
			return err
		}
		if c.State != ChallengeAccepted && c.State != ChallengeRejected {
			return fmt.Errorf("challenge is %s: %w", c.State, ErrConflict)
		}
		// Conditional on the state just read: a concurrent consumer that
		// got there first leaves this UPDATE nothing to change (PostgreSQL
		// re-checks the row once the other transaction commits).
		err = s.execOne(ctx, `UPDATE challenges SET state = ? WHERE id = ? AND kind = ? AND state = ?`,
			string(ChallengeUsed), hashKey(id), string(kind), string(c.State))
		if errors.Is(err, ErrNotFound) {
			return fmt.Errorf("challenge already used: %w", ErrConflict)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("consume %s challenge: %w", kind, err)
	}
	return c, nil
}
