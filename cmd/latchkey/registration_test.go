package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/provider"
)

// TestServeRegistration runs serve with dynamic client registration behind
// initial access tokens and registers a client with one of them.
func TestServeRegistration(t *testing.T) {
	cleanEnv(t)
	const tokenA, tokenB = "initial-token-a-0123456789", "initial-token-b-0123456789"
	srv := startServe(t, "--data-dir", t.TempDir(), "--registration", "token", "--registration-tokens", tokenA+", "+tokenB)

	resp, err := http.Get(srv.public + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	endpoint, _ := doc["registration_endpoint"].(string)
	if endpoint != srv.issuer+"/oauth2/register" {
		t.Fatalf("registration_endpoint = %v", doc["registration_endpoint"])
	}
	register := func(token string) int {
		req, err := http.NewRequest(http.MethodPost, endpoint, strings.NewReader(`{"redirect_uris":["http://127.0.0.1:9000/cb"]}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := register(""); status != http.StatusUnauthorized {
		t.Errorf("registration without a token: %d", status)
	}
	if status := register("not-a-configured-token-0123"); status != http.StatusUnauthorized {
		t.Errorf("registration with a wrong token: %d", status)
	}
	if status := register(tokenB); status != http.StatusCreated {
		t.Errorf("registration with the second token: %d", status)
	}
	srv.shutdown(t)
	for _, out := range []string{srv.stdout.String(), srv.stderr.String()} {
		if strings.Contains(out, tokenA) || strings.Contains(out, tokenB) {
			t.Fatal("serve printed an initial access token")
		}
	}
}

// TestRegistrationSettings checks the registration settings from every
// source, their default, and the refusals of serve.
func TestRegistrationSettings(t *testing.T) {
	cleanEnv(t)
	parse := func(t *testing.T, args ...string) (provider.RegistrationPolicy, []string, error) {
		t.Helper()
		s := newSettings("serve", &bytes.Buffer{}, serveSettings...)
		if _, err := s.parse(args); err != nil {
			t.Fatal(err)
		}
		return s.registration()
	}
	// Closed unless asked, in dev mode too.
	if p, tokens, err := parse(t, "--dev"); err != nil || p != provider.RegistrationClosed || tokens != nil {
		t.Errorf("default: %q %q %v", p, tokens, err)
	}
	t.Setenv("LATCHKEY_REGISTRATION", "open")
	if p, _, err := parse(t); err != nil || p != provider.RegistrationOpen {
		t.Errorf("from the environment: %q %v", p, err)
	}
	t.Setenv("LATCHKEY_REGISTRATION", "")
	config := filepath.Join(t.TempDir(), "latchkey.yaml")
	yaml := "registration: token\nregistration-tokens: [file-token-0123456789, other-token-0123456789]\n"
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	p, tokens, err := parse(t, "--config", config)
	if err != nil || p != provider.RegistrationToken || !slices.Equal(tokens, []string{"file-token-0123456789", "other-token-0123456789"}) {
		t.Errorf("from a config file: %q %q %v", p, tokens, err)
	}

	for _, args := range [][]string{
		{"--registration", "sometimes"},
		{"--registration", "token"},
		{"--registration", "token", "--registration-tokens", "short"},
		{"--registration", "open", "--registration-tokens", "a-token-for-nothing-0123"},
		{"--registration-tokens", "a-token-for-nothing-0123"},
	} {
		var out, errOut bytes.Buffer
		dir := t.TempDir()
		err := run(context.Background(), append([]string{"serve", "--data-dir", dir, "--public-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, args...), &out, &errOut)
		if err == nil || !strings.Contains(err.Error(), "--registration") {
			t.Errorf("serve %v: %v", args, err)
		}
		if _, err := os.Stat(filepath.Join(dir, "latchkey.db")); err == nil {
			t.Errorf("serve %v created a database before refusing", args)
		}
	}
}
