package passkey

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey-oidc/latchkey/store"
)

// Authentication method references (RFC 8176) an assertion reports.
const (
	// AMRHardwareKey is a device-bound key: one the authenticator says it
	// cannot back up (its backup-eligible flag is not set).
	AMRHardwareKey = "hwk"
	// AMRSoftwareKey is a synced passkey: one that can leave the device.
	AMRSoftwareKey = "swk"
	// AMRMultiFactor is added when the authenticator verified the user (PIN
	// or biometric) on top of possession of the key.
	AMRMultiFactor = "mfa"
)

// Assertion is a verified login: what to record with
// store.UpdateWebAuthnSignCount and what to report in the session.
type Assertion struct {
	// CredentialID is the credential used, unpadded base64url.
	CredentialID string
	// Credential is the credential's go-webauthn JSON, updated by the login
	// (flags and counter).
	Credential json.RawMessage
	// SignCount is the counter the authenticator presented. It is not
	// compared with the stored one here; the store refuses a regression.
	SignCount uint32
	// UserVerified reports that the authenticator verified the user.
	UserVerified bool
	// AMR is AMRHardwareKey or AMRSoftwareKey, followed by AMRMultiFactor
	// when the user was verified.
	AMR []string
}

// BeginLogin starts using one of a's credentials as a second factor: the
// browser is offered exactly those credentials. An account without any
// gives ErrNoCredentials.
func (p *Passkeys) BeginLogin(a Account) (options json.RawMessage, state []byte, err error) {
	u, err := newUser(a)
	if err != nil {
		return nil, nil, fmt.Errorf("begin passkey login: %w", err)
	}
	if len(u.credentials) == 0 {
		return nil, nil, fmt.Errorf("begin passkey login for user %q: %w", u.id, ErrNoCredentials)
	}
	assertion, session, err := p.webauthn.BeginLogin(u)
	if err != nil {
		return nil, nil, fmt.Errorf("begin passkey login for user %q: %w", u.id, err)
	}
	return p.beginLogin(secondFactor, assertion, session)
}

// BeginDiscoverableLogin starts a passwordless login: the browser offers
// whichever discoverable credential the user has for this relying party,
// and the assertion names its user.
func (p *Passkeys) BeginDiscoverableLogin() (options json.RawMessage, state []byte, err error) {
	assertion, session, err := p.webauthn.BeginDiscoverableLogin()
	if err != nil {
		return nil, nil, fmt.Errorf("begin discoverable passkey login: %w", err)
	}
	return p.beginLogin(discoverable, assertion, session)
}

func (p *Passkeys) beginLogin(c ceremony, assertion *protocol.CredentialAssertion, session *webauthn.SessionData) (json.RawMessage, []byte, error) {
	options, err := json.Marshal(assertion)
	if err != nil {
		return nil, nil, fmt.Errorf("begin %s: encode options: %w", c, err)
	}
	state, err := p.seal(c, session)
	if err != nil {
		return nil, nil, fmt.Errorf("begin %s: %w", c, err)
	}
	return options, state, nil
}

// FinishLogin verifies the browser's response to the options of BeginLogin
// for the same account. Refusals wrap ErrInvalidState, ErrCeremonyExpired,
// ErrUnknownCredential or ErrInvalidResponse.
func (p *Passkeys) FinishLogin(a Account, state []byte, response []byte) (Assertion, error) {
	u, err := newUser(a)
	if err != nil {
		return Assertion{}, fmt.Errorf("finish passkey login: %w", err)
	}
	session, err := p.openFor(secondFactor, state, u)
	if err != nil {
		return Assertion{}, fmt.Errorf("finish passkey login for user %q: %w", u.id, err)
	}
	parsed, err := parseAssertion(response)
	if err != nil {
		return Assertion{}, fmt.Errorf("finish passkey login for user %q: %w", u.id, err)
	}
	if !u.hasCredential(parsed.RawID) {
		return Assertion{}, fmt.Errorf("finish passkey login for user %q: credential %q: %w", u.id, encodeID(parsed.RawID), ErrUnknownCredential)
	}
	cred, err := p.webauthn.ValidateLogin(u, session, parsed)
	if err != nil {
		return Assertion{}, fmt.Errorf("finish passkey login for user %q: %w", u.id, verificationFailed(err))
	}
	asrt, err := newAssertion(parsed, cred)
	if err != nil {
		return Assertion{}, fmt.Errorf("finish passkey login for user %q: %w", u.id, err)
	}
	return asrt, nil
}

// FinishDiscoverableLogin verifies the browser's response to the options of
// BeginDiscoverableLogin. lookup returns the account whose user ID is the
// assertion's user handle; it should refuse disabled users itself, and
// return an error wrapping store.ErrNotFound or ErrUnknownCredential when
// there is no such user, which FinishDiscoverableLogin reports as
// ErrUnknownCredential. Other lookup errors are returned as they are.
// Refusals wrap ErrInvalidState, ErrCeremonyExpired, ErrUnknownCredential
// or ErrInvalidResponse.
func (p *Passkeys) FinishDiscoverableLogin(ctx context.Context, state []byte, response []byte,
	lookup func(ctx context.Context, userHandle []byte) (Account, error)) (Account, Assertion, error) {
	session, err := p.open(discoverable, state)
	if err != nil {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: %w", err)
	}
	parsed, err := parseAssertion(response)
	if err != nil {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: %w", err)
	}
	handle := parsed.Response.UserHandle
	if len(handle) == 0 || len(handle) > maxUserHandleLen {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: %w: user handle of %d bytes", ErrInvalidResponse, len(handle))
	}
	a, err := lookup(ctx, handle)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, ErrUnknownCredential) {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: user %q: %w: %w", handle, ErrUnknownCredential, err)
	} else if err != nil {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: look up user %q: %w", handle, err)
	}
	u, err := newUser(a)
	if err != nil {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: %w", err)
	}
	if !bytes.Equal(u.id, handle) {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login: lookup of user %q returned user %q: %w", handle, u.id, ErrUnknownCredential)
	}
	if !u.hasCredential(parsed.RawID) {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login for user %q: credential %q: %w", u.id, encodeID(parsed.RawID), ErrUnknownCredential)
	}
	_, cred, err := p.webauthn.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) { return u, nil }, session, parsed)
	if err != nil {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login for user %q: %w", u.id, verificationFailed(err))
	}
	asrt, err := newAssertion(parsed, cred)
	if err != nil {
		return Account{}, Assertion{}, fmt.Errorf("finish discoverable passkey login for user %q: %w", u.id, err)
	}
	return a, asrt, nil
}

// parseAssertion parses the browser's response to navigator.credentials.get.
func parseAssertion(response []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if err := checkResponseLen(response); err != nil {
		return nil, err
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, refused(ErrInvalidResponse, err)
	}
	return parsed, nil
}

// newAssertion reports a verified assertion.
func newAssertion(parsed *protocol.ParsedCredentialAssertionData, cred *webauthn.Credential) (Assertion, error) {
	flags := parsed.Response.AuthenticatorData.Flags
	count := parsed.Response.AuthenticatorData.Counter
	// go-webauthn keeps the old counter and raises CloneWarning when the new
	// one is not greater; the store makes that decision, so the record
	// carries the presented counter and is only saved if the store agrees.
	cred.Authenticator.SignCount = count
	cred.Authenticator.CloneWarning = false
	b, err := json.Marshal(cred)
	if err != nil {
		return Assertion{}, fmt.Errorf("encode credential: %w", err)
	}
	a := Assertion{
		CredentialID: encodeID(cred.ID),
		Credential:   b,
		SignCount:    count,
		UserVerified: flags.HasUserVerified(),
		AMR:          []string{AMRHardwareKey},
	}
	if flags.HasBackupEligible() {
		a.AMR[0] = AMRSoftwareKey
	}
	if a.UserVerified {
		a.AMR = append(a.AMR, AMRMultiFactor)
	}
	return a, nil
}
