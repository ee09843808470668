package login

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// Cookies of the login app. All are HttpOnly, SameSite=Lax, scoped to the
// login app's path, and Secure unless the app runs on plain http in dev.
const (
	// cookieAccount holds the account session's ID (a store row).
	cookieAccount = "latchkey_account"
	// cookieProgress holds a sealed signInProgress: who proved what so far
	// in a sign-in that is not finished.
	cookieProgress = "latchkey_signin"
	// cookieCeremony holds sealed state between the two halves of a
	// WebAuthn ceremony or an upstream sign-in.
	cookieCeremony = "latchkey_ceremony"
	// cookieCSRF holds the random value form tokens are derived from.
	cookieCSRF = "latchkey_csrf"
)

// cookieJar sets and reads the login app's cookies.
type cookieJar struct {
	path   string
	secure bool
	seal   *store.Sealer
	// csrfKey keys the form tokens; codeKey keys hashes of recovery and
	// email codes.
	csrfKey []byte
	codeKey []byte
	now     func() time.Time
}

func newCookieJar(path string, secure bool, secret []byte, old [][]byte, now func() time.Time) (*cookieJar, error) {
	seal, err := store.NewSealer("login-cookies", secret, old...)
	if err != nil {
		return nil, fmt.Errorf("login cookies: %w", err)
	}
	csrfKey, err := hkdf.Key(sha256.New, secret, nil, "latchkey login csrf", 32)
	if err != nil {
		return nil, err
	}
	codeKey, err := hkdf.Key(sha256.New, secret, nil, "latchkey login codes", 32)
	if err != nil {
		return nil, err
	}
	if path == "" {
		path = "/"
	}
	return &cookieJar{path: path, secure: secure, seal: seal, csrfKey: csrfKey, codeKey: codeKey, now: now}, nil
}

func (j *cookieJar) set(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{
		Name: name, Value: value, Path: j.path,
		HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
	}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

func (j *cookieJar) clear(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: "", Path: j.path, MaxAge: -1,
		HttpOnly: true, Secure: j.secure, SameSite: http.SameSiteLaxMode,
	})
}

// sealed is the envelope of a sealed cookie: the payload and its expiry.
type sealed struct {
	Exp  int64           `json:"exp"`
	Data json.RawMessage `json:"data"`
}

// setSealed seals v into cookie name for ttl. The cookie name is bound in,
// so one sealed cookie cannot be replayed as another.
func (j *cookieJar) setSealed(w http.ResponseWriter, name string, v any, ttl time.Duration) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("seal %s cookie: %w", name, err)
	}
	env, err := json.Marshal(sealed{Exp: j.now().Add(ttl).Unix(), Data: data})
	if err != nil {
		return fmt.Errorf("seal %s cookie: %w", name, err)
	}
	box, err := j.seal.Seal(env, []byte(name))
	if err != nil {
		return fmt.Errorf("seal %s cookie: %w", name, err)
	}
	j.set(w, name, base64.RawURLEncoding.EncodeToString(box), ttl)
	return nil
}

// errNoCookie reports a sealed cookie that is missing, forged or expired.
var errNoCookie = errors.New("no valid cookie")

// openSealed opens cookie name into v.
func (j *cookieJar) openSealed(r *http.Request, name string, v any) error {
	c, err := r.Cookie(name)
	if err != nil {
		return errNoCookie
	}
	box, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return errNoCookie
	}
	env, err := j.seal.Open(box, []byte(name))
	if err != nil {
		return errNoCookie
	}
	var s sealed
	if err := json.Unmarshal(env, &s); err != nil || j.now().Unix() >= s.Exp {
		return errNoCookie
	}
	if err := json.Unmarshal(s.Data, v); err != nil {
		return errNoCookie
	}
	return nil
}

// csrfToken returns the form token for this browser, setting the cookie it
// is derived from when the browser has none yet.
func (j *cookieJar) csrfToken(w http.ResponseWriter, r *http.Request) string {
	c, err := r.Cookie(cookieCSRF)
	value := ""
	if err == nil && len(c.Value) == 43 {
		value = c.Value
	} else {
		value = randomToken()
		j.set(w, cookieCSRF, value, 0)
		// Later reads in this request see the new value.
		r.AddCookie(&http.Cookie{Name: cookieCSRF, Value: value})
	}
	return j.csrfFor(value)
}

func (j *cookieJar) csrfFor(value string) string {
	m := hmac.New(sha256.New, j.csrfKey)
	m.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF reports whether a form carries the token of its browser's cookie.
func (j *cookieJar) checkCSRF(r *http.Request) bool {
	c, err := r.Cookie(cookieCSRF)
	if err != nil || c.Value == "" {
		return false
	}
	return hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(j.csrfFor(c.Value)))
}

// codeHash hashes a recovery or email code for storage and lookup. Codes
// are short, so the hash is keyed: a stolen table cannot be brute-forced
// without the system secret.
func (j *cookieJar) codeHash(parts ...string) string {
	m := hmac.New(sha256.New, j.codeKey)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil))
}

// randomToken returns 256 random bits, base64url-encoded (43 characters).
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b[:])
}
