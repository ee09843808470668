package provider

import (
	"crypto/sha256"
	"encoding/base64"
)

// scriptHash returns the CSP source that allows one inline script.
func scriptHash(script string) string {
	sum := sha256.Sum256([]byte(script))
	return "sha256-" + base64.StdEncoding.EncodeToString(sum[:])
}
