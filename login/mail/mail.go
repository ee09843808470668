// Package mail sends the one-time codes and notices of the login app by
// e-mail: over SMTP in production, and to a JSON-lines outbox file in
// development, where nobody wants to run a mail server to sign in.
package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// Message is a plain-text e-mail to one recipient.
type Message struct {
	To      string // an RFC 5322 address: "user@example.com" or "Name <user@example.com>"
	Subject string
	Text    string
}

// Sender delivers a Message. Implementations return once the message has been
// handed over (to the SMTP server, or to the outbox file).
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// ErrInvalidMessage is returned for a message that must not be sent: a
// malformed address, or a line break in a header (header injection).
var ErrInvalidMessage = errors.New("invalid mail message")

// checkHeader refuses values that would end a header line early and let the
// rest of the value be read as further headers or as the body.
func checkHeader(name, value string) error {
	if strings.ContainsAny(value, "\r\n") {
		return fmt.Errorf("%w: line break in %s", ErrInvalidMessage, name)
	}
	return nil
}

// parseAddress checks a header for line breaks and parses it as one address.
func parseAddress(name, value string) (*mail.Address, error) {
	if err := checkHeader(name, value); err != nil {
		return nil, err
	}
	a, err := mail.ParseAddress(value)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %q: %w", ErrInvalidMessage, name, value, err)
	}
	return a, nil
}

// check validates the parts of m that end up in headers and returns the
// parsed recipient.
func (m Message) check() (*mail.Address, error) {
	to, err := parseAddress("To", m.To)
	if err != nil {
		return nil, err
	}
	if err := checkHeader("Subject", m.Subject); err != nil {
		return nil, err
	}
	return to, nil
}

// compose renders m as an RFC 5322 message with a quoted-printable UTF-8
// body, ready for the SMTP DATA command.
func compose(from, to *mail.Address, m Message, now time.Time) ([]byte, error) {
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(value)
		b.WriteString("\r\n")
	}
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", "<"+strings.ToLower(rand.Text())+"@"+domain+">")
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(m.Text)); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}
