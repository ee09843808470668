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
