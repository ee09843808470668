package clientsecret_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/storage"
	"golang.org/x/crypto/bcrypt"
)

// TestFositeClientCredentials plugs the Hasher into fosite as
// Config.ClientSecretsHasher and runs client_credentials token requests, so
// the hashes are checked through the calls fosite really makes, rotated
// client secrets included.
func TestFositeClientCredentials(t *testing.T) {
	ctx := context.Background()
	h := cheap(t, systemSecret, oldSecret)
	primary, rotated := generated(t), generated(t)
	hash := func(b []byte, err error) []byte {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chosen := []byte("an operator chose this: p@ss+w/rd")

	store := storage.NewMemoryStore()
	client := func(id string, secret []byte, rotated ...[]byte) {
		store.Clients[id] = &fosite.DefaultClient{
			ID:             id,
			Secret:         secret,
			RotatedSecrets: rotated,
			GrantTypes:     []string{"client_credentials"},
			Scopes:         []string{"api"},
		}
	}
	// The rotated client secret was hashed before the system secret rotated.
	underOld := cheap(t, oldSecret)
	client("machine", hash(h.HashGenerated(primary)), hash(underOld.HashGenerated(rotated)))
	client("chosen", hash(h.HashChosen(chosen)))
	client("hydra", bcryptHash(t, chosen, bcrypt.MinCost))

	cfg := &fosite.Config{
		AccessTokenLifespan: time.Hour,
		ScopeStrategy:       fosite.ExactScopeStrategy,
		GlobalSecret:        []byte("clientsecret-test-global-secret-32-bytes"),
		ClientSecretsHasher: h,
	}
	provider := compose.Compose(cfg, store, &compose.CommonStrategy{CoreStrategy: compose.NewOAuth2HMACStrategy(cfg)},
		compose.OAuth2ClientCredentialsGrantFactory)

	tests := []struct {
		name     string
		clientID string
		secret   []byte
		ok       bool
	}{
		{"generated, primary", "machine", primary, true},
		{"generated, rotated under the old system secret", "machine", rotated, true},
		{"generated, wrong", "machine", generated(t), false},
		{"chosen", "chosen", chosen, true},
		{"chosen, wrong", "chosen", primary, false},
		{"imported bcrypt", "hydra", chosen, true},
		{"imported bcrypt, wrong", "hydra", primary, false},
	}
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"api"}}.Encode()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "https://op.example.test/oauth2/token", strings.NewReader(form))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.SetBasicAuth(url.QueryEscape(tt.clientID), url.QueryEscape(string(tt.secret)))
			ar, err := provider.NewAccessRequest(ctx, r, openid.NewDefaultSession())
			if !tt.ok {
				if !errors.Is(err, fosite.ErrInvalidClient) {
					t.Fatalf("NewAccessRequest = %v, want invalid_client", err)
				}
				return
			}
			if err != nil {
				t.Fatal(fosite.ErrorToRFC6749Error(err).WithExposeDebug(true).GetDescription())
			}
			ar.GrantScope("api")
			if _, err := provider.NewAccessResponse(ctx, ar); err != nil {
				t.Fatal(err)
			}
		})
	}
}
