package provider

import (
	"crypto/x509"
	"net/netip"
)

// What the external tests (package provider_test) need of the insides.

// OutboundPermits reports whether the outbound address policy of purpose
// ("fetch" or "notify"), widened by allow and dev as Config.OutboundAllow
// and Config.Dev widen it, lets a call dial a.
func OutboundPermits(purpose string, allow []netip.Prefix, dev bool, a netip.Addr) bool {
	return newOutboundPolicy(outboundPurpose(purpose), allow, dev).permits(a)
}

// TrustOutbound makes the provider's guarded outbound clients trust pool
// instead of the system's authorities: the tests' relying parties serve
// https with httptest's certificate. Everything else about the clients
// stays as the provider builds them.
func TrustOutbound(pool *x509.CertPool) func(*Config) {
	return func(c *Config) { c.outboundRoots = pool }
}
