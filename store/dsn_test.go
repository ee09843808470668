package store

import (
	"strings"
	"testing"
)

// FuzzParseURL checks that no database URL makes parseURL panic, and that
// nothing it prints (errors or the display name) depends on the password:
// the same URL with another password of the same shape prints the same.
// (Looking for the password in what is printed is not enough: it may also
// be, say, the database's name, which is shown.)
func FuzzParseURL(f *testing.F) {
	for _, seed := range []string{
		"postgres://u:pw@localhost:5432/db?sslmode=disable",
		"postgresql://u:p%40ss@h/db",
		"sqlite:///tmp/x.db?_pragma=foo",
		"sqlite:x.db",
		"data/latchkey.db",
		"mysql://a:b@c/d",
		"postgres://:@/",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := parseURL(raw)
		if other, ok := withOtherPassword(raw); ok {
			tg2, err2 := parseURL(other)
			switch {
			case (err == nil) != (err2 == nil):
				t.Fatalf("another password of the same shape changes whether %q parses: %v, %v", raw, err, err2)
			case err != nil && err.Error() != err2.Error():
				t.Fatalf("the error depends on the password: %q, %q", err, err2)
			case err == nil && tg.display != tg2.display:
				t.Fatalf("the display depends on the password: %q, %q", tg.display, tg2.display)
			}
		}
		if err == nil && tg.dialect != postgres && tg.dialect != sqlite {
			t.Fatalf("unknown dialect %q", tg.dialect)
		}
	})
}

// withOtherPassword changes every letter and digit of what looks like the
// password of a URL's userinfo into another of the same kind (a hex digit
// stays one, so percent-escapes stay as valid as they were); ok is false
// when there is nothing to change.
func withOtherPassword(raw string) (string, bool) {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return "", false
	}
	// As url.Parse reads it: the authority ends at the first "/", "?" or
	// "#", and its userinfo at its last "@".
	authority, path := rest, ""
	if i := strings.IndexAny(rest, "/?#"); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	at := strings.LastIndexByte(authority, '@')
	if at < 0 {
		return "", false
	}
	userinfo, hostAndPath := authority[:at], authority[at+1:]+path
	user, pw, ok := strings.Cut(userinfo, ":")
	if !ok {
		return "", false
	}
	other := []byte(pw)
	changed := false
	for i, c := range other {
		for _, class := range []string{"0123456789", "abcdef", "ghijklmnopqrstuvwxyz", "ABCDEF", "GHIJKLMNOPQRSTUVWXYZ"} {
			if j := strings.IndexByte(class, c); j >= 0 {
				other[i], changed = class[(j+1)%len(class)], true
				break
			}
		}
	}
	return scheme + "://" + user + ":" + string(other) + "@" + hostAndPath, changed
}
