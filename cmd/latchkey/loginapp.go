package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"github.com/latchkey-oidc/latchkey/login"
	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/login/upstream"
	"github.com/latchkey-oidc/latchkey/store"
)

// loginSettings are the settings of the login app beyond the provider's.
var loginSettings = []string{"smtp-addr", "smtp-from", "smtp-username", "smtp-password", "smtp-tls", "upstreams"}

// newLoginApp builds the login app from the settings: publicURL is where
// browsers reach it, adminURL the provider's admin API.
func newLoginApp(ctx context.Context, s *settings, st *store.Store, log *slog.Logger, reg prometheus.Registerer, issuer, publicURL, adminURL, adminToken string, secret []byte, old [][]byte, dev bool) (*login.App, error) {
	sender, err := s.mailSender(log)
	if err != nil {
		return nil, err
	}
	ups, err := readUpstreams(s.get("upstreams"))
	if err != nil {
		return nil, err
	}
	return login.New(ctx, st, login.Config{
		PublicURL:  publicURL,
		Issuer:     issuer,
		AdminURL:   adminURL,
		AdminToken: adminToken,
		Secret:     secret,
		OldSecrets: old,
		Dev:        dev,
		Mail:       sender,
		Upstreams:  ups,
		Log:        log.With("app", "login"),
		Registerer: reg,
	})
}

// mailSender is SMTP when configured, else the outbox file in the data
// directory, whose every message is also logged (without its text); with
// neither, email codes are off (nil).
func (s *settings) mailSender(log *slog.Logger) (mail.Sender, error) {
	if addr := s.get("smtp-addr"); addr != "" {
		m := &mail.SMTP{
			Addr: addr, From: s.get("smtp-from"), TLS: s.get("smtp-tls"),
			Username: s.get("smtp-username"), Password: s.get("smtp-password"),
		}
		if err := m.Validate(); err != nil {
			return nil, fmt.Errorf("--smtp-addr: %w", err)
		}
		return m, nil
	}
	if fi, err := os.Stat(s.dataDir()); err != nil || !fi.IsDir() {
		log.Warn("no --smtp-addr and no data directory for the outbox: sign-in codes by email are off", "data_dir", s.dataDir())
		return nil, nil
	}
	path := filepath.Join(s.dataDir(), "outbox.jsonl")
	log.Info("no --smtp-addr: sign-in code emails are written to the outbox file", "path", path)
	return &mail.Outbox{Path: path, Log: log}, nil
}

// upstreamFile is the format of the --upstreams file.
type upstreamFile struct {
	Upstreams []struct {
		Name         string   `yaml:"name"`
		DisplayName  string   `yaml:"display_name"`
		Issuer       string   `yaml:"issuer"`
		ClientID     string   `yaml:"client_id"`
		ClientSecret string   `yaml:"client_secret"`
		Scopes       []string `yaml:"scopes"`
		LinkByEmail  bool     `yaml:"link_by_email"`
	} `yaml:"upstreams"`
}

// readUpstreams reads the upstream providers from a YAML (or JSON) file.
func readUpstreams(path string) ([]upstream.Config, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--upstreams: %w", err)
	}
	var f upstreamFile
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("--upstreams %s: %w", path, err)
	}
	out := make([]upstream.Config, 0, len(f.Upstreams))
	for _, u := range f.Upstreams {
		out = append(out, upstream.Config{
			Name: u.Name, DisplayName: u.DisplayName, Issuer: u.Issuer,
			ClientID: u.ClientID, ClientSecret: u.ClientSecret, Scopes: u.Scopes, LinkByEmail: u.LinkByEmail,
		})
	}
	return out, nil
}
