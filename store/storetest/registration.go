package storetest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"ClientRegistrationMetadata", testClientRegistrationMetadata},
)

// testClientRegistrationMetadata stores a dynamically registered client:
// the OpenID Connect Registration fields and the hash of its RFC 7592
// registration access token come back from every read, the hash never
// appears in the client's JSON, and updates keep or change it as asked.
func testClientRegistrationMetadata(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := exampleClient()
	c.ApplicationType = "native"
	c.SectorIdentifierURI = "https://app.example.test/sector.json"
	c.InitiateLoginURI = "https://app.example.test/start"
	c.SoftwareID = "4NRB1-0XZABZI9E6-5SM3R"
	c.SoftwareVersion = "2.1"
	c.DefaultMaxAge = 600
	c.RequireAuthTime = true
	c.DefaultACRValues = []string{"urn:example:acr:mfa"}
	c.Contacts = []string{"ops@app.example.test"}
	c.RegistrationTokenHash = "hash-of-registration-token"
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatalf("create: %v", err)
	}
	same := func(what string, got *store.Client) {
		t.Helper()
		if got.ApplicationType != "native" || got.SectorIdentifierURI != c.SectorIdentifierURI || got.InitiateLoginURI != c.InitiateLoginURI ||
			got.SoftwareID != c.SoftwareID || got.SoftwareVersion != c.SoftwareVersion || got.DefaultMaxAge != 600 || !got.RequireAuthTime ||
			len(got.DefaultACRValues) != 1 || len(got.Contacts) != 1 {
			t.Errorf("%s lost registration metadata: %+v", what, got)
		}
		if got.RegistrationTokenHash != "hash-of-registration-token" {
			t.Errorf("%s: registration token hash %q", what, got.RegistrationTokenHash)
		}
	}
	loaded, err := s.LoadClient(ctx, c.ID)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	same("LoadClient", loaded)
	cached, err := s.GetClient(ctx, c.ID)
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	same("GetClient", cached.(*store.Client))
	listed, err := s.ListClients(ctx, "", 10)
	if err != nil || len(listed) != 1 {
		t.Fatalf("list: %d %v", len(listed), err)
	}
	same("ListClients", listed[0])

	b, err := json.Marshal(loaded)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hash-of-registration-token") {
		t.Errorf("the client's JSON shows the registration token hash: %s", b)
	}
	for _, field := range []string{`"application_type"`, `"sector_identifier_uri"`, `"initiate_login_uri"`, `"software_id"`, `"software_version"`} {
		if !strings.Contains(string(b), field) {
			t.Errorf("the client's JSON lacks %s: %s", field, b)
		}
	}

	// An update keeps the hash it is given, and can replace it.
	loaded.Name = "Renamed"
	if err := s.UpdateClient(ctx, loaded); err != nil {
		t.Fatalf("update: %v", err)
	}
	after, err := s.LoadClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	same("after an update", after)
	after.RegistrationTokenHash = "hash-of-another-token"
	if err := s.UpdateClient(ctx, after); err != nil {
		t.Fatalf("update: %v", err)
	}
	got, err := s.GetClient(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if h := got.(*store.Client).RegistrationTokenHash; h != "hash-of-another-token" {
		t.Errorf("after replacing the hash, GetClient has %q", h)
	}

	// A client of the admin API has none.
	admin := exampleClient()
	if err := s.CreateClient(ctx, admin); err != nil {
		t.Fatal(err)
	}
	a, err := s.LoadClient(ctx, admin.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a.RegistrationTokenHash != "" {
		t.Errorf("a client created without a registration token has %q", a.RegistrationTokenHash)
	}
}
