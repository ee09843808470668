package mail

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/smtp"
	"time"
)

// TLS modes of SMTP.
const (
	TLSStartTLS = "starttls" // plain connection upgraded with STARTTLS, which the server must offer
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, usually port 465)
	TLSNone     = "none"     // no TLS at all; only to a server on a loopback address
)

// defaultTimeout bounds a whole SMTP conversation when SMTP.Timeout is zero.
const defaultTimeout = 30 * time.Second

// SMTP sends mail through an SMTP submission server.
type SMTP struct {
	Addr     string // host:port of the server
	From     string // envelope and header sender, e.g. "Latchkey <login@example.com>"
	Username string // PLAIN authentication when set
	Password string
	// TLS is TLSStartTLS (the default when empty), TLSImplicit or TLSNone.
	// STARTTLS is required, not opportunistic: a server that does not offer
	// it is refused rather than sent codes in the clear.
	TLS       string
	Timeout   time.Duration // for the whole conversation; 30s when zero
	TLSConfig *tls.Config   // optional; ServerName defaults to the host of Addr
}

// Validate reports whether s is usable, without connecting. Send calls it
// too; it is exported so configuration can be checked at start-up.
func (s *SMTP) Validate() error {
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("smtp address %q: %w", s.Addr, err)
	}
	if _, err := parseAddress("From", s.From); err != nil {
		return err
	}
	switch s.mode() {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if !isLoopback(host) {
			return fmt.Errorf("smtp tls %q is only allowed to a loopback host, not %q", TLSNone, host)
		}
	default:
		return fmt.Errorf("smtp tls %q: want %q, %q or %q", s.TLS, TLSStartTLS, TLSImplicit, TLSNone)
	}
	if s.Password != "" && s.Username == "" {
		return fmt.Errorf("smtp password set without a username")
	}
	return nil
}

func (s *SMTP) mode() string {
	if s.TLS == "" {
		return TLSStartTLS
	}
	return s.TLS
}

// isLoopback reports whether host names this machine, the only place an
// unencrypted connection cannot be read by others.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Send delivers m through the server. It gives up when ctx is done or
// s.Timeout has passed, whichever is first.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	if err := s.Validate(); err != nil {
		return err
	}
	from, _ := parseAddress("From", s.From) // checked by Validate
	to, err := m.check()
	if err != nil {
		return err
	}
	body, err := compose(from, to, m, time.Now())
	if err != nil {
		return err
	}

	timeout := s.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	host, _, _ := net.SplitHostPort(s.Addr) // checked by Validate
	conn, err := s.dial(ctx, host)
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	defer conn.Close()
	// net/smtp has no context support: when ctx is done (cancelled, or out
	// of time), moving the deadline into the past aborts the blocked read or
	// write at once, and ctx.Err() says why.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if err := s.converse(conn, host, from.Address, to.Address, body); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("smtp %s: %w (%w)", s.Addr, ctx.Err(), err)
		}
		return fmt.Errorf("smtp %s: %w", s.Addr, err)
	}
	return nil
}

func (s *SMTP) tlsConfig(host string) *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.TLSConfig != nil {
		c = s.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = host
	}
	return c
}

func (s *SMTP) dial(ctx context.Context, host string) (net.Conn, error) {
	if s.mode() == TLSImplicit {
		d := &tls.Dialer{Config: s.tlsConfig(host)}
		return d.DialContext(ctx, "tcp", s.Addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", s.Addr)
}

// converse runs the SMTP conversation on an established connection.
func (s *SMTP) converse(conn net.Conn, host, from, to string, body []byte) error {
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if s.mode() == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("server does not offer STARTTLS")
		}
		if err := c.StartTLS(s.tlsConfig(host)); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if s.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("server does not offer AUTH")
		}
		// smtp.PlainAuth itself refuses to send the password over an
		// unencrypted connection to anything but localhost.
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("rcpt to: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(body); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("quit: %w", err)
	}
	return nil
}
