package passkey

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// authenticator is a software WebAuthn authenticator and the browser in
// front of it, enough to drive go-webauthn through "none" attestation and
// ES256 assertions: go-webauthn ships no such thing.
type authenticator struct {
	// origin is what the "browser" puts in clientDataJSON.
	origin string
	// backupEligible sets the BE (and BS) flags: a synced passkey.
	backupEligible bool
	// verifiesUser sets the UV flag: the user gave a PIN or biometric.
	verifiesUser bool
	// counterStep is added to a credential's counter on each assertion;
	// zero models an authenticator without a counter.
	counterStep uint32

	creds []*virtualCredential
}

type virtualCredential struct {
	id         []byte
	key        *ecdsa.PrivateKey
	rpID       string
	userHandle []byte
	counter    uint32
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

var b64 = base64.RawURLEncoding

func newAuthenticator(origin string) *authenticator {
	return &authenticator{origin: origin, counterStep: 1}
}

// creationOptions is the part of the registration options the authenticator reads.
type creationOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID          string `json:"id"`
			Name        string `json:"name"`
			DisplayName string `json:"displayName"`
		} `json:"user"`
		PubKeyCredParams       []credParam  `json:"pubKeyCredParams"`
		Timeout                int          `json:"timeout"`
		ExcludeCredentials     []descriptor `json:"excludeCredentials"`
		AuthenticatorSelection struct {
			ResidentKey        string `json:"residentKey"`
			RequireResidentKey *bool  `json:"requireResidentKey"`
			UserVerification   string `json:"userVerification"`
		} `json:"authenticatorSelection"`
		Attestation string `json:"attestation"`
	} `json:"publicKey"`
}

type credParam struct {
	Type string `json:"type"`
	Alg  int    `json:"alg"`
}

type descriptor struct {
	Type       string   `json:"type"`
	ID         string   `json:"id"`
	Transports []string `json:"transports"`
}

// requestOptions is the part of the login options the authenticator reads.
type requestOptions struct {
	PublicKey struct {
		Challenge        string       `json:"challenge"`
		RPID             string       `json:"rpId"`
		Timeout          int          `json:"timeout"`
		UserVerification string       `json:"userVerification"`
		AllowCredentials []descriptor `json:"allowCredentials"`
	} `json:"publicKey"`
}

func (a *authenticator) flags() byte {
	f := byte(flagUP)
	if a.verifiesUser {
		f |= flagUV
	}
	if a.backupEligible {
		f |= flagBE | flagBS
	}
	return f
}

func (a *authenticator) clientData(typ, challenge string) []byte {
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.origin, "crossOrigin": false})
	if err != nil {
		panic(err)
	}
	return b
}

// create answers navigator.credentials.create(options) with a new ES256
// credential, as the JSON the login page posts.
func (a *authenticator) create(t testing.TB, options json.RawMessage) []byte {
	t.Helper()
	b, err := a.tryCreate(options)
	if err != nil {
		t.Fatalf("authenticator: %v", err)
	}
	return b
}

func (a *authenticator) tryCreate(options json.RawMessage) ([]byte, error) {
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("creation options: %w", err)
	}
	pk := o.PublicKey
	if !slices.ContainsFunc(pk.PubKeyCredParams, func(p credParam) bool {
		return p.Type == "public-key" && p.Alg == -7
	}) {
		return nil, errors.New("ES256 not offered")
	}
	userHandle, err := b64.DecodeString(pk.User.ID)
	if err != nil {
		return nil, fmt.Errorf("user.id: %w", err)
	}
	for _, ex := range pk.ExcludeCredentials {
		for _, c := range a.creds {
			if b64.EncodeToString(c.id) == ex.ID && c.rpID == pk.RP.ID {
				return nil, errors.New("InvalidStateError: credential excluded")
			}
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	c := &virtualCredential{id: make([]byte, 32), key: key, rpID: pk.RP.ID, userHandle: userHandle}
	if _, err := rand.Read(c.id); err != nil {
		return nil, err
	}
	a.creds = append(a.creds, c)

	ecdh, err := key.PublicKey.ECDH()
	if err != nil {
		return nil, err
	}
	point := ecdh.Bytes() // 0x04 || x || y
	coseKey, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: point[1:33], -3: point[33:65]})
	if err != nil {
		return nil, err
	}
	rpIDHash := sha256.Sum256([]byte(c.rpID))
	authData := append([]byte{}, rpIDHash[:]...)
	authData = append(authData, a.flags()|flagAT)
	authData = binary.BigEndian.AppendUint32(authData, c.counter)
	authData = append(authData, make([]byte, 16)...) // AAGUID: none
	authData = binary.BigEndian.AppendUint16(authData, uint16(len(c.id)))
	authData = append(authData, c.id...)
	authData = append(authData, coseKey...)
	attObj, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": authData})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id":                      b64.EncodeToString(c.id),
		"rawId":                   b64.EncodeToString(c.id),
		"type":                    "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(a.clientData("webauthn.create", pk.Challenge)),
			"attestationObject": b64.EncodeToString(attObj),
			"transports":        []string{"usb"},
		},
		"clientExtensionResults": map[string]any{},
	})
}

// get answers navigator.credentials.get(options) with an assertion by the
// first of its credentials the options allow (any, for a discoverable
// login), as the JSON the login page posts.
func (a *authenticator) get(t testing.TB, options json.RawMessage) []byte {
	t.Helper()
	b, err := a.tryGet(options)
	if err != nil {
		t.Fatalf("authenticator: %v", err)
	}
	return b
}

func (a *authenticator) tryGet(options json.RawMessage) ([]byte, error) {
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("request options: %w", err)
	}
	pk := o.PublicKey
	var c *virtualCredential
	for _, cand := range a.creds {
		if cand.rpID != pk.RPID {
			continue
		}
		if len(pk.AllowCredentials) == 0 || slices.ContainsFunc(pk.AllowCredentials, func(d descriptor) bool {
			return d.ID == b64.EncodeToString(cand.id)
		}) {
			c = cand
			break
		}
	}
	if c == nil {
		return nil, errors.New("NotAllowedError: no credential")
	}
	return a.assert(c, pk.Challenge)
}

// assert signs an assertion by c over challenge.
func (a *authenticator) assert(c *virtualCredential, challenge string) ([]byte, error) {
	c.counter += a.counterStep
	rpIDHash := sha256.Sum256([]byte(c.rpID))
	authData := append([]byte{}, rpIDHash[:]...)
	authData = append(authData, a.flags())
	authData = binary.BigEndian.AppendUint32(authData, c.counter)
	clientData := a.clientData("webauthn.get", challenge)
	clientDataHash := sha256.Sum256(clientData)
	digest := sha256.Sum256(append(append([]byte{}, authData...), clientDataHash[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.key, digest[:])
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{
		"id":                      b64.EncodeToString(c.id),
		"rawId":                   b64.EncodeToString(c.id),
		"type":                    "public-key",
		"authenticatorAttachment": "cross-platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData),
			"authenticatorData": b64.EncodeToString(authData),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(c.userHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}
