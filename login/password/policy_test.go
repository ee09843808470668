package password_test

import (
	_ "embed"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/latchkey-oidc/latchkey/login/password"
)

func TestPolicyCheck(t *testing.T) {
	def := password.DefaultPolicy()
	if def != (password.Policy{MinLength: 10, MaxLength: 256}) {
		t.Fatalf("DefaultPolicy() = %+v", def)
	}
	tests := []struct {
		name            string
		policy          password.Policy
		password        string
		username, email string
		want            error // nil: accepted
	}{
		{"fine", def, "correct horse battery", "alice", "alice@example.test", nil},
		{"exactly the minimum", def, "kq7!vz2#mw", "", "", nil},
		{"one short", def, "kq7!vz2#m", "", "", password.ErrTooShort},
		{"empty", def, "", "", "", password.ErrTooShort},
		{"runes, not bytes: 10 runes in 20 bytes", def, "ñéüöäßøåçł", "", "", nil},
		{"runes, not bytes: 9 runes in 18 bytes", def, "ñéüöäßøåç", "", "", password.ErrTooShort},
		{"exactly the maximum", def, strings.Repeat("ab", 128), "", "", nil},
		{"one too long", def, strings.Repeat("ab", 128) + "c", "", "", password.ErrTooLong},
		{"long in runes", def, strings.Repeat("ж", 257), "", "", password.ErrTooLong},
		{"no maximum", password.Policy{MinLength: 1}, strings.Repeat("ab", 1000), "", "", nil},
		{"username", def, "alexander-the-great", "alexander", "", password.ErrContainsUsername},
		{"username, other case", def, "MyNameIsAlice!", "alice", "", password.ErrContainsUsername},
		{"username equal", def, "thisismyname", "ThisIsMyName", "", password.ErrContainsUsername},
		{"username with spaces around", def, "xxbob-smithxx", "  bob-smith ", "", password.ErrContainsUsername},
		{"short username elsewhere is fine", def, "shallow waters", "al", "", nil},
		{"short username equal", password.Policy{}, "Al", "al", "", password.ErrContainsUsername},
		{"email local part", def, "jdoe.1984.secret", "someone", "JDoe.1984@example.test", password.ErrContainsEmail},
		{"email without @", def, "xx-jane.doe-xx", "", "jane.doe", password.ErrContainsEmail},
		{"email domain is fine", def, "example.test rocks", "", "bob@example.test", nil},
		{"common", def, "qwertyuiop", "", "", password.ErrCommon},
		{"common, other case", def, "Password123", "", "", password.ErrCommon},
		{"common but short is too short", def, "iloveyou", "", "", password.ErrTooShort},
		{"common under a lower minimum", password.Policy{MinLength: 8}, "iloveyou", "", "", password.ErrCommon},
		{"common with more is fine", def, "password123 but longer", "", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check(tt.password, tt.username, tt.email)
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("Check = %v, want %v", err, tt.want)
			}
			var v *password.Violation
			if !errors.As(err, &v) || v.Message == "" || v.Rule != tt.want {
				t.Fatalf("Check = %#v, want a *Violation of %v with a message", err, tt.want)
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("message %q repeats the password", err)
			}
		})
	}
}

func TestPolicyMessages(t *testing.T) {
	p := password.Policy{MinLength: 12, MaxLength: 64}
	if err := p.Check("short", "", ""); err == nil || !strings.Contains(err.Error(), "12") {
		t.Errorf("too short: %v, want the minimum in the message", err)
	}
	if err := p.Check(strings.Repeat("x", 65), "", ""); err == nil || !strings.Contains(err.Error(), "64") {
		t.Errorf("too long: %v, want the maximum in the message", err)
	}
}

//go:embed common.txt
var commonText string

// TestCommonList checks the embedded list is what Check assumes: lower
// case, one per line, no duplicates, none shorter than 8 characters, and
// every entry refused.
func TestCommonList(t *testing.T) {
	lines := strings.Split(strings.TrimSuffix(commonText, "\n"), "\n")
	if len(lines) < 200 {
		t.Errorf("only %d common passwords", len(lines))
	}
	seen := map[string]bool{}
	p := password.Policy{MinLength: 8}
	for i, l := range lines {
		switch {
		case l != strings.TrimSpace(l) || l == "":
			t.Errorf("line %d %q: blank or padded", i+1, l)
		case l != strings.ToLower(l):
			t.Errorf("line %d %q: not lower case", i+1, l)
		case utf8.RuneCountInString(l) < 8:
			t.Errorf("line %d %q: shorter than 8", i+1, l)
		case seen[l]:
			t.Errorf("line %d %q: duplicate", i+1, l)
		}
		seen[l] = true
		if err := p.Check(l, "", ""); !errors.Is(err, password.ErrCommon) {
			t.Errorf("Check(%q) = %v, want ErrCommon", l, err)
		}
	}
}
