// Package rp holds end-to-end tests in which real relying-party libraries
// — golang.org/x/oauth2 with github.com/coreos/go-oidc/v3 in Go, and
// openid-client in Node — talk to a running Latchkey over HTTP, with a
// scripted browser (conformance/useragent) in the user's place, or headless
// Chromium (conformance/chromium) where the pages' scripts and iframes
// matter: single sign-on across applications and logout. They prove
// that the applications an organisation actually writes can complete every
// flow Latchkey offers, using nothing but discovery and the libraries'
// ordinary calls. The package has no non-test code.
package rp
