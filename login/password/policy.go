package password

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"
)

// The rules a Policy enforces. Check wraps one of them in a *Violation, so
// callers can tell them apart with errors.Is.
var (
	ErrTooShort         = errors.New("password is too short")
	ErrTooLong          = errors.New("password is too long")
	ErrContainsUsername = errors.New("password contains the username")
	ErrContainsEmail    = errors.New("password contains the email address")
	ErrCommon           = errors.New("password is too common")
)

// A Violation is a password a Policy refuses. Its message is written for
// the user who chose the password, so a page may show it as it is.
type Violation struct {
	Rule    error // ErrTooShort, ErrTooLong, …
	Message string
}

func (v *Violation) Error() string { return v.Message }
func (v *Violation) Unwrap() error { return v.Rule }

// Policy decides which new passwords are acceptable. Lengths count
// characters (runes), not bytes, so a password in any script is measured
// the same way.
type Policy struct {
	MinLength int // zero: no minimum
	MaxLength int // zero: no maximum
}

// DefaultPolicy asks for 10 to 256 characters. The maximum is generous for
// passphrases and password managers and still bounds the work of hashing.
func DefaultPolicy() Policy {
	return Policy{MinLength: 10, MaxLength: 256}
}

// minContained is the shortest username or email local part that a
// password may not contain; shorter ones it may only not equal, or "al"
// would forbid every password with "al" in it.
const minContained = 3

// Check returns nil if password is acceptable for the user with username
// and email (either may be empty), or a *Violation saying why not: too
// short, too long, the username or the email's local part in it (ignoring
// case), or one of the most common passwords (ignoring case).
func (p Policy) Check(password, username, email string) error {
	n := utf8.RuneCountInString(password)
	switch {
	case n < p.MinLength:
		return &Violation{ErrTooShort, fmt.Sprintf("password must be at least %d characters long", p.MinLength)}
	case p.MaxLength > 0 && n > p.MaxLength:
		return &Violation{ErrTooLong, fmt.Sprintf("password must be at most %d characters long", p.MaxLength)}
	}
	lower := strings.ToLower(password)
	if contains(lower, username) {
		return &Violation{ErrContainsUsername, "password must not contain the username"}
	}
	local := email
	if i := strings.LastIndexByte(email, '@'); i >= 0 {
		local = email[:i]
	}
	if contains(lower, local) {
		return &Violation{ErrContainsEmail, "password must not contain the email address"}
	}
	if _, ok := commonPasswords()[lower]; ok {
		return &Violation{ErrCommon, "password is one of the most common passwords; choose one that is harder to guess"}
	}
	return nil
}

// contains reports whether the lower-cased password holds name: anywhere
// for names of minContained characters or more, as the whole password for
// shorter ones.
func contains(lowerPassword, name string) bool {
	name = strings.ToLower(strings.TrimSpace(name))
	switch {
	case name == "":
		return false
	case utf8.RuneCountInString(name) < minContained:
		return lowerPassword == name
	}
	return strings.Contains(lowerPassword, name)
}

//go:embed common.txt
var commonText string

// commonPasswords is the set of common.txt, parsed on first use. It is
// never written after that.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set := make(map[string]struct{}, 512)
	sc := bufio.NewScanner(strings.NewReader(commonText))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			set[strings.ToLower(line)] = struct{}{}
		}
	}
	return set
})
