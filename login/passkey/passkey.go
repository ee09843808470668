// Package passkey runs the WebAuthn ceremonies of the login app: registering
// a passkey or security key, using one as a second factor after a password,
// and signing in with a discoverable passkey alone.
//
// It wraps go-webauthn. The caller stores credentials (store.WebAuthnCredential)
// and keeps each ceremony's state between begin and finish, as opaque bytes
// it must protect from the browser (the login app seals them into a cookie).
// Verification failures are reported as a few sentinel errors the web layer
// can match with errors.Is, wrapping go-webauthn's details for the logs.
package passkey

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/latchkey-oidc/latchkey/store"
)

var (
	// ErrInvalidState reports ceremony state that is unreadable, belongs to
	// another kind of ceremony or to another user.
	ErrInvalidState = errors.New("passkey ceremony state is invalid")
	// ErrCeremonyExpired reports a ceremony finished after its timeout.
	ErrCeremonyExpired = errors.New("passkey ceremony expired")
	// ErrInvalidResponse reports a browser response that is malformed or
	// fails verification: wrong origin, challenge or signature, and so on.
	ErrInvalidResponse = errors.New("passkey could not be verified")
	// ErrUnknownCredential reports an assertion made with a credential that
	// is not registered (to this user).
	ErrUnknownCredential = errors.New("passkey is not registered")
	// ErrNoCredentials reports a second-factor login for a user without any
	// registered credential.
	ErrNoCredentials = errors.New("user has no passkeys")
)

const (
	// DefaultTimeout is the ceremony timeout when Config.Timeout is zero.
	DefaultTimeout = 5 * time.Minute
	// expiryGrace is added to the timeout the browser is given before the
	// state expires, so a ceremony the browser completed just in time is
	// not refused while its form is being posted.
	expiryGrace = time.Minute
	// maxResponseLen bounds the browser's response; attestations with
	// certificate chains are a few kilobytes.
	maxResponseLen = 64 << 10
	// maxStateLen bounds the state read back; it is well under 1 KiB plus
	// 100 bytes per allowed credential.
	maxStateLen = 64 << 10
	// maxUserHandleLen is WebAuthn's bound on user.id.
	maxUserHandleLen = 64
)

// Config describes the relying party.
type Config struct {
	// RPID is the relying party ID: the issuer's host name. Browsers refuse
	// IP addresses; use a name such as "localhost" in development.
	RPID string
	// RPDisplayName is shown by some authenticators; "Latchkey" if empty.
	RPDisplayName string
	// Origins are the origins the login pages are served from, such as
	// "https://id.example.com". Each host must be RPID or a subdomain of it.
	Origins []string
	// Timeout is how long the user has to complete a ceremony;
	// DefaultTimeout if zero.
	Timeout time.Duration
}

// Passkeys runs WebAuthn ceremonies for one relying party. It is safe for
// concurrent use.
type Passkeys struct {
	webauthn *webauthn.WebAuthn
	timeout  time.Duration
	now      func() time.Time
}

// New checks cfg and returns a Passkeys for it.
func New(cfg Config) (*Passkeys, error) {
	if cfg.RPID == "" {
		return nil, errors.New("passkey config: RP ID is empty")
	}
	if net.ParseIP(strings.Trim(cfg.RPID, "[]")) != nil {
		return nil, fmt.Errorf("passkey config: RP ID %q is an IP address, which browsers refuse; use a host name such as localhost", cfg.RPID)
	}
	if len(cfg.Origins) == 0 {
		return nil, errors.New("passkey config: no origins")
	}
	for _, o := range cfg.Origins {
		if err := checkOrigin(o, cfg.RPID); err != nil {
			return nil, fmt.Errorf("passkey config: %w", err)
		}
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("passkey config: negative timeout %v", cfg.Timeout)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RPDisplayName == "" {
		cfg.RPDisplayName = "Latchkey"
	}
	timeout := webauthn.TimeoutConfig{Timeout: cfg.Timeout, TimeoutUVD: cfg.Timeout}
	w, err := webauthn.New(&webauthn.Config{
		RPID:          cfg.RPID,
		RPDisplayName: cfg.RPDisplayName,
		RPOrigins:     cfg.Origins,
		// Attestation would identify the authenticator model; the login app
		// has no policy that needs it, and asking makes browsers prompt.
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			UserVerification:   protocol.VerificationPreferred,
		},
		// Expiry is enforced through the state's Expires, set by begin.
		Timeouts: webauthn.TimeoutsConfig{Login: timeout, Registration: timeout},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey config: %w", err)
	}
	return &Passkeys{webauthn: w, timeout: cfg.Timeout, now: time.Now}, nil
}

// checkOrigin checks that origin is a web origin the RP ID is valid for.
func checkOrigin(origin, rpID string) error {
	u, err := url.Parse(origin)
	if err != nil {
		return fmt.Errorf("origin %q: %w", origin, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("origin %q is not scheme://host[:port]", origin)
	}
	host := strings.ToLower(u.Hostname())
	rp := strings.ToLower(rpID)
	if host != rp && !strings.HasSuffix(host, "."+rp) {
		return fmt.Errorf("origin %q is not on RP ID %q or a subdomain of it", origin, rpID)
	}
	return nil
}

// Account is the user and their registered credentials.
type Account struct {
	User        *store.User
	Credentials []store.WebAuthnCredential
}

// user adapts an Account to go-webauthn's User.
type user struct {
	id          []byte
	name        string
	displayName string
	credentials []webauthn.Credential
}

func (u *user) WebAuthnID() []byte                         { return u.id }
func (u *user) WebAuthnName() string                       { return u.name }
func (u *user) WebAuthnDisplayName() string                { return u.displayName }
func (u *user) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

// newUser decodes an account's credentials. A stored credential that does
// not decode is an error: the store or the caller is broken.
func newUser(a Account) (*user, error) {
	if a.User == nil {
		return nil, errors.New("account has no user")
	}
	id := a.User.ID
	if id == "" || len(id) > maxUserHandleLen {
		return nil, fmt.Errorf("user ID %q cannot be a WebAuthn user handle (1 to %d bytes)", id, maxUserHandleLen)
	}
	u := &user{
		id:          []byte(id),
		name:        a.User.Username,
		displayName: profileName(a.User.Profile),
		credentials: make([]webauthn.Credential, 0, len(a.Credentials)),
	}
	if u.displayName == "" {
		u.displayName = u.name
	}
	if u.name == "" {
		u.name = id
		if u.displayName == "" {
			u.displayName = id
		}
	}
	for _, sc := range a.Credentials {
		var c webauthn.Credential
		if err := json.Unmarshal(sc.Credential, &c); err != nil {
			return nil, fmt.Errorf("decode WebAuthn credential %q of user %q: %w", sc.ID, id, err)
		}
		if encodeID(c.ID) != sc.ID {
			return nil, fmt.Errorf("decode WebAuthn credential %q of user %q: it holds credential %q", sc.ID, id, encodeID(c.ID))
		}
		// The store's counter is the one it compares against.
		c.Authenticator.SignCount = sc.SignCount
		u.credentials = append(u.credentials, c)
	}
	return u, nil
}

// profileName returns the "name" claim of a user's profile, if any.
func profileName(profile json.RawMessage) string {
	var p struct {
		Name string `json:"name"`
	}
	if len(profile) == 0 || json.Unmarshal(profile, &p) != nil {
		return ""
	}
	return strings.TrimSpace(p.Name)
}

// hasCredential reports whether id is one of u's credentials.
func (u *user) hasCredential(id []byte) bool {
	for _, c := range u.credentials {
		if bytes.Equal(c.ID, id) {
			return true
		}
	}
	return false
}

// encodeID is how credential IDs are written in store.WebAuthnCredential:
// unpadded base64url, as the browser's PublicKeyCredential.id.
func encodeID(id []byte) string {
	return base64.RawURLEncoding.EncodeToString(id)
}

// ceremony names what a state was begun for, so that state from one kind of
// ceremony cannot finish another.
type ceremony string

const (
	registration ceremony = "registration"
	secondFactor ceremony = "login"
	discoverable ceremony = "discoverable-login"
)

// state is what the caller keeps between begin and finish.
type state struct {
	Ceremony ceremony             `json:"ceremony"`
	Session  webauthn.SessionData `json:"session"`
}

// seal sets the session's expiry and encodes it with its ceremony.
func (p *Passkeys) seal(c ceremony, s *webauthn.SessionData) ([]byte, error) {
	s.Expires = p.now().Add(p.timeout + expiryGrace)
	b, err := json.Marshal(state{Ceremony: c, Session: *s})
	if err != nil {
		return nil, fmt.Errorf("encode %s state: %w", c, err)
	}
	return b, nil
}

// open decodes state for ceremony c and checks that it has not expired.
func (p *Passkeys) open(c ceremony, b []byte) (webauthn.SessionData, error) {
	if len(b) == 0 || len(b) > maxStateLen {
		return webauthn.SessionData{}, fmt.Errorf("%w: %d bytes", ErrInvalidState, len(b))
	}
	var st state
	if err := json.Unmarshal(b, &st); err != nil {
		return webauthn.SessionData{}, fmt.Errorf("%w: %w", ErrInvalidState, err)
	}
	switch {
	case st.Ceremony != c:
		return webauthn.SessionData{}, fmt.Errorf("%w: state of a %q ceremony, want %q", ErrInvalidState, st.Ceremony, c)
	case len(st.Session.Challenge) < 16 || st.Session.Expires.IsZero():
		return webauthn.SessionData{}, fmt.Errorf("%w: no challenge or expiry", ErrInvalidState)
	case (c == discoverable) != (len(st.Session.UserID) == 0):
		return webauthn.SessionData{}, fmt.Errorf("%w: user ID does not fit a %q ceremony", ErrInvalidState, c)
	case !p.now().Before(st.Session.Expires):
		return webauthn.SessionData{}, fmt.Errorf("%w at %v", ErrCeremonyExpired, st.Session.Expires.UTC())
	}
	return st.Session, nil
}

// openFor is open for a ceremony begun for u.
func (p *Passkeys) openFor(c ceremony, b []byte, u *user) (webauthn.SessionData, error) {
	s, err := p.open(c, b)
	if err != nil {
		return s, err
	}
	if !bytes.Equal(s.UserID, u.id) {
		return webauthn.SessionData{}, fmt.Errorf("%w: state of user %q, not %q", ErrInvalidState, s.UserID, u.id)
	}
	return s, nil
}

// checkResponseLen refuses empty and oversized responses before parsing.
func checkResponseLen(response []byte) error {
	if len(response) == 0 || len(response) > maxResponseLen {
		return fmt.Errorf("%w: response of %d bytes", ErrInvalidResponse, len(response))
	}
	return nil
}

// refused wraps a go-webauthn error in sentinel, keeping the library's
// debugging detail (which it leaves out of Error) for the logs, quoted
// because it spans lines and can hold what the browser sent.
func refused(sentinel, err error) error {
	if pe, ok := errors.AsType[*protocol.Error](err); ok && pe.DevInfo != "" {
		return fmt.Errorf("%w: %w (%q)", sentinel, err, strings.TrimSpace(pe.DevInfo))
	}
	return fmt.Errorf("%w: %w", sentinel, err)
}

// verificationFailed maps an error from go-webauthn's verification.
func verificationFailed(err error) error {
	if _, ok := errors.AsType[*protocol.ErrorUnknownCredential](err); ok {
		return refused(ErrUnknownCredential, err)
	}
	return refused(ErrInvalidResponse, err)
}
