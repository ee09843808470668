package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/rfc8628"
)

var (
	_ rfc8628.RFC8628CoreStorage = (*Store)(nil)
	_ rfc8628.DeviceAuthStorage  = (*Store)(nil)
)

type deviceRow struct {
	Signature    string     `db:"signature"`
	RequestID    string     `db:"request_id"`
	State        int16      `db:"state"`
	Active       bool       `db:"active"`
	LastPolledAt *time.Time `db:"last_polled_at"`
	ExpiresAt    time.Time  `db:"expires_at"`
	Data         string     `db:"data"`
}

const deviceColumns = `signature, request_id, state, active, last_polled_at, expires_at, data`

// CreateDeviceAuthSession stores a device authorization request under its
// device code and user code signatures. A user code signature already taken
// gives fosite.ErrExistingUserCodeSignature, on which fosite draws a new code.
func (s *Store) CreateDeviceAuthSession(ctx context.Context, deviceCodeSignature, userCodeSignature string, req fosite.DeviceRequester) error {
	data, err := encodeRequest(req)
	if err != nil {
		return fmt.Errorf("store device request: %w", err)
	}
	exp := expiry(req, fosite.DeviceCode, s.now().Add(defaultRowLifetime))
	_, err = s.exec(ctx, `INSERT INTO device_codes
		(signature, user_code_signature, request_id, client_id, state, active, requested_at, expires_at, data)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		deviceCodeSignature, userCodeSignature, req.GetID(), req.GetClient().GetID(), int16(req.GetUserCodeState()), true,
		utc(req.GetRequestedAt()), exp, string(data))
	if errors.Is(err, ErrAlreadyExists) {
		var n int
		if cerr := s.get(ctx, &n, `SELECT COUNT(*) FROM device_codes WHERE user_code_signature = ?`, userCodeSignature); cerr == nil && n > 0 {
			return fosite.ErrExistingUserCodeSignature
		}
	}
	if err != nil {
		return fmt.Errorf("store device request: %w", err)
	}
	return nil
}

func (s *Store) decodeDevice(ctx context.Context, row deviceRow, sess fosite.Session) (*fosite.DeviceRequest, error) {
	req, _, err := s.decodeRequest(ctx, []byte(row.Data), sess)
	if err != nil {
		return nil, err
	}
	return &fosite.DeviceRequest{UserCodeState: fosite.UserCodeState(row.State), Request: *req}, nil
}

// GetDeviceCodeSession returns the device request of a device code. A
// device code that was already exchanged is not found, so fosite answers
// invalid_grant.
func (s *Store) GetDeviceCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.DeviceRequester, error) {
	var row deviceRow
	if err := s.get(ctx, &row, `SELECT `+deviceColumns+` FROM device_codes WHERE signature = ?`, signature); err != nil {
		return nil, fmt.Errorf("load device code: %w", err)
	}
	if !row.Active {
		return nil, fmt.Errorf("device code already used: %w", fosite.ErrNotFound)
	}
	return s.decodeDevice(ctx, row, session)
}

// InvalidateDeviceCodeSession marks a device code used. Only the first of
// concurrent exchanges succeeds; the others get fosite.ErrInvalidatedDeviceCode.
func (s *Store) InvalidateDeviceCodeSession(ctx context.Context, signature string) error {
	err := s.execOne(ctx, `UPDATE device_codes SET active = ? WHERE signature = ? AND active`, false, signature)
	if errors.Is(err, fosite.ErrNotFound) {
		return fmt.Errorf("invalidate device code: %w", fosite.ErrInvalidatedDeviceCode)
	}
	if err != nil {
		return fmt.Errorf("invalidate device code: %w", err)
	}
	return nil
}

// GetDeviceSessionByUserCode finds a pending or decided device request by
// the signature of its user code (what the verification page has), and
// returns its device code signature too.
func (s *Store) GetDeviceSessionByUserCode(ctx context.Context, userCodeSignature string, session fosite.Session) (*fosite.DeviceRequest, string, error) {
	var row deviceRow
	if err := s.get(ctx, &row, `SELECT `+deviceColumns+` FROM device_codes WHERE user_code_signature = ? AND active`, userCodeSignature); err != nil {
		return nil, "", fmt.Errorf("load device request by user code: %w", err)
	}
	req, err := s.decodeDevice(ctx, row, session)
	if err != nil {
		return nil, "", err
	}
	return req, row.Signature, nil
}

// DecideDeviceSession records the user's decision on a device request: its
// state (accepted or rejected), granted scopes and audience, and the session
// with the subject. It applies only while the request is undecided and
// active, so a user code cannot be approved twice.
func (s *Store) DecideDeviceSession(ctx context.Context, deviceCodeSignature string, req fosite.DeviceRequester) error {
	if req.GetUserCodeState() == fosite.UserCodeUnused {
		return errors.New("decide device request: state must be accepted or rejected")
	}
	data, err := encodeRequest(req)
	if err != nil {
		return fmt.Errorf("decide device request: %w", err)
	}
	err = s.execOne(ctx, `UPDATE device_codes SET state = ?, data = ? WHERE signature = ? AND state = ? AND active`,
		int16(req.GetUserCodeState()), string(data), deviceCodeSignature, int16(fosite.UserCodeUnused))
	if err != nil {
		return fmt.Errorf("decide device request: already decided or unknown: %w", err)
	}
	return nil
}

// DevicePoll is what the token endpoint needs to answer a device-code poll
// per RFC 8628 §3.5.
type DevicePoll struct {
	// TooFast is set when the previous poll was less than the interval ago
	// (answer slow_down).
	TooFast bool
	// Expired is set when the device code has expired (answer expired_token).
	Expired bool
}

// PollDeviceCode records a poll of a device code and reports whether it came
// too fast or after expiry. fosite checks neither for undecided requests.
func (s *Store) PollDeviceCode(ctx context.Context, signature string, interval time.Duration) (DevicePoll, error) {
	now := s.now()
	var row deviceRow
	// A code already exchanged is not found, however it is polled, so
	// fosite answers invalid_grant rather than slow_down or expired_token.
	if err := s.get(ctx, &row, `SELECT `+deviceColumns+` FROM device_codes WHERE signature = ? AND active`, signature); err != nil {
		return DevicePoll{}, fmt.Errorf("poll device code: %w", err)
	}
	if !row.ExpiresAt.After(now) {
		return DevicePoll{Expired: true}, nil
	}
	res, err := s.exec(ctx, `UPDATE device_codes SET last_polled_at = ?
		WHERE signature = ? AND (last_polled_at IS NULL OR last_polled_at <= ?)`, now, signature, now.Add(-interval))
	if err != nil {
		return DevicePoll{}, fmt.Errorf("poll device code: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return DevicePoll{}, fmt.Errorf("poll device code: %w", err)
	}
	return DevicePoll{TooFast: n == 0}, nil
}
