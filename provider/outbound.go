package provider

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"syscall"
	"time"
)

// The provider calls URLs that clients choose: request_uri, jwks_uri,
// sector_identifier_uri and backchannel_logout_uri. Without a guard a
// client (a dynamically registered one, if registration is open) could
// point them at the cloud metadata service, the database or an admin port
// on the provider's own network. The guard runs where the address is
// dialled, after name resolution and on every redirect, so a name that
// resolves to a private address (or is rebound to one after a check) is
// refused as surely as a literal one.

// outboundPurpose names the kind of outbound call a policy governs.
type outboundPurpose string

const (
	// outboundFetch reads documents a client points at (request_uri,
	// jwks_uri, sector_identifier_uri): public unicast addresses only.
	outboundFetch outboundPurpose = "fetch"
	// outboundNotify posts back-channel logout tokens. Companies run
	// relying parties on their intranets, so private ranges are allowed.
	outboundNotify outboundPurpose = "notify"
)

// outboundTimeout bounds one outbound call, redirects and body included.
const outboundTimeout = 10 * time.Second

func mustPrefixes(cidrs ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(cidrs))
	for i, c := range cidrs {
		out[i] = netip.MustParsePrefix(c)
	}
	return out
}

var (
	// neverRanges are refused for every purpose: this machine, link-local
	// networks (169.254.169.254 is the cloud metadata service), and what
	// is not a unicast destination at all.
	neverRanges = mustPrefixes(
		"0.0.0.0/8",      // "this network", 0.0.0.0 dials this machine
		"127.0.0.0/8",    // loopback
		"169.254.0.0/16", // link-local, cloud metadata
		"224.0.0.0/4",    // multicast
		"240.0.0.0/4",    // reserved, and the broadcast 255.255.255.255
		"::/96",          // unspecified, loopback ::1, IPv4-compatible ::a.b.c.d
		"fe80::/10",      // link-local
		"ff00::/8",       // multicast
		"2001::/32",      // Teredo: a tunnel, never an intranet host
	)
	// privateRanges are refused for fetches and allowed for notifications.
	privateRanges = mustPrefixes(
		"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", // RFC 1918
		"100.64.0.0/10",  // shared address space (CGNAT), RFC 6598
		"198.18.0.0/15",  // benchmarking, RFC 2544, used inside networks
		"fc00::/7",       // unique local, RFC 4193
		"fec0::/10",      // site-local, deprecated (RFC 3879) but routable inside
		"64:ff9b:1::/48", // local-use NAT64, RFC 8215
	)
	// reservedRanges are the other special-purpose ranges (the IANA
	// special-purpose address registries) that are not public unicast
	// destinations: refused for fetches, harmless for notifications.
	reservedRanges = mustPrefixes(
		"192.0.0.0/24",    // IETF protocol assignments
		"192.0.2.0/24",    // documentation (TEST-NET-1)
		"192.88.99.0/24",  // 6to4 relay anycast, deprecated
		"198.51.100.0/24", // documentation (TEST-NET-2)
		"203.0.113.0/24",  // documentation (TEST-NET-3)
		"2001::/23",       // IETF protocol assignments
		"2001:db8::/32",   // documentation
		"3fff::/20",       // documentation, RFC 9637
	)
	// globalUnicast6 is where IANA allocates global IPv6 unicast; the rest
	// of the IPv6 space is reserved or special.
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
	// nat64 and sixToFour embed an IPv4 address, which decides.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
	// loopbackRanges are what dev mode allows on top of a policy.
	loopbackRanges = mustPrefixes("127.0.0.0/8", "::1/128")
)

// outboundPolicy says which addresses one purpose's outbound calls may
// dial.
type outboundPolicy struct {
	purpose outboundPurpose
	// allowed are the operator's widenings (and loopback in dev mode);
	// they win over every refusal.
	allowed []netip.Prefix
}

// newOutboundPolicy returns purpose's policy widened by allow, and by
// loopback when dev is set.
func newOutboundPolicy(purpose outboundPurpose, allow []netip.Prefix, dev bool) outboundPolicy {
	p := outboundPolicy{purpose: purpose}
	for _, a := range allow {
		if a.IsValid() {
			p.allowed = append(p.allowed, canonicalPrefix(a))
		}
	}
	if dev {
		p.allowed = append(p.allowed, loopbackRanges...)
	}
	return p
}

// canonicalPrefix masks a prefix and writes an IPv4-mapped IPv6 one
// (::ffff:10.0.0.0/104) as the IPv4 prefix it means, since addresses are
// unmapped before they are compared.
func canonicalPrefix(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p
}

// permits reports whether a call of the policy's purpose may dial a.
func (p outboundPolicy) permits(a netip.Addr) bool {
	// A zone never matches a prefix; an IPv4-mapped address is the IPv4
	// address it carries, and is dialled as such.
	a = a.WithZone("").Unmap()
	if !a.IsValid() {
		return false
	}
	if inAny(p.allowed, a) {
		return true
	}
	if v4, ok := embeddedIPv4(a); ok {
		return p.permits(v4)
	}
	if inAny(neverRanges, a) || a.IsLoopback() || a.IsUnspecified() || a.IsMulticast() || a.IsLinkLocalUnicast() {
		return false
	}
	if p.purpose == outboundNotify {
		return true
	}
	if a.Is6() && !globalUnicast6.Contains(a) {
		return false
	}
	return a.IsGlobalUnicast() && !a.IsPrivate() && !inAny(privateRanges, a) && !inAny(reservedRanges, a)
}

// embeddedIPv4 returns the IPv4 address a NAT64 (64:ff9b::/96) or 6to4
// (2002::/16) address stands for: a dial to it reaches that address.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case !a.Is6():
		return netip.Addr{}, false
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

func inAny(prefixes []netip.Prefix, a netip.Addr) bool {
	return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(a) })
}

// outboundRefusedError is the error of a dial the policy refused.
type outboundRefusedError struct {
	purpose outboundPurpose
	addr    netip.Addr
}

func (e *outboundRefusedError) Error() string {
	return fmt.Sprintf("the outbound %s policy refuses %s (an operator may allow it with Config.OutboundAllow, --outbound-allow)", e.purpose, e.addr)
}

// isOutboundRefused reports whether err comes from a refused dial.
func isOutboundRefused(err error) bool {
	var r *outboundRefusedError
	return errors.As(err, &r)
}

// control is the dialer's hook: it sees the address about to be dialled,
// after name resolution, and refuses it unless the policy permits it.
func (p outboundPolicy) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("outbound %s: dial %q: not an IP address and port", p.purpose, address)
	}
	if !p.permits(ap.Addr()) {
		return &outboundRefusedError{purpose: p.purpose, addr: ap.Addr()}
	}
	return nil
}

// guardedClient returns an HTTP client whose every connection, redirects
// included, goes only to addresses p permits. It uses no proxy from the
// environment: a proxy would be what is dialled, and it would reach the
// refused addresses on the client's behalf. roots, when set, replaces the
// system's certificate authorities.
func guardedClient(p outboundPolicy, roots *x509.CertPool) *http.Client {
	dialer := &net.Dialer{Timeout: outboundTimeout, KeepAlive: 30 * time.Second, ControlContext: p.control}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   outboundTimeout,
		ExpectContinueTimeout: time.Second,
	}
	if roots != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: roots}
	}
	return &http.Client{Timeout: outboundTimeout, Transport: t}
}

// outboundClients returns the HTTP clients of the calls whose targets
// clients choose: Config.HTTPClient for both when it is set (its owner
// chose its policy), else guarded clients for fetches and notifications.
func (c Config) outboundClients() (fetch, notify *http.Client) {
	if c.HTTPClient != nil {
		return c.HTTPClient, c.HTTPClient
	}
	return guardedClient(newOutboundPolicy(outboundFetch, c.OutboundAllow, c.Dev), c.outboundRoots),
		guardedClient(newOutboundPolicy(outboundNotify, c.OutboundAllow, c.Dev), c.outboundRoots)
}
