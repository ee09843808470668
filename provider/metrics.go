package provider

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the provider's Prometheus collectors.
type metrics struct {
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

// newMetrics builds the collectors and registers them with reg unless it
// is nil. A collector reg already holds from an earlier provider in the
// same process is used as it is, so counts continue.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		backchannelDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "latchkey_backchannel_logout_deliveries_total",
			Help: "Back-channel logout delivery attempts by result: delivered, retry (failed, tried again later) or failed (given up).",
		}, []string{"result"}),
	}
	if reg != nil {
		if err := reg.Register(m.backchannelDeliveries); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, fmt.Errorf("provider metrics: %w", err)
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, fmt.Errorf("provider metrics: %w", err)
			}
			m.backchannelDeliveries = existing
		}
	}
	for _, result := range []string{deliveryDelivered, deliveryRetry, deliveryFailed} {
		m.backchannelDeliveries.WithLabelValues(result) // exported at zero from the start
	}
	return m, nil
}
