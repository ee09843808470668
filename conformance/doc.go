// Package conformance is Latchkey's own OpenID Connect conformance suite:
// a runner that implements the OpenID Foundation's OP certification test
// plans module by module, under the suite's names, black-box over HTTP
// against any issuer. It signs in through the login app's HTML pages
// (password and TOTP) with a scripted browser (package useragent) and
// prints a line per module variant: PASS, WARN, FAIL or SKIP with the
// reasons, named after the suite's conditions so a result can be compared
// with an official run.
//
// "go test ./conformance/" runs every plan against an in-process Latchkey
// (package latchkeytest); cmd/latchkey-conformance runs them against a
// deployment. conformance/oidf holds the configuration for running the
// official suite, and conformance/rp the tests with real relying-party
// libraries.
package conformance
