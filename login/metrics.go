package login

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the login app's own counters.
type metrics struct {
	signIns    *prometheus.CounterVec
	challenges *prometheus.CounterVec
	lockouts   *prometheus.CounterVec
}

// First-factor methods, the method label of sign-ins.
const (
	methodPassword      = "password"
	methodPasskey       = "passkey"
	methodUpstream      = "upstream"
	methodPasswordGrant = "password_grant" // the provider's password grant asking
)

// Results of sign-ins and second-factor checks.
const (
	resultSuccess   = "success"
	resultFailure   = "failure"
	resultThrottled = "throttled"
	resultSent      = "sent" // an email code went out
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_login_signins_total",
			Help: "Sign-in attempts at the login app by first-factor method (password, passkey, upstream, password_grant) and result (success, failure, throttled).",
		}, []string{"method", "result"}),
		challenges: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_login_mfa_challenges_total",
			Help: "Second-factor verifications by method (totp, webauthn, email, recovery) and result (success, failure, throttled, sent).",
		}, []string{"method", "result"}),
		lockouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_login_lockouts_total",
			Help: "Times a throttle reached its threshold and locked an account or source, by kind (password, password_source, code).",
		}, []string{"kind"}),
	}
	// Every label value is exported at zero from the start, so dashboards
	// and rates see a series before the first event.
	for _, method := range []string{methodPassword, methodPasskey, methodUpstream, methodPasswordGrant} {
		for _, result := range []string{resultSuccess, resultFailure, resultThrottled} {
			m.signIns.WithLabelValues(method, result)
		}
	}
	for _, method := range []string{"totp", "webauthn", "email", "recovery"} {
		for _, result := range []string{resultSuccess, resultFailure, resultThrottled} {
			m.challenges.WithLabelValues(method, result)
		}
	}
	m.challenges.WithLabelValues("email", resultSent)
	for _, kind := range []string{"password", "password_source", "code"} {
		m.lockouts.WithLabelValues(kind)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.signIns, m.challenges, m.lockouts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("login metrics: %w", err)
		}
	}
	return m, nil
}
