package main

import (
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/latchkey-oidc/latchkey/login/password"
	"github.com/latchkey-oidc/latchkey/store"
)

const usersUsage = `Usage:
  latchkey users create --username U --password P [--email E] [--email-verified]
                        [--name "Full Name"] [--totp-secret BASE32] [--skip-policy]
                                       create a user; prints it as JSON
  latchkey users list                  print every user as a JSON array
  latchkey users get USER              print a user as JSON
  latchkey users delete USER           delete a user and their second factors
  latchkey users set-password USER --password P [--skip-policy]
                                       replace a user's password
  latchkey users reset-mfa USER        remove a user's TOTP, passkeys and recovery codes
  latchkey users disable USER          stop a user from signing in
  latchkey users enable USER           let a disabled user sign in again

USER is a user's ID or username. Passwords must pass the password policy
(10 to 256 characters, not the username or email, not a common password)
unless --skip-policy is given, for imports. --password-file reads the
password from a file instead of the command line, where other local users
can see it ("--password-file /dev/stdin" reads standard input).
The commands work on the server's database directly, also while it runs.
Run "latchkey users <command> -h" for the flags.
`

// minTOTPSecret and maxTOTPSecret bound, in bytes, the TOTP seeds
// --totp-secret imports: 80 bits is the shortest that authenticator apps
// commonly issue, 64 bytes more than any HMAC-SHA512 seed needs.
const (
	minTOTPSecret = 10
	maxTOTPSecret = 64
)

// runUsers manages the login app's users on the store, hashing passwords as
// the login app does.
func runUsers(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	wantArgs := map[string]int{
		"create": 0, "list": 0, "get": 1, "delete": 1,
		"set-password": 1, "reset-mfa": 1, "disable": 1, "enable": 1,
	}
	sub, args, err := subcommand(stderr, "users", usersUsage, args, wantArgs)
	if err != nil {
		return err
	}
	n := wantArgs[sub]
	s := newSettings("users "+sub, stderr, withLog(slices.Concat(dbSettings, secretSettings)...)...)
	var f userFlags
	if sub == "create" {
		f.username = s.fs.String("username", "", "the username, unique ignoring case (required)")
		f.email = s.fs.String("email", "", "the email address")
		f.emailVerified = s.fs.Bool("email-verified", false, "mark the email address verified")
		f.name = s.fs.String("name", "", `the full name, the "name" claim`)
		f.totpSecret = s.fs.String("totp-secret", "", "a TOTP seed in base32 to import, enrolled and confirmed")
	}
	if sub == "create" || sub == "set-password" {
		f.password = s.fs.String("password", "", "the password (or --password-file)")
		f.passwordFile = s.fs.String("password-file", "", "a file whose first line is the password")
		f.skipPolicy = s.fs.Bool("skip-policy", false, "accept a password the policy refuses, e.g. for an import")
	}
	pos, err := s.parse(args)
	if err != nil {
		return err
	}
	if len(pos) != n {
		fmt.Fprintf(stderr, "latchkey users %s takes %d argument(s), got %d\n\n%s", sub, n, len(pos), usersUsage)
		return errUsage
	}
	var pw string
	if f.password != nil {
		if pw, err = f.readPassword(); err != nil {
			fmt.Fprintf(stderr, "latchkey users %s: %v\n", sub, err)
			return errUsage
		}
	}
	// What create can check without the store, it checks before it
	// touches the data directory.
	var seed []byte
	if sub == "create" {
		if strings.TrimSpace(*f.username) == "" {
			fmt.Fprintf(stderr, "latchkey users create: --username is required\n")
			return errUsage
		}
		if *f.totpSecret != "" {
			if seed, err = decodeTOTPSecret(*f.totpSecret); err != nil {
				return fmt.Errorf("--totp-secret: %w", err)
			}
		}
		if err := checkPolicy(pw, *f.username, *f.email, *f.skipPolicy); err != nil {
			return err
		}
	}
	log, err := s.newLogger(stderr)
	if err != nil {
		return err
	}
	// Every command prints whether the user has TOTP, which takes opening
	// the sealed seed: the store needs the system secret, as the server.
	st, _, _, err := s.openSealedStore(ctx, log)
	if err != nil {
		return err
	}
	defer st.Close()
	out := json.NewEncoder(stdout)
	out.SetIndent("", "  ")

	switch sub {
	case "create":
		u, err := createUser(ctx, st, f, pw, seed)
		if err != nil {
			return err
		}
		return printUser(ctx, st, out, u)
	case "list":
		all := []userView{}
		for after := ""; ; {
			page, err := st.ListUsers(ctx, after, 1000)
			if err != nil {
				return err
			}
			for _, u := range page {
				v, err := viewUser(ctx, st, u)
				if err != nil {
					return err
				}
				all = append(all, v)
			}
			if len(page) < 1000 {
				break
			}
			after = page[len(page)-1].Username
		}
		return out.Encode(all)
	}

	u, err := findUser(ctx, st, pos[0])
	if err != nil {
		return err
	}
	switch sub {
	case "delete":
		if err := st.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s (%s)\n", u.Username, u.ID)
		return nil
	case "set-password":
		if err := checkPolicy(pw, u.Username, u.Email, *f.skipPolicy); err != nil {
			return err
		}
		hash, err := password.Default().Hash(ctx, pw)
		if err != nil {
			return err
		}
		if err := st.SetPasswordHash(ctx, u.ID, hash); err != nil {
			return err
		}
		if u, err = st.GetUser(ctx, u.ID); err != nil {
			return err
		}
	case "reset-mfa":
		if err := st.ResetMFA(ctx, u.ID); err != nil {
			return err
		}
	case "disable", "enable":
		u.Disabled = sub == "disable"
		if err := st.UpdateUser(ctx, u); err != nil {
			return err
		}
	}
	return printUser(ctx, st, out, u)
}

// userFlags are the flags of create and set-password; those a command
// does not take are nil.
type userFlags struct {
	username, email, name, totpSecret *string
	password, passwordFile            *string
	emailVerified, skipPolicy         *bool
}

// readPassword returns --password or the first line of --password-file;
// exactly one must be given.
func (f userFlags) readPassword() (string, error) {
	switch {
	case *f.password != "" && *f.passwordFile != "":
		return "", errors.New("give --password or --password-file, not both")
	case *f.password != "":
		return *f.password, nil
	case *f.passwordFile == "":
		return "", errors.New("--password or --password-file is required")
	}
	b, err := os.ReadFile(*f.passwordFile)
	if err != nil {
		return "", fmt.Errorf("--password-file: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("--password-file %s: the first line is empty", *f.passwordFile)
	}
	return line, nil
}

// checkPolicy refuses a password the default policy refuses, unless skip
// is set; even then a password must not be empty.
func checkPolicy(pw, username, email string, skip bool) error {
	if skip {
		if pw == "" {
			return errors.New("--password: the password is empty")
		}
		return nil
	}
	if err := password.DefaultPolicy().Check(pw, username, email); err != nil {
		return fmt.Errorf("--password: %w (--skip-policy accepts it anyway)", err)
	}
	return nil
}

// createUser stores the user the flags describe, with password pw and
// TOTP seed (if not nil), in one transaction: a seed the store refuses
// leaves no user behind.
func createUser(ctx context.Context, st *store.Store, f userFlags, pw string, seed []byte) (*store.User, error) {
	hash, err := password.Default().Hash(ctx, pw)
	if err != nil {
		return nil, err
	}
	u := &store.User{
		Username:      *f.username,
		Email:         strings.TrimSpace(*f.email),
		EmailVerified: *f.emailVerified,
		PasswordHash:  hash,
	}
	if *f.name != "" {
		if u.Profile, err = json.Marshal(map[string]string{"name": *f.name}); err != nil {
			return nil, err
		}
	}
	err = st.InTx(ctx, func(ctx context.Context) error {
		if err := st.CreateUser(ctx, u); err != nil {
			return err
		}
		if seed == nil {
			return nil
		}
		if err := st.SaveTOTPEnrolment(ctx, u.ID, seed); err != nil {
			return err
		}
		// Step 0 is long past: every current code is accepted once.
		return st.ConfirmTOTP(ctx, u.ID, 0)
	})
	if errors.Is(err, store.ErrAlreadyExists) {
		return nil, fmt.Errorf("the username %q is taken", store.NormalizeUsername(*f.username))
	}
	if err != nil {
		return nil, err
	}
	return u, nil
}

// decodeTOTPSecret decodes a base32 seed as authenticator apps show it:
// any case, spaces anywhere, padding optional.
func decodeTOTPSecret(s string) ([]byte, error) {
	s = strings.ToUpper(strings.Join(strings.Fields(s), ""))
	s = strings.TrimRight(s, "=")
	seed, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
	if err != nil {
		return nil, errors.New("not base32 (the letters A–Z and digits 2–7)")
	}
	if len(seed) < minTOTPSecret || len(seed) > maxTOTPSecret {
		return nil, fmt.Errorf("a seed of %d bytes; want %d to %d", len(seed), minTOTPSecret, maxTOTPSecret)
	}
	return seed, nil
}

// findUser returns the user with ID ref or, failing that, username ref.
func findUser(ctx context.Context, st *store.Store, ref string) (*store.User, error) {
	u, err := st.GetUser(ctx, ref)
	if errors.Is(err, store.ErrNotFound) {
		u, err = st.GetUserByUsername(ctx, ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("there is no user %q", ref)
	}
	return u, err
}

// userView is a user as the commands print it: never the password hash.
type userView struct {
	ID            string          `json:"id"`
	Username      string          `json:"username"`
	Email         string          `json:"email"`
	EmailVerified bool            `json:"email_verified"`
	Profile       json.RawMessage `json:"profile"`
	Disabled      bool            `json:"disabled"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	MFA           mfaView         `json:"mfa"`
}

// mfaView says which second factors a user has.
type mfaView struct {
	TOTP          bool `json:"totp"` // a confirmed enrolment
	WebAuthn      int  `json:"webauthn"`
	RecoveryCodes int  `json:"recovery_codes"` // unused ones
}

func viewUser(ctx context.Context, st *store.Store, u *store.User) (userView, error) {
	v := userView{
		ID:            u.ID,
		Username:      u.Username,
		Email:         u.Email,
		EmailVerified: u.EmailVerified,
		Profile:       u.Profile,
		Disabled:      u.Disabled,
		CreatedAt:     u.CreatedAt,
		UpdatedAt:     u.UpdatedAt,
	}
	totp, err := st.GetTOTPEnrolment(ctx, u.ID)
	switch {
	case err == nil:
		v.MFA.TOTP = totp.Confirmed
	case !errors.Is(err, store.ErrNotFound):
		return userView{}, err
	}
	creds, err := st.ListWebAuthnCredentials(ctx, u.ID)
	if err != nil {
		return userView{}, err
	}
	v.MFA.WebAuthn = len(creds)
	if v.MFA.RecoveryCodes, err = st.CountUnusedRecoveryCodes(ctx, u.ID); err != nil {
		return userView{}, err
	}
	return v, nil
}

func printUser(ctx context.Context, st *store.Store, out *json.Encoder, u *store.User) error {
	v, err := viewUser(ctx, st, u)
	if err != nil {
		return err
	}
	return out.Encode(v)
}
