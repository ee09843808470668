// Package totp generates and checks time-based one-time passwords
// (RFC 6238: SHA-1, 6 digits, 30-second steps, as every authenticator app
// expects). It reports the time step a code belongs to, so the caller can
// refuse a code whose step was already used.
package totp

import (
	"bytes"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"strings"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// Period is the length of a time step.
const Period = 30 * time.Second

// skew is how many steps before or after the current one are accepted, for
// clocks that drift and users who type slowly.
const skew = 1

// ErrInvalidCode reports a code that matches no step in the window.
var ErrInvalidCode = errors.New("invalid TOTP code")

// secretEncoding is base32 without padding, as otpauth:// URIs carry it.
var secretEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// Key is a new TOTP seed with what the enrolment page shows.
type Key struct {
	Secret []byte
	// Manual is the seed in base32, for typing into an app.
	Manual string
	// URI is the otpauth:// URI the QR code holds.
	URI string
	// QRCode is a PNG of URI as a data: URL.
	QRCode string
}

// Generate makes a new 160-bit seed for account at issuer.
func Generate(issuer, account string) (*Key, error) {
	k, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: account, SecretSize: 20})
	if err != nil {
		return nil, fmt.Errorf("generate TOTP seed: %w", err)
	}
	secret, err := secretEncoding.DecodeString(k.Secret())
	if err != nil {
		return nil, fmt.Errorf("generate TOTP seed: %w", err)
	}
	return Describe(issuer, account, secret)
}

// Describe returns the enrolment details of an existing seed.
func Describe(issuer, account string, secret []byte) (*Key, error) {
	manual := secretEncoding.EncodeToString(secret)
	k, err := otp.NewKeyFromURL(uriFor(issuer, account, manual))
	if err != nil {
		return nil, fmt.Errorf("describe TOTP seed: %w", err)
	}
	img, err := k.Image(240, 240)
	if err != nil {
		return nil, fmt.Errorf("draw TOTP QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("draw TOTP QR code: %w", err)
	}
	return &Key{
		Secret: secret,
		Manual: manual,
		URI:    k.URL(),
		QRCode: "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()),
	}, nil
}

func uriFor(issuer, account, secret string) string {
	v := url.Values{}
	v.Set("secret", secret)
	v.Set("issuer", issuer)
	v.Set("algorithm", "SHA1")
	v.Set("digits", "6")
	v.Set("period", "30")
	u := url.URL{Scheme: "otpauth", Host: "totp", Path: "/" + issuer + ":" + account, RawQuery: v.Encode()}
	return u.String()
}

// ParseSecret decodes a base32 seed as users and administrators type it:
// any case, spaces and dashes ignored, padding optional.
func ParseSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.NewReplacer(" ", "", "-", "", "=", "").Replace(s))
	b, err := secretEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("TOTP secret is not base32: %w", err)
	}
	if len(b) < 10 {
		return nil, errors.New("TOTP secret is shorter than 80 bits")
	}
	return b, nil
}

// Code returns the code of secret for the step that holds t.
func Code(secret []byte, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(secretEncoding.EncodeToString(secret), t, totp.ValidateOpts{
		Period: uint(Period / time.Second), Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1,
	})
}

// Step returns the time step that holds t.
func Step(t time.Time) int64 { return t.Unix() / int64(Period/time.Second) }

// Verify checks code against the steps around now and returns the step it
// matched. Every candidate is compared, so timing does not tell which.
func Verify(secret []byte, code string, now time.Time) (int64, error) {
	code = strings.NewReplacer(" ", "", "-", "").Replace(code)
	if len(code) != 6 {
		return 0, ErrInvalidCode
	}
	var match int64
	found := 0
	for d := -skew; d <= skew; d++ {
		t := now.Add(time.Duration(d) * Period)
		want, err := Code(secret, t)
		if err != nil {
			return 0, fmt.Errorf("verify TOTP code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			match, found = Step(t), found+1
		}
	}
	if found == 0 {
		return 0, ErrInvalidCode
	}
	return match, nil
}
