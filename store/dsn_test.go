package store

import (
	"strings"
	"testing"
)

// FuzzParseURL checks that no database URL makes parseURL panic, and that
// nothing it prints (errors or the display name) contains the password.
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
		if err != nil {
			if pw := passwordOf(raw); len(pw) >= 4 && strings.Contains(err.Error(), pw) {
				t.Fatalf("error %q contains the password %q", err, pw)
			}
			return
		}
		if tg.password != "" && len(tg.password) >= 4 && strings.Contains(tg.display, tg.password) {
			t.Fatalf("display %q contains the password", tg.display)
		}
		if tg.dialect != postgres && tg.dialect != sqlite {
			t.Fatalf("unknown dialect %q", tg.dialect)
		}
	})
}

// passwordOf extracts what looks like the password of a URL's userinfo.
func passwordOf(raw string) string {
	_, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return ""
	}
	userinfo, _, ok := strings.Cut(rest, "@")
	if !ok {
		return ""
	}
	_, pw, _ := strings.Cut(userinfo, ":")
	return pw
}
