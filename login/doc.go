// Package login is Latchkey's login app: the pages where people sign in
// (password, TOTP, passkeys, email codes, recovery codes, upstream OpenID
// providers), consent, connect devices, sign out and manage their account.
//
// It owns users and their credentials (through package store) and talks to
// the provider only through the provider's admin API over HTTP — the
// challenge protocol written down in provider/README.md — so a company can
// replace it with its own app. It never imports the provider's packages.
package login
