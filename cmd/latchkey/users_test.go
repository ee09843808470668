package main

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/login/password"
	"github.com/latchkey-oidc/latchkey/store"
)

// openTestStore opens the data directory's database as the server would,
// with its system secret, so a test can look behind the commands.
func openTestStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	secret := readFile(t, filepath.Join(dir, systemSecretFile))
	st, err := store.Open(context.Background(), filepath.Join(dir, "latchkey.db"), store.Options{SystemSecret: []byte(secret)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func decodeUser(t *testing.T, out string) userView {
	t.Helper()
	var v userView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not a user: %v\n%s", err, out)
	}
	return v
}

// runErr runs a command that must fail and returns its error.
func runErr(t *testing.T, args ...string) error {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	if err == nil {
		t.Fatalf("latchkey %s succeeded: %s", strings.Join(args, " "), out.String())
	}
	return err
}

func TestUsersCreateGetList(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	out := cli(t, "users", "create", "--data-dir", dir, "--username", "Alice", "--password", "correct horse battery",
		"--email", "alice@example.test", "--email-verified", "--name", "Alice Liddell")
	if strings.Contains(out, "argon2") || strings.Contains(out, "password") {
		t.Errorf("create printed the password or its hash: %s", out)
	}
	alice := decodeUser(t, out)
	if alice.ID == "" || alice.Username != "alice" || alice.Email != "alice@example.test" || !alice.EmailVerified ||
		alice.Disabled || alice.CreatedAt.IsZero() || alice.MFA != (mfaView{}) {
		t.Errorf("created %+v", alice)
	}
	var profile map[string]string
	if err := json.Unmarshal(alice.Profile, &profile); err != nil || profile["name"] != "Alice Liddell" {
		t.Errorf("profile %s", alice.Profile)
	}
	for _, key := range []string{`"id"`, `"username"`, `"email"`, `"email_verified"`, `"profile"`, `"disabled"`, `"created_at"`, `"mfa"`, `"totp"`, `"webauthn"`, `"recovery_codes"`} {
		if !strings.Contains(out, key) {
			t.Errorf("create output lacks %s: %s", key, out)
		}
	}

	u, err := openTestStore(t, dir).GetUser(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := password.Default().Verify(ctx, u.PasswordHash, "correct horse battery"); !ok || err != nil {
		t.Errorf("the stored hash %q does not verify the password: %v", u.PasswordHash, err)
	}

	for _, ref := range []string{alice.ID, "alice", "ALICE"} {
		if got := decodeUser(t, cli(t, "users", "get", ref, "--data-dir", dir)); got.ID != alice.ID {
			t.Errorf("get %s = %+v", ref, got)
		}
	}
	if err := runErr(t, "users", "get", "nobody", "--data-dir", dir); !strings.Contains(err.Error(), `no user "nobody"`) {
		t.Errorf("get nobody: %v", err)
	}

	cli(t, "users", "create", "--data-dir", dir, "--username", "bob", "--password", "another fine password", "--skip-policy")
	var list []userView
	if err := json.Unmarshal([]byte(cli(t, "users", "list", "--data-dir", dir)), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Username != "alice" || list[1].Username != "bob" {
		t.Errorf("list = %+v", list)
	}
}

func TestUsersCreateRefuses(t *testing.T) {
	cleanEnv(t)
	dir := filepath.Join(t.TempDir(), "data")
	cli(t, "users", "create", "--data-dir", dir, "--username", "carol", "--password", "a perfectly fine one")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("from a file, 2 lines\nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in the error; "" for a usage error
	}{
		{"no subcommand", nil, ""},
		{"unknown subcommand", []string{"frob"}, ""},
		{"no username", []string{"create", "--password", "a perfectly fine one"}, ""},
		{"no password", []string{"create", "--username", "dave"}, ""},
		{"password twice", []string{"create", "--username", "dave", "--password", "a perfectly fine one", "--password-file", pwFile}, ""},
		{"get without argument", []string{"get"}, ""},
		{"set-password without argument", []string{"set-password", "--password", "a perfectly fine one"}, ""},
		{"duplicate username", []string{"create", "--username", "Carol", "--password", "another fine password"}, `"carol" is taken`},
		{"too short", []string{"create", "--username", "dave", "--password", "short"}, "at least 10 characters"},
		{"common", []string{"create", "--username", "dave", "--password", "password123"}, "common"},
		{"contains the username", []string{"create", "--username", "dave", "--password", "dave is the best"}, "username"},
		{"contains the email", []string{"create", "--username", "dave", "--email", "d.smith@example.test", "--password", "I am d.smith, hi"}, "email"},
		{"empty password even skipping the policy", []string{"create", "--username", "dave", "--password-file", os.DevNull, "--skip-policy"}, ""},
		{"bad TOTP secret", []string{"create", "--username", "dave", "--password", "a perfectly fine one", "--totp-secret", "not base32!"}, "--totp-secret"},
		{"short TOTP secret", []string{"create", "--username", "dave", "--password", "a perfectly fine one", "--totp-secret", "JBSWY3DP"}, "--totp-secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := runErr(t, append(append([]string{"users"}, tt.args...), "--data-dir", dir)...)
			switch {
			case tt.want == "" && !errors.Is(err, errUsage):
				t.Fatalf("got %v, want a usage error", err)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("got %v, want it to mention %q", err, tt.want)
			}
		})
	}
	var list []userView
	if err := json.Unmarshal([]byte(cli(t, "users", "list", "--data-dir", dir)), &list); err != nil || len(list) != 1 {
		t.Errorf("after the refusals, list = %+v %v; want carol alone", list, err)
	}

	// --skip-policy lets an import keep a weak password.
	cli(t, "users", "create", "--data-dir", dir, "--username", "dave", "--password", "dave", "--skip-policy")
	// --password-file takes the first line.
	erin := decodeUser(t, cli(t, "users", "create", "--data-dir", dir, "--username", "erin", "--password-file", pwFile))
	u, err := openTestStore(t, dir).GetUser(context.Background(), erin.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := password.Default().Verify(context.Background(), u.PasswordHash, "from a file, 2 lines"); !ok {
		t.Error("--password-file did not set the file's first line")
	}
}

func TestUsersSetPassword(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	frank := decodeUser(t, cli(t, "users", "create", "--data-dir", dir, "--username", "frank", "--password", "the first password"))
	st := openTestStore(t, dir)
	before, err := st.GetUser(ctx, frank.ID)
	if err != nil {
		t.Fatal(err)
	}

	if err := runErr(t, "users", "set-password", "frank", "--password", "frank's own", "--data-dir", dir); !strings.Contains(err.Error(), "username") {
		t.Errorf("a password with the username: %v", err)
	}
	cli(t, "users", "set-password", "frank", "--password", "the second password", "--data-dir", dir)
	after, err := st.GetUser(ctx, frank.ID)
	if err != nil {
		t.Fatal(err)
	}
	if after.PasswordHash == before.PasswordHash {
		t.Fatal("set-password left the hash as it was")
	}
	h := password.Default()
	if ok, err := h.Verify(ctx, after.PasswordHash, "the second password"); !ok || err != nil {
		t.Errorf("the new password does not verify: %v", err)
	}
	if ok, _ := h.Verify(ctx, after.PasswordHash, "the first password"); ok {
		t.Error("the old password still verifies")
	}
}

func TestUsersTOTPAndResetMFA(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	seed := []byte("12345678901234567890") // RFC 6238's SHA-1 test seed
	// As authenticator apps show it: lower case, in groups, unpadded.
	secret := strings.ToLower(base32.StdEncoding.EncodeToString(seed))
	secret = secret[:8] + " " + secret[8:16] + " " + secret[16:]
	grace := decodeUser(t, cli(t, "users", "create", "--data-dir", dir, "--username", "grace", "--password", "hopper's compiler", "--totp-secret", secret))
	if !grace.MFA.TOTP {
		t.Errorf("create printed mfa %+v, want totp", grace.MFA)
	}
	st := openTestStore(t, dir)
	e, err := st.GetTOTPEnrolment(ctx, grace.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Secret, seed) || !e.Confirmed {
		t.Errorf("enrolment: seed %q confirmed %v; want %q, confirmed", e.Secret, e.Confirmed, seed)
	}
	if err := st.UseTOTPStep(ctx, grace.ID, 1); err != nil {
		t.Errorf("the imported enrolment does not accept a code: %v", err)
	}

	reset := decodeUser(t, cli(t, "users", "reset-mfa", "grace", "--data-dir", dir))
	if reset.MFA != (mfaView{}) {
		t.Errorf("reset-mfa printed mfa %+v", reset.MFA)
	}
	if _, err := st.GetTOTPEnrolment(ctx, grace.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after reset-mfa the enrolment is still there: %v", err)
	}
	if got := decodeUser(t, cli(t, "users", "get", "grace", "--data-dir", dir)); got.MFA.TOTP {
		t.Error("get still shows TOTP after reset-mfa")
	}

	// A padded, upper-case secret works too.
	padded := base32.StdEncoding.EncodeToString([]byte("0123456789abcdefghi")) // 19 bytes: padded
	if !strings.HasSuffix(padded, "=") {
		t.Fatalf("%q is not padded", padded)
	}
	heidi := decodeUser(t, cli(t, "users", "create", "--data-dir", dir, "--username", "heidi", "--password", "a perfectly fine one", "--totp-secret", padded))
	if e, err := st.GetTOTPEnrolment(ctx, heidi.ID); err != nil || string(e.Secret) != "0123456789abcdefghi" {
		t.Errorf("padded secret: %v %v", e, err)
	}
}

func TestUsersDisableEnableDelete(t *testing.T) {
	cleanEnv(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	ivan := decodeUser(t, cli(t, "users", "create", "--data-dir", dir, "--username", "ivan", "--password", "a perfectly fine one", "--name", "Ivan"))
	got := decodeUser(t, cli(t, "users", "disable", "ivan", "--data-dir", dir))
	var profile map[string]string
	if err := json.Unmarshal(got.Profile, &profile); err != nil || !got.Disabled || profile["name"] != "Ivan" {
		t.Errorf("disable printed %+v (profile %s)", got, got.Profile)
	}
	if got := decodeUser(t, cli(t, "users", "get", ivan.ID, "--data-dir", dir)); !got.Disabled {
		t.Error("disable did not stick")
	}
	if got := decodeUser(t, cli(t, "users", "enable", ivan.ID, "--data-dir", dir)); got.Disabled {
		t.Error("enable did not enable")
	}

	if out := cli(t, "users", "delete", "ivan", "--data-dir", dir); !strings.Contains(out, "deleted user ivan") {
		t.Errorf("delete printed %q", out)
	}
	if _, err := openTestStore(t, dir).GetUser(ctx, ivan.ID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after delete: %v", err)
	}
	if err := runErr(t, "users", "delete", "ivan", "--data-dir", dir); !strings.Contains(err.Error(), `no user "ivan"`) {
		t.Errorf("delete again: %v", err)
	}
}
