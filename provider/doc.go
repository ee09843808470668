// Package provider is Latchkey's OpenID Provider: fosite composed on the
// store, the public OAuth 2.0 / OpenID Connect endpoints, the SSO session,
// the login, consent, logout and device challenges it hands to the login app,
// and the admin API the login app and operators call.
//
// The provider never sees a password. When a flow needs a user it stores the
// request in a challenge and sends the browser to the login app, which
// decides the challenge through the admin API; the provider then resumes the
// flow from what it stored. README.md in this directory describes the
// protocol for anyone writing their own login app.
package provider
