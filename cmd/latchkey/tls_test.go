package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// writeTestCert writes a self-signed ECDSA P-256 certificate for
// 127.0.0.1 and localhost, and its key, as PEM files in dir, and returns
// their paths and the certificate.
func writeTestCert(t *testing.T, dir, name string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writeFile(t, certFile, string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	writeFile(t, keyFile, string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})))
	return certFile, keyFile, cert
}

// tlsClient is an HTTP client that trusts roots, with cfg's other settings.
func tlsClient(roots *x509.CertPool, cfg *tls.Config) *http.Client {
	cfg = cfg.Clone()
	cfg.RootCAs = roots
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: true}}
}

// TestServeTLS serves the public endpoints over HTTPS with
// --tls-cert-file and --tls-key-file: discovery answers with an https
// issuer and Strict-Transport-Security over TLS 1.3 and over TLS 1.2 with an
// AEAD suite, over HTTP/2; X25519MLKEM768, X25519 and P-256 are the key
// exchange groups; TLS 1.1, TLS 1.2 with only CBC suites, other groups and
// plain HTTP are refused; a renewed certificate is served without a restart, and one that
// does not load leaves the previous one in place. The admin API stays
// plain HTTP.
func TestServeTLS(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	certFile, keyFile, first := writeTestCert(t, dir, "first")
	roots := x509.NewCertPool()
	roots.AddCert(first)
	srv := startServeWith(t, tlsClient(roots, &tls.Config{}), "--data-dir", filepath.Join(dir, "data"),
		"--tls-cert-file", certFile, "--tls-key-file", keyFile)
	if !strings.HasPrefix(srv.public, "https://") || srv.issuer != srv.public {
		t.Fatalf("public %s, issuer %s: want the https listener as the issuer", srv.public, srv.issuer)
	}
	host := strings.TrimPrefix(srv.public, "https://")

	discovery := func(t *testing.T, cfg *tls.Config) *http.Response {
		t.Helper()
		resp, err := tlsClient(roots, cfg).Get(srv.public + "/.well-known/openid-configuration")
		if err != nil {
			t.Fatalf("discovery over https: %v", err)
		}
		defer resp.Body.Close()
		var doc map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("discovery: %d %v", resp.StatusCode, err)
		}
		if doc["issuer"] != srv.issuer || doc["token_endpoint"] != srv.issuer+"/oauth2/token" {
			t.Errorf("discovery over https names issuer %v, token endpoint %v", doc["issuer"], doc["token_endpoint"])
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000" {
			t.Errorf("Strict-Transport-Security %q, want max-age=63072000", got)
		}
		return resp
	}
	refused := func(t *testing.T, cfg *tls.Config) {
		t.Helper()
		cfg = cfg.Clone()
		cfg.RootCAs = roots
		conn, err := tls.Dial("tcp", host, cfg)
		if err == nil {
			st := conn.ConnectionState()
			conn.Close()
			t.Fatalf("handshake succeeded: version %x, suite %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
		}
	}

	t.Run("TLS 1.3", func(t *testing.T) {
		resp := discovery(t, &tls.Config{MinVersion: tls.VersionTLS13})
		if resp.TLS.Version != tls.VersionTLS13 || resp.ProtoMajor != 2 {
			t.Errorf("version %x over %s, want TLS 1.3 and HTTP/2", resp.TLS.Version, resp.Proto)
		}
	})
	t.Run("TLS 1.2 with an AEAD suite", func(t *testing.T) {
		st := discovery(t, &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}).TLS
		if st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 {
			t.Errorf("version %x suite %s", st.Version, tls.CipherSuiteName(st.CipherSuite))
		}
	})
	t.Run("key exchange groups", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			curve tls.CurveID
		}{{"X25519MLKEM768", tls.X25519MLKEM768}, {"X25519", tls.X25519}, {"P-256", tls.CurveP256}} {
			if st := discovery(t, &tls.Config{CurvePreferences: []tls.CurveID{tc.curve}}).TLS; st.CurveID != tc.curve {
				t.Errorf("%s: negotiated %s", tc.name, st.CurveID)
			}
		}
		for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
			refused(t, &tls.Config{MinVersion: v, MaxVersion: v, CurvePreferences: []tls.CurveID{tls.CurveP384, tls.CurveP521}})
		}
	})
	t.Run("TLS 1.1 refused", func(t *testing.T) {
		refused(t, &tls.Config{MinVersion: tls.VersionTLS11, MaxVersion: tls.VersionTLS11})
	})
	t.Run("TLS 1.2 with only CBC suites refused", func(t *testing.T) {
		refused(t, &tls.Config{MaxVersion: tls.VersionTLS12, CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256,
		}})
	})
	t.Run("plain HTTP refused", func(t *testing.T) {
		resp, err := http.Get("http://" + host + "/.well-known/openid-configuration")
		if err != nil {
			return // the connection was dropped: nothing was served in the clear
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || bytes.Contains(body, []byte("issuer")) {
			t.Fatalf("plain HTTP to the TLS listener: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("admin API stays plain HTTP", func(t *testing.T) {
		if !strings.HasPrefix(srv.admin, "http://") {
			t.Fatalf("admin API at %s", srv.admin)
		}
		if status := adminGet(t, srv, "wrong-token-0123456789", "/admin/keys", nil); status != http.StatusUnauthorized {
			t.Errorf("admin API over http: %d", status)
		}
	})
	t.Run("certificate reloaded", func(t *testing.T) {
		serving := func(t *testing.T) *x509.Certificate {
			t.Helper()
			conn, err := tls.Dial("tcp", host, &tls.Config{RootCAs: roots})
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			return conn.ConnectionState().PeerCertificates[0]
		}
		if got := serving(t); !got.Equal(first) {
			t.Fatalf("serving %s, want the first certificate", got.Subject.CommonName)
		}
		// A renewal replaces both files. Their modification time is set
		// apart from the first pair's, as a renewal a second later has.
		_, _, second := writeTestCert(t, dir, "second")
		roots.AddCert(second)
		later := time.Now().Add(time.Hour)
		for _, f := range []string{certFile, keyFile} {
			if err := os.Chtimes(f, later, later); err != nil {
				t.Fatal(err)
			}
		}
		if got := serving(t); !got.Equal(second) {
			t.Fatalf("serving %s after the renewal, want the second certificate", got.Subject.CommonName)
		}
		// A renewal half written (the key does not match) keeps the
		// second certificate in service.
		writeFile(t, keyFile, "not a key")
		if got := serving(t); !got.Equal(second) {
			t.Fatalf("serving %s after a broken renewal, want the second certificate", got.Subject.CommonName)
		}
		if !strings.Contains(srv.stderr.String(), "do not load") {
			t.Errorf("the broken renewal was not logged: %s", srv.stderr.String())
		}
	})
}

// TestServeLoginTLS: "serve login" serves the login app over HTTPS with
// the same two flags, with Strict-Transport-Security.
func TestServeLoginTLS(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	certFile, keyFile, cert := writeTestCert(t, dir, "login")
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	addr := latchkeytest.FreeAddr(t)
	loginURL := "https://" + addr + "/login"
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var out, errOut latchkeytest.Output
	go func() {
		done <- run(ctx, []string{"serve", "login", "--data-dir", filepath.Join(dir, "data"),
			"--issuer", "https://" + addr, "--login-url", loginURL, "--login-addr", addr,
			"--admin-url", "http://127.0.0.1:9", "--admin-token", "login-admin-token-0123456789",
			"--metrics-addr", "off", "--tls-cert-file", certFile, "--tls-key-file", keyFile}, &out, &errOut)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			t.Error("serve login did not stop")
		}
	})
	client := tlsClient(roots, &tls.Config{MinVersion: tls.VersionTLS13})
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get(loginURL + "/login")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`id="password-form"`)) {
				t.Fatalf("the login app over https: %d %s", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000" {
				t.Errorf("Strict-Transport-Security %q", got)
			}
			break
		}
		select {
		case err := <-done:
			t.Fatalf("serve login ended: %v\n%s", err, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve login does not answer over https: %v\n%s", err, errOut.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "https://"+addr) {
		t.Errorf("serve login does not say it listens on https: %s", out.String())
	}
}

// TestServeTLSSettings: the TLS flags are both given or neither, name files
// that load, and go with an https issuer and login URL.
func TestServeTLSSettings(t *testing.T) {
	cleanEnv(t)
	dir := t.TempDir()
	certFile, keyFile, _ := writeTestCert(t, dir, "settings")
	_, otherKey, _ := writeTestCert(t, t.TempDir(), "other")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"cert without key", []string{"--tls-cert-file", certFile}, "--tls-cert-file and --tls-key-file go together"},
		{"key without cert", []string{"--tls-key-file", keyFile}, "--tls-cert-file and --tls-key-file go together"},
		{"missing file", []string{"--tls-cert-file", filepath.Join(dir, "nope.crt"), "--tls-key-file", keyFile}, "--tls-cert-file"},
		{"key of another certificate", []string{"--tls-cert-file", certFile, "--tls-key-file", otherKey}, "private key does not match"},
		{"http issuer", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--issuer", "http://127.0.0.1:8443"}, "--issuer"},
		{"http login URL", []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile, "--login-url", "http://127.0.0.1:8443/login"}, "--login-url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--public-addr", "127.0.0.1:0",
				"--admin-addr", "127.0.0.1:0", "--metrics-addr", "off"}, tc.args...)
			var stdout, stderr bytes.Buffer
			err := run(context.Background(), args, &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve %v: %v, want an error saying %q", tc.args, err, tc.want)
			}
		})
	}
	// The environment variables are the flags' equivalents.
	t.Setenv("LATCHKEY_TLS_CERT_FILE", certFile)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"serve", "--data-dir", filepath.Join(t.TempDir(), "d"), "--public-addr", "127.0.0.1:0",
		"--admin-addr", "127.0.0.1:0", "--metrics-addr", "off"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "go together") {
		t.Errorf("LATCHKEY_TLS_CERT_FILE alone: %v", err)
	}
}
