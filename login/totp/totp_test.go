package totp

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// RFC 6238 Appendix B, SHA-1 seed, reduced to the 6 digits apps show.
func TestRFC6238Vectors(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "287082"},
		{1111111109, "081804"},
		{1234567890, "005924"},
		{2000000000, "279037"},
	} {
		got, err := Code(secret, time.Unix(tc.unix, 0))
		if err != nil || got != tc.want {
			t.Errorf("code at %d = %q, %v; want %q", tc.unix, got, err, tc.want)
		}
	}
}

func TestVerifyWindow(t *testing.T) {
	k, err := Generate("Latchkey", "alice")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1_800_000_015, 0)
	for _, tc := range []struct {
		name   string
		at     time.Time
		wantOK bool
	}{
		{"current step", now, true},
		{"previous step", now.Add(-Period), true},
		{"next step", now.Add(Period), true},
		{"two steps ago", now.Add(-2 * Period), false},
		{"two steps ahead", now.Add(2 * Period), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, err := Code(k.Secret, tc.at)
			if err != nil {
				t.Fatal(err)
			}
			step, err := Verify(k.Secret, code[:3]+" "+code[3:], now)
			if !tc.wantOK {
				if !errors.Is(err, ErrInvalidCode) {
					t.Fatalf("verify = %d, %v; want ErrInvalidCode", step, err)
				}
				return
			}
			if err != nil || step != Step(tc.at) {
				t.Fatalf("verify = %d, %v; want step %d", step, err, Step(tc.at))
			}
		})
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, err := Verify(k.Secret, bad, now); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("verify %q = %v; want ErrInvalidCode", bad, err)
		}
	}
}

func TestEnrolmentDetails(t *testing.T) {
	k, err := Generate("Latchkey", "alice@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Secret) != 20 || !strings.HasPrefix(k.QRCode, "data:image/png;base64,") {
		t.Fatalf("key = %d-byte secret, QR %.30q", len(k.Secret), k.QRCode)
	}
	if !strings.HasPrefix(k.URI, "otpauth://totp/Latchkey:alice@example.com?") || !strings.Contains(k.URI, "secret="+k.Manual) {
		t.Fatalf("URI = %q", k.URI)
	}
	back, err := ParseSecret(strings.ToLower(k.Manual[:4] + " " + k.Manual[4:]))
	if err != nil || string(back) != string(k.Secret) {
		t.Fatalf("parse the manual key back = %x, %v", back, err)
	}
	if _, err := ParseSecret("not base32!"); err == nil {
		t.Fatal("garbage parsed as a secret")
	}
	if _, err := ParseSecret("MFRGG"); err == nil {
		t.Fatal("a 25-bit secret was accepted")
	}
}
