package mail

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

// received is what the fake SMTP server was given in one conversation.
type received struct {
	auth     string // decoded AUTH PLAIN response, "\x00user\x00pass"
	from, to string
	data     []byte
	tls      bool // whether the mail was sent over TLS
}

// smtpServer is just enough of an RFC 5321 server on 127.0.0.1 to receive
// one message: EHLO, optional STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
type smtpServer struct {
	addr string
	got  chan received
}

// serverOptions choose what the fake server offers.
type serverOptions struct {
	startTLS *tls.Config // offer STARTTLS with this config
	implicit *tls.Config // speak TLS from the first byte
	silent   bool        // accept the connection and never answer
}

func startSMTP(t *testing.T, opts serverOptions) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if opts.implicit != nil {
		ln = tls.NewListener(ln, opts.implicit)
	}
	s := &smtpServer{addr: ln.Addr().String(), got: make(chan received, 1)}
	done := make(chan struct{})
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	go func() {
		defer close(done)
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if opts.silent {
			_, _ = io.Copy(io.Discard, conn) // until the client gives up
			return
		}
		r := received{tls: opts.implicit != nil}
		err = s.serve(conn, opts, &r)
		if errors.Is(err, io.EOF) {
			return // the client hung up without sending mail
		}
		if err != nil {
			t.Errorf("smtp server: %v", err)
			return
		}
		s.got <- r
	}()
	return s
}

func (s *smtpServer) serve(conn net.Conn, opts serverOptions, r *received) error {
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(conn)
	reply := func(lines ...string) error {
		return tp.PrintfLine("%s", strings.Join(lines, "\r\n"))
	}
	if err := reply("220 test.invalid ESMTP"); err != nil {
		return err
	}
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return err
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"250-test.invalid"}
			if opts.startTLS != nil && !r.tls {
				ext = append(ext, "250-STARTTLS")
			}
			err = reply(append(ext, "250-AUTH PLAIN", "250 8BITMIME")...)
		case "STARTTLS":
			if err := reply("220 go ahead"); err != nil {
				return err
			}
			tc := tls.Server(conn, opts.startTLS)
			if err := tc.Handshake(); err != nil {
				return err
			}
			tp = textproto.NewConn(tc)
			r.tls = true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			dec, derr := base64.StdEncoding.DecodeString(resp)
			if mech != "PLAIN" || derr != nil {
				err = reply("504 unsupported")
				break
			}
			r.auth = string(dec)
			err = reply("235 authenticated")
		case "MAIL":
			r.from, _, _ = strings.Cut(strings.TrimPrefix(arg, "FROM:<"), ">")
			err = reply("250 ok")
		case "RCPT":
			r.to, _, _ = strings.Cut(strings.TrimPrefix(arg, "TO:<"), ">")
			err = reply("250 ok")
		case "DATA":
			if err := reply("354 end with ."); err != nil {
				return err
			}
			if r.data, err = tp.ReadDotBytes(); err != nil {
				return err
			}
			err = reply("250 queued")
		case "QUIT":
			return reply("221 bye")
		default:
			err = reply("502 not implemented")
		}
		if err != nil {
			return err
		}
	}
}

// wait returns what the server received, failing the test after a while.
func (s *smtpServer) wait(t *testing.T) received {
	t.Helper()
	select {
	case r := <-s.got:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("smtp server received nothing")
		return received{}
	}
}

// testTLS returns a server config with a self-signed certificate for
// 127.0.0.1 and a client config that trusts it.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}

func TestSMTPDelivers(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	tests := []struct {
		name    string
		mode    string
		opts    serverOptions
		wantTLS bool
	}{
		{"plain to loopback", TLSNone, serverOptions{}, false},
		{"starttls", TLSStartTLS, serverOptions{startTLS: serverTLS}, true},
		{"starttls by default", "", serverOptions{startTLS: serverTLS}, true},
		{"implicit tls", TLSImplicit, serverOptions{implicit: serverTLS}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, tt.opts)
			s := &SMTP{
				Addr:      srv.addr,
				From:      "Latchkey <login@latchkey.test>",
				Username:  "mailer",
				Password:  "s3cret",
				TLS:       tt.mode,
				Timeout:   5 * time.Second,
				TLSConfig: clientTLS,
			}
			msg := Message{
				To:      "Zoë Example <zoe@example.test>",
				Subject: "Your sign-in code: 123456 ✓",
				Text:    "Your code is 123456.\n.\nA line that is longer than seventy-six characters, so quoted-printable must wrap it = fine.\n",
			}
			if err := s.Send(context.Background(), msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			r := srv.wait(t)
			if r.tls != tt.wantTLS {
				t.Errorf("sent over TLS = %v, want %v", r.tls, tt.wantTLS)
			}
			if r.auth != "\x00mailer\x00s3cret" {
				t.Errorf("AUTH PLAIN = %q", r.auth)
			}
			if r.from != "login@latchkey.test" || r.to != "zoe@example.test" {
				t.Errorf("envelope = %q -> %q", r.from, r.to)
			}
			checkMessage(t, r.data, msg)
		})
	}
}

// checkMessage parses data as RFC 5322 and compares it with what was sent.
func checkMessage(t *testing.T, data []byte, want Message) {
	t.Helper()
	m, err := mail.ReadMessage(strings.NewReader(string(data)))
	if err != nil {
		t.Fatalf("parse message: %v\n%s", err, data)
	}
	h := m.Header
	if _, err := h.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@latchkey.test>") {
		t.Errorf("Message-ID = %q", id)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Name != "Latchkey" || from[0].Address != "login@latchkey.test" {
		t.Errorf("From = %v, %v", from, err)
	}
	to, err := h.AddressList("To")
	wantTo, _ := mail.ParseAddress(want.To)
	if err != nil || len(to) != 1 || *to[0] != *wantTo {
		t.Errorf("To = %v, %v; want %v", to, err, wantTo)
	}
	if raw := h.Get("Subject"); !strings.HasPrefix(raw, "=?utf-8?q?") {
		t.Errorf("raw Subject %q is not Q-encoded", raw)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil || subject != want.Subject {
		t.Errorf("Subject = %q, %v; want %q", subject, err, want.Subject)
	}
	for name, value := range map[string]string{
		"MIME-Version":              "1.0",
		"Content-Type":              "text/plain; charset=utf-8",
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if got := h.Get(name); got != value {
			t.Errorf("%s = %q, want %q", name, got, value)
		}
	}
	body, err := io.ReadAll(quotedprintable.NewReader(m.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	// ReadDotBytes has already turned the CRLF line ends into LF.
	wantBody := want.Text + "\n"
	if string(body) != wantBody {
		t.Errorf("body = %q, want %q", body, wantBody)
	}
}

func TestSMTPRefuses(t *testing.T) {
	valid := Message{To: "user@example.test", Subject: "Code", Text: "123456"}
	tests := []struct {
		name    string
		smtp    SMTP
		msg     Message
		invalid bool // want ErrInvalidMessage
	}{
		{"CRLF in To", SMTP{TLS: TLSNone}, Message{To: "user@example.test\r\nBcc: evil@example.test", Subject: "Code"}, true},
		{"LF in Subject", SMTP{TLS: TLSNone}, Message{To: "user@example.test", Subject: "Code\nBcc: evil@example.test"}, true},
		{"CR in From", SMTP{TLS: TLSNone, From: "login@latchkey.test\rBcc: evil@example.test"}, valid, true},
		{"invalid To", SMTP{TLS: TLSNone}, Message{To: "not an address", Subject: "Code"}, true},
		{"invalid From", SMTP{TLS: TLSNone, From: "latchkey"}, valid, true},
		{"none to a remote host", SMTP{TLS: TLSNone, Addr: "smtp.example.test:25"}, valid, false},
		{"unknown TLS mode", SMTP{TLS: "maybe"}, valid, false},
		{"address without port", SMTP{TLS: TLSNone, Addr: "127.0.0.1"}, valid, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A live server that must never be sent anything.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				if conn, err := ln.Accept(); err == nil {
					t.Error("Send connected to the server")
					conn.Close()
				}
			}()
			s := tt.smtp
			if s.Addr == "" {
				s.Addr = ln.Addr().String()
			}
			if s.From == "" {
				s.From = "login@latchkey.test"
			}
			err = s.Send(context.Background(), tt.msg)
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := errors.Is(err, ErrInvalidMessage); got != tt.invalid {
				t.Errorf("errors.Is(%v, ErrInvalidMessage) = %v, want %v", err, got, tt.invalid)
			}
		})
	}
}

func TestSMTPRequiresOfferedStartTLS(t *testing.T) {
	srv := startSMTP(t, serverOptions{}) // offers no STARTTLS
	s := &SMTP{Addr: srv.addr, From: "login@latchkey.test", Username: "mailer", Password: "s3cret", Timeout: 5 * time.Second}
	err := s.Send(context.Background(), Message{To: "user@example.test", Subject: "Code", Text: "123456"})
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send = %v, want a STARTTLS error", err)
	}
	select {
	case r := <-srv.got:
		t.Fatalf("server received %+v in the clear", r)
	default:
	}
}

func TestSMTPGivesUp(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
	}{
		{"timeout", 200 * time.Millisecond, func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }},
		{"context", time.Minute, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 200*time.Millisecond)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := startSMTP(t, serverOptions{silent: true})
			ctx, cancel := tt.ctx()
			defer cancel()
			s := &SMTP{Addr: srv.addr, From: "login@latchkey.test", TLS: TLSNone, Timeout: tt.timeout}
			start := time.Now()
			err := s.Send(ctx, Message{To: "user@example.test", Subject: "Code"})
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Send = %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Send took %v", d)
			}
		})
	}
}

func TestSMTPValidate(t *testing.T) {
	tests := []struct {
		addr, mode string
		ok         bool
	}{
		{"127.0.0.1:25", TLSNone, true},
		{"[::1]:25", TLSNone, true},
		{"localhost:1025", TLSNone, true},
		{"10.0.0.1:25", TLSNone, false},
		{"smtp.example.test:587", TLSNone, false},
		{"smtp.example.test:587", "", true},
		{"smtp.example.test:465", TLSImplicit, true},
	}
	for _, tt := range tests {
		s := &SMTP{Addr: tt.addr, From: "login@latchkey.test", TLS: tt.mode}
		if err := s.Validate(); (err == nil) != tt.ok {
			t.Errorf("Validate(%s, %q) = %v, want ok %v", tt.addr, tt.mode, err, tt.ok)
		}
	}
}
