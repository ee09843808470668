package clientsecret

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
)

// hmacPrefix starts every hash of a server-generated secret; hmacVersion is
// the only version there is so far.
var (
	hmacPrefix  = []byte("$hmac-sha256$")
	hmacVersion = []byte("v=1")
)

func macOf(pepper, secret []byte) []byte {
	m := hmac.New(sha256.New, pepper)
	m.Write(secret)
	return m.Sum(nil)
}

func encodeHMAC(mac []byte) []byte {
	out := make([]byte, 0, len(hmacPrefix)+len(hmacVersion)+1+base64.RawURLEncoding.EncodedLen(len(mac)))
	out = append(out, hmacPrefix...)
	out = append(out, hmacVersion...)
	out = append(out, '$')
	return base64.RawURLEncoding.AppendEncode(out, mac)
}

// parseHMAC returns the MAC in a "$hmac-sha256$v=1$<base64url mac>" hash.
func parseHMAC(hash []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(hash, hmacPrefix)
	if !ok {
		return nil, errors.New("not an hmac-sha256 hash")
	}
	version, encoded, ok := bytes.Cut(rest, []byte("$"))
	if !ok {
		return nil, errors.New("malformed hmac-sha256 hash: no version")
	}
	if !bytes.Equal(version, hmacVersion) {
		return nil, errors.New("unsupported hmac-sha256 hash version")
	}
	if len(encoded) != base64.RawURLEncoding.EncodedLen(sha256.Size) {
		return nil, fmt.Errorf("malformed hmac-sha256 hash: MAC is %d characters, want %d", len(encoded), base64.RawURLEncoding.EncodedLen(sha256.Size))
	}
	mac, err := decodeCanonical(base64.RawURLEncoding, encoded)
	if err != nil || len(mac) != sha256.Size {
		return nil, errors.New("malformed hmac-sha256 hash: MAC is not base64url")
	}
	return mac, nil
}

// compareHMAC tries the current pepper, then the old ones, so that hashes
// made before a rotation of the system secret still verify.
func (h *Hasher) compareHMAC(hash, secret []byte) error {
	want, err := parseHMAC(hash)
	if err != nil {
		return err
	}
	for _, p := range h.peppers {
		if hmac.Equal(macOf(p, secret), want) {
			return nil
		}
	}
	return fmt.Errorf("hmac-sha256 hash: %w", ErrMismatch)
}
