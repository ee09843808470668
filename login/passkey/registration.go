package passkey

import (
	"encoding/json"
	"fmt"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// NewCredential is a verified registration, to be stored with
// store.AddWebAuthnCredential.
type NewCredential struct {
	// ID is the credential ID, unpadded base64url.
	ID string
	// Credential is go-webauthn's Credential as JSON.
	Credential json.RawMessage
	// SignCount is the authenticator's initial signature counter.
	SignCount uint32
}

// BeginRegistration starts registering a passkey or security key for a's
// user. It asks for a discoverable credential and user verification where
// the authenticator can, and excludes the credentials a already has. The
// options are the argument of navigator.credentials.create; the state is
// for FinishRegistration.
func (p *Passkeys) BeginRegistration(a Account) (options json.RawMessage, state []byte, err error) {
	u, err := newUser(a)
	if err != nil {
		return nil, nil, fmt.Errorf("begin passkey registration: %w", err)
	}
	exclude := webauthn.Credentials(u.credentials).CredentialDescriptors()
	creation, session, err := p.webauthn.BeginRegistration(u, webauthn.WithExclusions(exclude))
	if err != nil {
		return nil, nil, fmt.Errorf("begin passkey registration for user %q: %w", u.id, err)
	}
	if options, err = json.Marshal(creation); err != nil {
		return nil, nil, fmt.Errorf("begin passkey registration for user %q: encode options: %w", u.id, err)
	}
	if state, err = p.seal(registration, session); err != nil {
		return nil, nil, fmt.Errorf("begin passkey registration for user %q: %w", u.id, err)
	}
	return options, state, nil
}

// FinishRegistration verifies the browser's response to the options of
// BeginRegistration for the same account. Refusals wrap ErrInvalidState,
// ErrCeremonyExpired or ErrInvalidResponse.
func (p *Passkeys) FinishRegistration(a Account, state []byte, response []byte) (NewCredential, error) {
	u, err := newUser(a)
	if err != nil {
		return NewCredential{}, fmt.Errorf("finish passkey registration: %w", err)
	}
	session, err := p.openFor(registration, state, u)
	if err != nil {
		return NewCredential{}, fmt.Errorf("finish passkey registration for user %q: %w", u.id, err)
	}
	if err := checkResponseLen(response); err != nil {
		return NewCredential{}, fmt.Errorf("finish passkey registration for user %q: %w", u.id, err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return NewCredential{}, fmt.Errorf("finish passkey registration for user %q: %w", u.id, refused(ErrInvalidResponse, err))
	}
	cred, err := p.webauthn.CreateCredential(u, session, parsed)
	if err != nil {
		return NewCredential{}, fmt.Errorf("finish passkey registration for user %q: %w", u.id, refused(ErrInvalidResponse, err))
	}
	b, err := json.Marshal(cred)
	if err != nil {
		return NewCredential{}, fmt.Errorf("finish passkey registration for user %q: encode credential: %w", u.id, err)
	}
	return NewCredential{ID: encodeID(cred.ID), Credential: b, SignCount: cred.Authenticator.SignCount}, nil
}
