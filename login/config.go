package login

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/login/mail"
	"github.com/latchkey-oidc/latchkey/login/password"
	"github.com/latchkey-oidc/latchkey/login/upstream"
)

// Config is what the login app needs to run.
type Config struct {
	// PublicURL is where browsers reach the login app, e.g.
	// http://127.0.0.1:8080/login; it is the provider's login URL.
	PublicURL string
	// Issuer is the provider's issuer. Passkeys are bound to its host name
	// (the WebAuthn relying party ID).
	Issuer string
	// AdminURL and AdminToken reach the provider's admin API.
	AdminURL   string
	AdminToken string
	// Secret keys the login app's sealed cookies and its code hashes: the
	// system secret (32 bytes or more). OldSecrets still open what they sealed.
	Secret     []byte
	OldSecrets [][]byte
	// Dev allows a plain http public URL beyond loopback addresses.
	Dev bool
	// ProductName is shown on the pages and in authenticator apps.
	ProductName string
	// Mail sends one-time codes; nil disables email codes.
	Mail mail.Sender
	// Upstreams are the OpenID providers people may sign in with.
	Upstreams []upstream.Config
	// Passwords hashes passwords; Policy says which new ones are allowed.
	Passwords *password.Hasher
	Policy    password.Policy
	// Limits throttle guessing.
	Limits Limits
	// SessionLifespan is how long a sign-in to the account page lasts, and
	// how long the provider remembers a sign-in when the user asks it to.
	SessionLifespan time.Duration
	// HTTPClient calls the admin API and upstream providers.
	HTTPClient *http.Client
	Log        *slog.Logger
	// Registerer takes the login app's metrics; nil keeps them unregistered.
	Registerer prometheus.Registerer
	// Now is the clock (tests).
	Now func() time.Time
}

// Limits are the throttles on guessing. Each tier counts failures in a
// window and, at the threshold, locks the key for a while; later tiers
// count more failures over longer windows and lock for longer, so the delay
// grows while an attack goes on, and every lock ends by itself.
type Limits struct {
	// PasswordPerAccount and PasswordPerSource count failed password
	// sign-ins per username and per client address.
	PasswordPerAccount []Tier
	PasswordPerSource  []Tier
	// CodePerAccount counts wrong second-factor codes (TOTP, email, recovery).
	CodePerAccount []Tier
	// EmailCode limits the email one-time codes.
	EmailCodeTTL        time.Duration
	EmailCodeAttempts   int
	EmailCodesPerWindow int
	EmailCodeWindow     time.Duration
}

// Tier is one step of a throttle: Threshold failures within Window lock
// the key for LockFor.
type Tier struct {
	Threshold int
	Window    time.Duration
	LockFor   time.Duration
}

// DefaultLimits are the limits a deployment starts with.
func DefaultLimits() Limits {
	return Limits{
		PasswordPerAccount: []Tier{
			{Threshold: 5, Window: 15 * time.Minute, LockFor: time.Minute},
			{Threshold: 20, Window: 24 * time.Hour, LockFor: 30 * time.Minute},
		},
		PasswordPerSource: []Tier{
			{Threshold: 50, Window: 15 * time.Minute, LockFor: 5 * time.Minute},
		},
		CodePerAccount: []Tier{
			{Threshold: 5, Window: 15 * time.Minute, LockFor: 2 * time.Minute},
			{Threshold: 20, Window: 24 * time.Hour, LockFor: time.Hour},
		},
		EmailCodeTTL:        10 * time.Minute,
		EmailCodeAttempts:   5,
		EmailCodesPerWindow: 3,
		EmailCodeWindow:     15 * time.Minute,
	}
}

func (c *Config) withDefaults() (*Config, error) {
	cfg := *c
	if cfg.ProductName == "" {
		cfg.ProductName = "Latchkey"
	}
	if cfg.Passwords == nil {
		cfg.Passwords = password.Default()
	}
	if cfg.Policy == (password.Policy{}) {
		cfg.Policy = password.DefaultPolicy()
	}
	if cfg.Limits.PasswordPerAccount == nil && cfg.Limits.CodePerAccount == nil {
		cfg.Limits = DefaultLimits()
	}
	if cfg.SessionLifespan <= 0 {
		cfg.SessionLifespan = 24 * time.Hour
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	pub, err := url.Parse(cfg.PublicURL)
	if err != nil || pub.Host == "" || (pub.Scheme != "https" && pub.Scheme != "http") {
		return nil, fmt.Errorf("login: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
	}
	if pub.Scheme == "http" && !cfg.Dev && !isLoopback(pub.Hostname()) {
		return nil, fmt.Errorf("login: public URL %q must be https, except on loopback or in dev mode", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	iss, err := url.Parse(cfg.Issuer)
	if err != nil || iss.Host == "" {
		return nil, fmt.Errorf("login: issuer %q is not an absolute URL", cfg.Issuer)
	}
	if cfg.AdminURL == "" || cfg.AdminToken == "" {
		return nil, errors.New("login: the admin API URL and token are required")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("login: the secret must be at least 32 bytes")
	}
	return &cfg, nil
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
