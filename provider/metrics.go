package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the provider's Prometheus collectors. Every label has a
// bounded set of values; the one per-client metric exists only when the
// operator asks for it (Config.MetricsPerClient).
type metrics struct {
	tokensIssued  *prometheus.CounterVec
	clientTokens  *prometheus.CounterVec // nil unless MetricsPerClient
	tokenRequests *prometheus.CounterVec
	tokenErrors   *prometheus.CounterVec
	authorize     *prometheus.CounterVec
	introspection *prometheus.CounterVec
	revocation    *prometheus.CounterVec
	// backchannelDeliveries counts the outcomes of back-channel logout
	// attempts: delivered, retry (failed, will be tried again) and failed
	// (given up).
	backchannelDeliveries *prometheus.CounterVec
}

// Outcomes of a back-channel logout attempt, the result label.
const (
	deliveryDelivered = "delivered"
	deliveryRetry     = "retry"
	deliveryFailed    = "failed"
)

// Grant types as the grant_type label names them: the token endpoint's
// grants, and implicit for tokens the authorization endpoint issues
// (implicit and hybrid flows).
const (
	grantLabelCode        = "authorization_code"
	grantLabelImplicit    = "implicit"
	grantLabelClient      = "client_credentials"
	grantLabelRefresh     = "refresh_token"
	grantLabelPassword    = "password"
	grantLabelDevice      = "device_code"
	grantLabelUnsupported = "unsupported"
)

var grantLabels = []string{grantLabelCode, grantLabelImplicit, grantLabelClient, grantLabelRefresh, grantLabelPassword, grantLabelDevice}

// grantLabel names a token request's grant_type parameter.
func grantLabel(grantType string) string {
	switch grantType {
	case "authorization_code", "client_credentials", "refresh_token", "password":
		return grantType
	case deviceGrantType:
		return grantLabelDevice
	}
	return grantLabelUnsupported
}

// The token_type label.
const (
	tokenLabelAccess  = "access_token"
	tokenLabelRefresh = "refresh_token"
	tokenLabelID      = "id_token"
)

// tokenErrorLabels are the error codes the token endpoint answers with;
// anything else is "other".
var tokenErrorLabels = []string{
	"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client", "unsupported_grant_type",
	"invalid_scope", "authorization_pending", "slow_down", "expired_token", "access_denied",
	"server_error", "temporarily_unavailable", errTooManyRequests,
}

// errTooManyRequests is the error code of a token request over the
// client's rate limit (answered 429).
const errTooManyRequests = "too_many_requests"

func errorLabel(code string) string {
	if slices.Contains(tokenErrorLabels, code) {
		return code
	}
	return "other"
}

// Outcomes of a request to the authorization endpoint (or its
// continuation after login and consent), the outcome label.
const (
	authorizeLogin   = "login"   // sent to the login app (sign-in or consent)
	authorizeIssued  = "issued"  // answered the client with a code or tokens
	authorizeError   = "error"   // answered the client with an error
	authorizeRefused = "refused" // no redirect URI to answer: an error page
)

// responseTypeLabels are the response types Latchkey serves; anything
// else (or no parsed request) is "invalid".
var responseTypeLabels = []string{
	"code", "id_token", "id_token token", "code id_token", "code token", "code id_token token", "none",
}

func responseTypeLabel(ar fosite.AuthorizeRequester) string {
	if ar == nil {
		return "invalid"
	}
	rt := slices.Clone([]string(ar.GetResponseTypes()))
	slices.Sort(rt)
	// Sorted, "code" < "id_token" < "token" already gives the canonical
	// order of the labels.
	label := strings.Join(rt, " ")
	if slices.Contains(responseTypeLabels, label) {
		return label
	}
	return "invalid"
}

// Results of introspection and revocation requests.
const (
	introspectActive   = "active"
	introspectInactive = "inactive"
	resultRevoked      = "revoked"
	resultError        = "error"
)

// newMetrics builds the collectors and registers them with reg unless it
// is nil. Counters reg already holds from an earlier provider in the same
// process are used as they are, so counts continue.
func newMetrics(reg prometheus.Registerer, perClient bool) (*metrics, error) {
	m := &metrics{
		tokensIssued: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_tokens_issued_total",
			Help: "Tokens issued, by grant type (implicit: tokens from the authorization endpoint) and token type (access_token, refresh_token, id_token).",
		}, []string{"grant_type", "token_type"}),
		tokenRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_token_requests_total",
			Help: "Requests to the token endpoint, by grant type (unsupported for any other).",
		}, []string{"grant_type"}),
		tokenErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_token_errors_total",
			Help: "Token endpoint error responses, by grant type and OAuth error code.",
		}, []string{"grant_type", "error"}),
		authorize: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_authorize_requests_total",
			Help: "Authorization endpoint requests and their continuations, by response type and outcome (login, issued, error, refused).",
		}, []string{"response_type", "outcome"}),
		introspection: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_introspections_total",
			Help: "Token introspection requests, by result (active, inactive, error).",
		}, []string{"result"}),
		revocation: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_revocations_total",
			Help: "Token revocation requests, by result (revoked: answered 200, error).",
		}, []string{"result"}),
		backchannelDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_backchannel_logout_deliveries_total",
			Help: "Back-channel logout delivery attempts by result: delivered, retry (failed, tried again later) or failed (given up).",
		}, []string{"result"}),
	}
	if perClient {
		m.clientTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_client_tokens_issued_total",
			Help: "Tokens issued, by client and grant type (only with per-client metrics on).",
		}, []string{"client_id", "grant_type"})
	}
	if reg != nil {
		for _, c := range []**prometheus.CounterVec{
			&m.tokensIssued, &m.tokenRequests, &m.tokenErrors, &m.authorize, &m.introspection,
			&m.revocation, &m.backchannelDeliveries, &m.clientTokens,
		} {
			if *c == nil {
				continue
			}
			if err := registerCounter(reg, c); err != nil {
				return nil, err
			}
		}
	}
	// Every label value is exported at zero from the start, so dashboards
	// and rates see a series before the first event.
	for _, g := range grantLabels {
		for _, t := range []string{tokenLabelAccess, tokenLabelRefresh, tokenLabelID} {
			m.tokensIssued.WithLabelValues(g, t)
		}
		if g != grantLabelImplicit {
			m.tokenRequests.WithLabelValues(g)
		}
	}
	m.tokenRequests.WithLabelValues(grantLabelUnsupported)
	m.tokenErrors.WithLabelValues(grantLabelClient, "invalid_client")
	for _, rt := range responseTypeLabels {
		for _, o := range []string{authorizeLogin, authorizeIssued, authorizeError} {
			m.authorize.WithLabelValues(rt, o)
		}
	}
	m.authorize.WithLabelValues("invalid", authorizeRefused)
	for _, r := range []string{introspectActive, introspectInactive, resultError} {
		m.introspection.WithLabelValues(r)
	}
	for _, r := range []string{resultRevoked, resultError} {
		m.revocation.WithLabelValues(r)
	}
	for _, result := range []string{deliveryDelivered, deliveryRetry, deliveryFailed} {
		m.backchannelDeliveries.WithLabelValues(result)
	}
	return m, nil
}

// registerCounter registers *c with reg, or points *c at the counter reg
// already holds under the same name.
func registerCounter(reg prometheus.Registerer, c **prometheus.CounterVec) error {
	err := reg.Register(*c)
	if err == nil {
		return nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
			*c = existing
			return nil
		}
	}
	return fmt.Errorf("provider metrics: %w", err)
}

// registerReplacing registers c with reg, replacing the collector of an
// earlier provider on the same registry (a restart within one process):
// what is read at scrape time comes from the newest provider.
func registerReplacing(reg prometheus.Registerer, c prometheus.Collector) error {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		reg.Unregister(are.ExistingCollector)
		err = reg.Register(c)
	}
	if err != nil {
		return fmt.Errorf("provider metrics: %w", err)
	}
	return nil
}

// issued counts the tokens of one response.
func (m *metrics) issued(clientID, grant string, access, refresh, idToken bool) {
	n := 0
	for _, t := range []struct {
		label string
		is    bool
	}{{tokenLabelAccess, access}, {tokenLabelRefresh, refresh}, {tokenLabelID, idToken}} {
		if t.is {
			m.tokensIssued.WithLabelValues(grant, t.label).Inc()
			n++
		}
	}
	if m.clientTokens != nil && n > 0 {
		m.clientTokens.WithLabelValues(clientID, grant).Add(float64(n))
	}
}

// stateCollector reports what is read from the shared database and the
// key ring at scrape time: whether the database answers, the active SSO
// sessions, and the signing keys' age against their rotation period.
type stateCollector struct {
	p                                              *Provider
	databaseUp, sessionsActive, keyAge, rotateDesc *prometheus.Desc
}

// scrapeTimeout bounds the database reads of one scrape.
const scrapeTimeout = 2 * time.Second

func newStateCollector(p *Provider) *stateCollector {
	return &stateCollector{
		p: p,
		databaseUp: prometheus.NewDesc("latchkey_database_up",
			"1 when the database answered a ping at scrape time, else 0.", nil, nil),
		sessionsActive: prometheus.NewDesc("latchkey_sso_sessions_active",
			"SSO sessions that have not expired, in the shared database (every replica reports the same value).", nil, nil),
		keyAge: prometheus.NewDesc("latchkey_signing_key_age_seconds",
			"How long each algorithm's current signing key has been current.", []string{"alg"}, nil),
		rotateDesc: prometheus.NewDesc("latchkey_signing_key_rotation_period_seconds",
			"The age at which a current signing key is rotated.", nil, nil),
	}
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.databaseUp
	ch <- c.sessionsActive
	ch <- c.keyAge
	ch <- c.rotateDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	up := 0.0
	if err := c.p.store.Ping(ctx); err == nil {
		up = 1
		if n, err := c.p.store.CountLoginSessions(ctx); err == nil {
			ch <- prometheus.MustNewConstMetric(c.sessionsActive, prometheus.GaugeValue, float64(n))
		}
	}
	ch <- prometheus.MustNewConstMetric(c.databaseUp, prometheus.GaugeValue, up)
	for _, alg := range c.p.keys.Algs() {
		ch <- prometheus.MustNewConstMetric(c.keyAge, prometheus.GaugeValue, c.p.keys.CurrentKeyAge(alg).Seconds(), alg)
	}
	ch <- prometheus.MustNewConstMetric(c.rotateDesc, prometheus.GaugeValue, c.p.cfg.KeyRotateEvery.Seconds())
}
