package provider

import (
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config is what an operator chooses about a provider. New fills in the
// defaults documented on each field.
type Config struct {
	// Issuer is the provider's issuer URL, e.g. https://id.example.com. Every
	// endpoint lives under it. It must be https unless it is a loopback
	// address or Dev is set.
	Issuer string
	// LoginURL is the base URL of the login app; default Issuer + "/login".
	LoginURL string
	// PasswordCheckURL is where the password grant asks the login side to
	// check a username and password; default LoginURL + "/internal/password".
	PasswordCheckURL string
	// AdminToken is the bearer token of the admin API. The provider also
	// presents it when it calls the login side.
	AdminToken string
	// SystemSecret (at least 32 bytes) keys the token HMACs and the client
	// secret pepper; OldSystemSecrets still verify what older ones made.
	SystemSecret     []byte
	OldSystemSecrets [][]byte
	// Dev relaxes what only makes sense in production: plain http off
	// loopback, and cookies without Secure on http.
	Dev bool

	AccessTokenLifespan   time.Duration // default 1h
	RefreshTokenLifespan  time.Duration // default 30 days
	IDTokenLifespan       time.Duration // default 1h
	AuthorizeCodeLifespan time.Duration // default 5m
	DeviceCodeLifespan    time.Duration // default 10m
	DevicePollInterval    time.Duration // default 5s
	PARLifespan           time.Duration // default 90s
	// ChallengeLifespan bounds how long a user may take to sign in and
	// consent; default 30m.
	ChallengeLifespan time.Duration
	// SessionLifespan is how long an SSO session lasts when the login app
	// does not say; default 30 days for remembered sessions.
	SessionLifespan time.Duration
	// ConsentLifespan is how long a remembered consent lasts when the login
	// app does not say; zero means until revoked.
	ConsentLifespan time.Duration

	// AcrValues are the authentication context classes the login app
	// reports, published as acr_values_supported; default the classes of
	// Latchkey's login app (password, and password with a second factor).
	// A company running its own login app sets its own.
	AcrValues []string
	// AccessTokenFormat is the access token format of clients that do not
	// choose one (latchkey_access_token_format): AccessTokenOpaque (the
	// default) or AccessTokenJWT.
	AccessTokenFormat string
	// TokenRateLimit is how many token requests per second each client may
	// make to one replica, for clients without latchkey_token_rate_limit;
	// zero is no limit. A client over its limit is answered 429.
	TokenRateLimit float64
	// KeyAlgs are the ID token signing algorithms, the first the default;
	// default RS256, ES256, EdDSA.
	KeyAlgs []string
	// KeyRotateEvery is the age at which a current signing key is rotated;
	// default 30 days.
	KeyRotateEvery time.Duration
	// KeyRefreshInterval is how often the provider checks the store for
	// keys another replica rotated, and rotates keys that are due; default
	// 1 minute. A key rotated on one replica is served by every other
	// within it.
	KeyRefreshInterval time.Duration

	// RegistrationPolicy says who may register clients at /oauth2/register
	// (RFC 7591): closed (the default: no endpoint), open, or token.
	RegistrationPolicy RegistrationPolicy
	// RegistrationTokens are the initial access tokens the token policy
	// accepts (16+ characters each).
	RegistrationTokens []string

	// BackchannelLogout tunes the delivery of back-channel logout tokens.
	BackchannelLogout BackchannelLogoutConfig

	// HTTPClient, when set, makes every outbound call (client JWKS,
	// request_uri, sector_identifier_uri, back-channel logout, the password
	// check) as it is: whoever sets it owns its address policy, and
	// OutboundAllow does not apply. Default: the password check, which goes
	// where the operator configured, uses a plain client with a 10s
	// timeout; the calls to URLs that clients choose use clients that
	// refuse non-public addresses (see OutboundAllow).
	HTTPClient *http.Client
	// OutboundAllow widens the address policy of the outbound calls to
	// URLs that clients choose. By default fetches (request_uri, jwks_uri,
	// sector_identifier_uri) dial only public unicast addresses, and
	// back-channel logouts also private ones (RFC 1918, unique local,
	// CGNAT) but never loopback, link-local (169.254.169.254, the cloud
	// metadata service), unspecified or multicast addresses. An address in
	// one of these prefixes is allowed for both, whatever its range; an
	// IPv4 prefix also covers the IPv4-mapped IPv6 form of its addresses.
	// Dev mode adds loopback (127.0.0.0/8, ::1). The check is made on the
	// address dialled, after name resolution and on every redirect, and the
	// guarded calls use no proxy from the environment.
	OutboundAllow []netip.Prefix
	// outboundRoots, when set, are the only certificate authorities the
	// guarded clients trust (tests serve https from httptest).
	outboundRoots *x509.CertPool
	// fetchHTTP and notifyHTTP are the clients of fetches and back-channel
	// logouts that withDefaults chose (outboundClients).
	fetchHTTP, notifyHTTP *http.Client

	Log *slog.Logger
	// Registerer, when set, gets the provider's Prometheus metrics; nil
	// registers none.
	Registerer prometheus.Registerer
	// MetricsPerClient adds latchkey_client_tokens_issued_total, labelled
	// by client_id. Off by default: one series per client and grant.
	MetricsPerClient bool
}

// BackchannelLogoutConfig tunes how logout tokens reach the clients'
// backchannel_logout_uri. Each failed attempt waits twice as long as the
// one before, from RetryMin up to RetryMax, until GiveUpAfter has passed
// since the session ended.
type BackchannelLogoutConfig struct {
	PollInterval time.Duration // how often the queue is checked; default 2s
	Timeout      time.Duration // one request; default 5s
	RetryMin     time.Duration // default 1s
	RetryMax     time.Duration // default 10m
	GiveUpAfter  time.Duration // default 24h
	Concurrency  int           // requests in flight per provider; default 8
}

func (c BackchannelLogoutConfig) withDefaults() BackchannelLogoutConfig {
	c.PollInterval = orDefault(c.PollInterval, 2*time.Second)
	c.Timeout = orDefault(c.Timeout, 5*time.Second)
	c.RetryMin = orDefault(c.RetryMin, time.Second)
	c.RetryMax = max(orDefault(c.RetryMax, 10*time.Minute), c.RetryMin)
	c.GiveUpAfter = orDefault(c.GiveUpAfter, 24*time.Hour)
	if c.Concurrency <= 0 {
		c.Concurrency = 8
	}
	return c
}

const (
	defaultAccessTokenLifespan   = time.Hour
	defaultRefreshTokenLifespan  = 30 * 24 * time.Hour
	defaultIDTokenLifespan       = time.Hour
	defaultAuthorizeCodeLifespan = 5 * time.Minute
	defaultDeviceCodeLifespan    = 10 * time.Minute
	defaultDevicePollInterval    = 5 * time.Second
	defaultPARLifespan           = 90 * time.Second
	defaultChallengeLifespan     = 30 * time.Minute
	defaultSessionLifespan       = 30 * 24 * time.Hour
	defaultKeyRotateEvery        = 30 * 24 * time.Hour
	defaultKeyRefreshInterval    = time.Minute
)

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// withDefaults checks c and returns it with every default filled in.
func (c Config) withDefaults() (Config, error) {
	iss, err := url.Parse(c.Issuer)
	if err != nil || iss.Host == "" || (iss.Scheme != "https" && iss.Scheme != "http") {
		return c, fmt.Errorf("issuer %q is not an absolute http(s) URL", c.Issuer)
	}
	if iss.RawQuery != "" || iss.Fragment != "" {
		return c, fmt.Errorf("issuer %q must not have a query or fragment", c.Issuer)
	}
	if iss.Scheme == "http" && !c.Dev && !IsLoopback(iss.Hostname()) {
		return c, fmt.Errorf("issuer %q: plain http is only allowed on loopback addresses, or with dev mode", c.Issuer)
	}
	c.Issuer = strings.TrimSuffix(c.Issuer, "/")
	if len(c.SystemSecret) < 32 {
		return c, errors.New("the system secret must be at least 32 bytes")
	}
	if len(c.AdminToken) < 16 {
		return c, errors.New("the admin token must be at least 16 characters")
	}
	if c.LoginURL == "" {
		c.LoginURL = c.Issuer + "/login"
	}
	c.LoginURL = strings.TrimSuffix(c.LoginURL, "/")
	if c.PasswordCheckURL == "" {
		c.PasswordCheckURL = c.LoginURL + "/internal/password"
	}
	if len(c.AcrValues) == 0 {
		c.AcrValues = []string{"urn:latchkey:acr:pwd", "urn:latchkey:acr:mfa"}
	}
	c.AccessTokenLifespan = orDefault(c.AccessTokenLifespan, defaultAccessTokenLifespan)
	c.RefreshTokenLifespan = orDefault(c.RefreshTokenLifespan, defaultRefreshTokenLifespan)
	c.IDTokenLifespan = orDefault(c.IDTokenLifespan, defaultIDTokenLifespan)
	c.AuthorizeCodeLifespan = orDefault(c.AuthorizeCodeLifespan, defaultAuthorizeCodeLifespan)
	c.DeviceCodeLifespan = orDefault(c.DeviceCodeLifespan, defaultDeviceCodeLifespan)
	c.DevicePollInterval = orDefault(c.DevicePollInterval, defaultDevicePollInterval)
	c.PARLifespan = orDefault(c.PARLifespan, defaultPARLifespan)
	c.ChallengeLifespan = orDefault(c.ChallengeLifespan, defaultChallengeLifespan)
	c.SessionLifespan = orDefault(c.SessionLifespan, defaultSessionLifespan)
	c.KeyRotateEvery = orDefault(c.KeyRotateEvery, defaultKeyRotateEvery)
	c.KeyRefreshInterval = orDefault(c.KeyRefreshInterval, defaultKeyRefreshInterval)
	switch c.AccessTokenFormat {
	case "":
		c.AccessTokenFormat = AccessTokenOpaque
	case AccessTokenOpaque, AccessTokenJWT:
	default:
		return c, fmt.Errorf("access token format %q: use %s", c.AccessTokenFormat, strings.Join(AccessTokenFormats, " or "))
	}
	if c.TokenRateLimit < 0 {
		return c, fmt.Errorf("token rate limit %v: must not be negative", c.TokenRateLimit)
	}
	if len(c.KeyAlgs) == 0 {
		c.KeyAlgs = []string{"RS256", "ES256", "EdDSA"}
	}
	if !slices.Contains(c.KeyAlgs, "RS256") {
		// OpenID Connect Discovery §3: RS256 MUST be supported.
		return c, errors.New("the signing algorithms must include RS256")
	}
	if c.RegistrationPolicy, err = ParseRegistrationPolicy(string(c.RegistrationPolicy), c.RegistrationTokens); err != nil {
		return c, err
	}
	c.BackchannelLogout = c.BackchannelLogout.withDefaults()
	for _, a := range c.OutboundAllow {
		if !a.IsValid() {
			return c, errors.New("the outbound allow-list has an invalid prefix")
		}
	}
	if c.fetchHTTP == nil {
		// Before HTTPClient gets its default: a caller's HTTPClient is
		// used as it is, the default one only for the password check.
		c.fetchHTTP, c.notifyHTTP = c.outboundClients()
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// IsLoopback reports whether host names this machine: localhost or a
// loopback IP address.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
