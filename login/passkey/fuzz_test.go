package passkey

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/go-webauthn/webauthn/protocol"
)

// FuzzFinishLogin feeds FinishLogin arbitrary browser responses: it must
// refuse them with one of the package's errors, never panic, and never
// accept an assertion other than one the authenticator signed.
func FuzzFinishLogin(f *testing.F) {
	p := newTestPasskeys(f)
	a := alice()
	auth := newAuthenticator(testOrigin)
	register(f, p, &a, auth)
	options, state, err := p.BeginLogin(a)
	if err != nil {
		f.Fatalf("BeginLogin: %v", err)
	}
	good := auth.get(f, options)
	f.Add(good)
	for _, g := range garbage {
		f.Add(g)
	}
	// The same assertion with its fields swapped around.
	var m map[string]any
	if err := json.Unmarshal(good, &m); err != nil {
		f.Fatal(err)
	}
	resp := m["response"].(map[string]any)
	resp["authenticatorData"], resp["clientDataJSON"] = resp["clientDataJSON"], resp["authenticatorData"]
	swapped, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(swapped)

	f.Fuzz(func(t *testing.T, response []byte) {
		got, err := p.FinishLogin(a, state, response)
		if err != nil {
			if !errors.Is(err, ErrInvalidResponse) && !errors.Is(err, ErrUnknownCredential) {
				t.Fatalf("FinishLogin error %v wraps no sentinel", err)
			}
			return
		}
		// Only a response carrying the authenticator's signature over this
		// challenge can pass; JSON spelling may differ.
		var in, orig struct {
			Response struct {
				Signature         protocol.URLEncodedBase64 `json:"signature"`
				AuthenticatorData protocol.URLEncodedBase64 `json:"authenticatorData"`
			} `json:"response"`
		}
		if json.Unmarshal(response, &in) != nil || json.Unmarshal(good, &orig) != nil ||
			!bytes.Equal(in.Response.Signature, orig.Response.Signature) ||
			!bytes.Equal(in.Response.AuthenticatorData, orig.Response.AuthenticatorData) ||
			got.CredentialID != a.Credentials[0].ID {
			t.Fatalf("FinishLogin accepted %q", response)
		}
	})
}

// FuzzFinishRegistration feeds FinishRegistration arbitrary browser
// responses, whose CBOR attestation objects go-webauthn decodes: it must
// refuse them with ErrInvalidResponse or accept them, never panic.
// ("none" attestation is unsigned, so a changed key is a valid
// registration.)
func FuzzFinishRegistration(f *testing.F) {
	p := newTestPasskeys(f)
	a := alice()
	options, state, err := p.BeginRegistration(a)
	if err != nil {
		f.Fatalf("BeginRegistration: %v", err)
	}
	f.Add(newAuthenticator(testOrigin).create(f, options))
	for _, g := range garbage {
		f.Add(g)
	}

	f.Fuzz(func(t *testing.T, response []byte) {
		got, err := p.FinishRegistration(a, state, response)
		if err != nil {
			if !errors.Is(err, ErrInvalidResponse) {
				t.Fatalf("FinishRegistration error %v wraps no sentinel", err)
			}
			return
		}
		if got.ID == "" || !json.Valid(got.Credential) {
			t.Fatalf("FinishRegistration accepted %q as %+v", response, got)
		}
	})
}
