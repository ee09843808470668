package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// hstsMaxAge is the Strict-Transport-Security max-age of a listener that
// serves TLS itself: two years, the usual preload value.
const hstsMaxAge = "max-age=63072000"

// serverTLS returns the TLS configuration --tls-cert-file and --tls-key-file
// ask for, or nil when neither is set (TLS ends at a proxy). The
// certificate is loaded now, so a bad pair stops the start, and again
// whenever the files change.
func (s *settings) serverTLS(log *slog.Logger) (*tls.Config, error) {
	certFile, keyFile := s.get("tls-cert-file"), s.get("tls-key-file")
	switch {
	case certFile == "" && keyFile == "":
		return nil, nil
	case certFile == "" || keyFile == "":
		return nil, errors.New("--tls-cert-file and --tls-key-file go together: give both to serve HTTPS, or neither to serve plain HTTP behind a TLS-terminating proxy")
	}
	certs := &certificateFiles{certFile: certFile, keyFile: keyFile, log: log}
	if err := certs.load(); err != nil {
		return nil, err
	}
	return hardenedTLS(certs.get), nil
}

// hardenedTLS is the server side of TLS as BCP 195 (RFC 9325) has it: TLS
// 1.2 and 1.3 only; for TLS 1.2, only ECDHE key exchange with AEAD ciphers
// (TLS 1.3's suites are all AEAD and not configurable); X25519 and P-256,
// with the hybrid post-quantum X25519MLKEM768 offered first.
func hardenedTLS(getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			// AES-128-GCM first: HTTP/2 requires it (RFC 9113 §9.2.2).
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519MLKEM768, tls.X25519, tls.CurveP256},
		NextProtos:       []string{"h2", "http/1.1"},
		GetCertificate:   getCertificate,
	}
}

// certificateFiles is a certificate and key pair read from files, read
// again when either file changes (a renewal by cert-manager, certbot or a
// Kubernetes Secret update) without a restart. Each handshake stats the
// files, which costs little next to the handshake; a pair that does not
// load (a renewal half written) is logged and the previous one kept.
type certificateFiles struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	loaded  filesStamp // of cert
	refused filesStamp // of the last pair that failed to load
	missing bool       // the files could not be read at the last handshake
}

// filesStamp identifies a version of the two files.
type filesStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

func (c *certificateFiles) stamp() (filesStamp, error) {
	cert, err := os.Stat(c.certFile)
	if err != nil {
		return filesStamp{}, fmt.Errorf("--tls-cert-file: %w", err)
	}
	key, err := os.Stat(c.keyFile)
	if err != nil {
		return filesStamp{}, fmt.Errorf("--tls-key-file: %w", err)
	}
	return filesStamp{cert.ModTime(), key.ModTime(), cert.Size(), key.Size()}, nil
}

// load reads the pair; the caller holds mu or is alone.
func (c *certificateFiles) load() error {
	st, err := c.stamp()
	if err != nil {
		return err
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		c.refused = st
		return fmt.Errorf("--tls-cert-file %s, --tls-key-file %s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.loaded = &pair, st
	return nil
}

// get is tls.Config.GetCertificate: the current pair, reloaded first when
// the files changed since it was loaded.
func (c *certificateFiles) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.stamp()
	switch {
	case err != nil:
		// The files went away (a volume being replaced): keep serving,
		// and say so once rather than at every handshake.
		if !c.missing {
			c.log.Warn("cannot read the TLS certificate files; serving the loaded certificate", "err", err)
		}
		c.missing = true
		return c.cert, nil
	case st != c.loaded && st != c.refused:
		if err := c.load(); err != nil {
			c.log.Warn("the changed TLS certificate files do not load; serving the previous certificate", "err", err)
		} else {
			c.log.Info("reloaded the TLS certificate", "cert_file", c.certFile)
		}
	}
	c.missing = false
	return c.cert, nil
}

// strictTransport adds Strict-Transport-Security to every answer of a
// listener that serves TLS: browsers then never try plain http for the
// host (RFC 6797).
func strictTransport(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsMaxAge)
		next.ServeHTTP(w, r)
	})
}

// listenTLS makes l serve TLS with cfg, and HSTS, when cfg is set.
func listenTLS(l listener, cfg *tls.Config) listener {
	if cfg != nil {
		l.ln = tls.NewListener(l.ln, cfg)
		l.handler = strictTransport(l.handler)
	}
	return l
}

// scheme is the URL scheme of a listener with TLS configuration cfg.
func scheme(cfg *tls.Config) string {
	if cfg != nil {
		return "https"
	}
	return "http"
}

// checkTLSURLs refuses an http URL for what a TLS listener serves: the
// issuer (serve, serve provider) or the login URL (serve, serve login).
func checkTLSURLs(cfg *tls.Config, mode, issuer, loginURL string) error {
	if cfg == nil {
		return nil
	}
	check := func(flag, u string) error {
		if strings.HasPrefix(strings.ToLower(u), "http://") {
			return fmt.Errorf("%s %q is http, but --tls-cert-file serves https there", flag, u)
		}
		return nil
	}
	if mode != "login" {
		if err := check("--issuer", issuer); err != nil {
			return err
		}
	}
	if mode != "provider" {
		return check("--login-url", loginURL)
	}
	return nil
}
