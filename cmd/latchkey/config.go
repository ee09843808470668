package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/latchkey-oidc/latchkey/provider/observe"
	"github.com/latchkey-oidc/latchkey/store"
)

// A setting is an option every source can give: a flag, its LATCHKEY_*
// environment variable, and its key in the YAML config file (the flag's
// name). A flag beats the environment, which beats the file, which beats
// the default.
type setting struct {
	env    string
	def    string
	usage  string
	isBool bool
}

// settingDefs are every command's settings, by name. A config file may
// hold any of them: one file serves every command.
var settingDefs = map[string]setting{
	"database-url": {env: "LATCHKEY_DATABASE_URL",
		usage: "database: postgres://… or a SQLite file path; default: latchkey.db in --data-dir"},
	"data-dir": {env: "LATCHKEY_DATA_DIR", def: "latchkey-data",
		usage: "directory of the embedded SQLite database, the generated system secret and admin token"},
	"issuer": {env: "LATCHKEY_ISSUER",
		usage: "issuer URL, https outside loopback unless --dev; default: http:// and the public address"},
	"login-url": {env: "LATCHKEY_LOGIN_URL",
		usage: "base URL of the login app; default: the issuer + /login"},
	"admin-token": {env: "LATCHKEY_ADMIN_TOKEN",
		usage: "bearer token of the admin API (16+ characters); default: generated once into <data-dir>/admin-token"},
	"system-secret": {env: "LATCHKEY_SYSTEM_SECRET",
		usage: "secret (32+ bytes) that keys token HMACs and seals signing keys; required with PostgreSQL; default: generated once into <data-dir>/system-secret"},
	"old-system-secrets": {env: "LATCHKEY_OLD_SYSTEM_SECRETS",
		usage: "comma-separated previous system secrets, still accepted during a rotation"},
	"dev": {env: "LATCHKEY_DEV", isBool: true,
		usage: "dev mode: allow a plain http issuer and http redirect URIs off loopback"},
	"registration": {env: "LATCHKEY_REGISTRATION", def: "closed",
		usage: "dynamic client registration at /oauth2/register (RFC 7591/7592): closed, open (anyone may register), or token (an initial access token from --registration-tokens is required)"},
	"registration-tokens": {env: "LATCHKEY_REGISTRATION_TOKENS",
		usage: "comma-separated initial access tokens (16+ characters each) for --registration token"},
	"outbound-allow": {env: "LATCHKEY_OUTBOUND_ALLOW",
		usage: "comma-separated CIDR prefixes (or single addresses) the provider may call at URLs clients choose, on top of its policy: fetches of request_uri, jwks_uri and sector_identifier_uri go only to public addresses, back-channel logouts also to private ones but never to loopback, link-local or multicast; e.g. 10.20.0.0/16 for an intranet JWKS; default: none (--dev adds loopback)"},
	"public-addr": {env: "LATCHKEY_PUBLIC_ADDR", def: "127.0.0.1:8080",
		usage: "listen address of the public endpoints"},
	"admin-addr": {env: "LATCHKEY_ADMIN_ADDR", def: "127.0.0.1:8081",
		usage: "listen address of the admin API"},
	"login-addr": {env: "LATCHKEY_LOGIN_ADDR", def: "127.0.0.1:8082",
		usage: "listen address of the login app when it runs alone (serve login)"},
	"admin-url": {env: "LATCHKEY_ADMIN_URL", def: "http://127.0.0.1:8081",
		usage: "the provider's admin API, for the login app when it runs alone (serve login)"},
	"smtp-addr": {env: "LATCHKEY_SMTP_ADDR",
		usage: "SMTP server (host:port) for sign-in codes; default: codes are written to <data-dir>/outbox.jsonl"},
	"smtp-from":     {env: "LATCHKEY_SMTP_FROM", usage: "sender address of sign-in code emails"},
	"smtp-username": {env: "LATCHKEY_SMTP_USERNAME", usage: "SMTP user name"},
	"smtp-password": {env: "LATCHKEY_SMTP_PASSWORD", usage: "SMTP password"},
	"smtp-tls": {env: "LATCHKEY_SMTP_TLS", def: "starttls",
		usage: "SMTP transport security: starttls, tls, or none (loopback only)"},
	"upstreams": {env: "LATCHKEY_UPSTREAMS",
		usage: "YAML or JSON file listing upstream OpenID providers people may sign in with"},
	"log-format": {env: "LATCHKEY_LOG_FORMAT", def: "auto",
		usage: "log format: text, json, or auto (text on a terminal, else json)"},
	"metrics-addr": {env: "LATCHKEY_METRICS_ADDR", def: "127.0.0.1:9464",
		usage: "listen address of the Prometheus /metrics endpoint (and /health/*), or off"},
	"pprof": {env: "LATCHKEY_PPROF", isBool: true,
		usage: "serve Go's CPU, heap and other profiles under /debug/pprof/ on the metrics listener (keep that listener private)"},
	"metrics-per-client": {env: "LATCHKEY_METRICS_PER_CLIENT", isBool: true,
		usage: "add latchkey_client_tokens_issued_total, labelled by client_id (one series per client and grant)"},
	"key-refresh-interval": {env: "LATCHKEY_KEY_REFRESH_INTERVAL", def: "1m",
		usage: "how often the provider looks for signing keys another replica rotated, and rotates keys that are due"},
	"key-rotation-period": {env: "LATCHKEY_KEY_ROTATION_PERIOD", def: "720h",
		usage: "age at which a current signing key is rotated (the next key, published since the last rotation, takes over)"},
	"access-token-format": {env: "LATCHKEY_ACCESS_TOKEN_FORMAT", def: "opaque",
		usage: "access token format of clients that do not choose one (latchkey_access_token_format): opaque, or jwt (RFC 9068, signed with the provider's keys)"},
	"token-rate-limit": {env: "LATCHKEY_TOKEN_RATE_LIMIT", def: "0",
		usage: "token requests per second each client may make to one replica, unless the client has its own latchkey_token_rate_limit; over it, 429 too_many_requests; 0 is no limit"},
	"request-timeout": {env: "LATCHKEY_REQUEST_TIMEOUT", def: "30s",
		usage: "deadline of every request on the public, admin and login listeners; a request whose database work outlasts it is answered 503 temporarily_unavailable"},
	"max-body-bytes": {env: "LATCHKEY_MAX_BODY_BYTES", def: "1048576",
		usage: "largest request body any listener accepts; a larger one is answered 413"},
	"max-header-bytes": {env: "LATCHKEY_MAX_HEADER_BYTES", def: "65536",
		usage: "largest request line and headers any listener accepts; larger ones are answered 431"},
	"tls-cert-file": {env: "LATCHKEY_TLS_CERT_FILE",
		usage: "PEM certificate (chain) to serve HTTPS on the listener browsers reach: the public one (serve, serve provider) or the login app's (serve login); with --tls-key-file; reloaded when the files change; default: plain HTTP, TLS ending at a proxy"},
	"tls-key-file": {env: "LATCHKEY_TLS_KEY_FILE",
		usage: "PEM private key of --tls-cert-file"},
	"database-max-conns": {env: "LATCHKEY_DATABASE_MAX_CONNS",
		usage: "most database connections this process opens; default 32 for PostgreSQL, 8 for SQLite"},
	"password-check-url": {env: "LATCHKEY_PASSWORD_CHECK_URL",
		usage: "where the provider asks the login app to check a password for the password grant; default: the login URL + /internal/password (set it when the login URL is only reachable by browsers)"},
	"log-level": {env: "LATCHKEY_LOG_LEVEL", def: "info",
		usage: "log level: debug, info, warn or error"},
}

// dbSettings are what every command that opens the store takes.
var dbSettings = []string{"database-url", "data-dir"}

// secretSettings are what commands that hash client secrets or unseal
// signing keys take, to match the server.
var secretSettings = []string{"system-secret", "old-system-secrets", "dev"}

// flagValue is a setting's flag; it records whether the flag was given.
type flagValue struct {
	value  string
	set    bool
	isBool bool
}

func (v *flagValue) String() string     { return v.value }
func (v *flagValue) Set(s string) error { v.value, v.set = s, true; return nil }
func (v *flagValue) IsBoolFlag() bool   { return v.isBool }

// settings are one command's flags, resolved against the environment and
// the config file by parse.
type settings struct {
	fs       *flag.FlagSet
	flags    map[string]*flagValue
	config   *flagValue
	file     map[string]string
	fileName string
}

// newSettings returns the flag set of command with the named settings,
// and --config. Commands add their own plain flags to fs.
func newSettings(command string, stderr io.Writer, names ...string) *settings {
	s := &settings{
		fs:     flag.NewFlagSet("latchkey "+command, flag.ContinueOnError),
		flags:  map[string]*flagValue{},
		config: &flagValue{},
	}
	s.fs.SetOutput(stderr)
	s.fs.Var(s.config, "config", "YAML config file whose keys are these flags' names (env LATCHKEY_CONFIG)")
	for _, name := range names {
		def, ok := settingDefs[name]
		if !ok {
			panic("unknown setting " + name) // a programming error, caught by any test of the command
		}
		v := &flagValue{isBool: def.isBool}
		s.flags[name] = v
		usage := def.usage + " (env " + def.env
		if def.def != "" {
			usage += ", default " + def.def
		}
		s.fs.Var(v, name, usage+")")
	}
	return s
}

// parse parses args, which may mix flags and positional arguments, reads
// the config file, and returns the positional arguments. A bad flag is
// errUsage, after the flag package printed why.
func (s *settings) parse(args []string) ([]string, error) {
	var positional []string
	for {
		if err := s.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, errUsage
		}
		args = s.fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	s.fileName = s.config.value
	if !s.config.set {
		s.fileName = env("LATCHKEY_CONFIG", "")
	}
	if s.fileName != "" {
		file, err := readConfigFile(s.fileName)
		if err != nil {
			return nil, err
		}
		s.file = file
	}
	return positional, nil
}

// noArgs parses args of a command that takes no positional arguments.
func noArgs(s *settings, args []string) error {
	pos, err := s.parse(args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		fmt.Fprintf(s.fs.Output(), "%s: unexpected argument %q\n", s.fs.Name(), pos[0])
		return errUsage
	}
	return nil
}

// readConfigFile reads a YAML mapping of setting names to single values.
func readConfigFile(name string) (map[string]string, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", name, err)
	}
	out := make(map[string]string, len(raw))
	for k, v := range raw {
		if _, ok := settingDefs[k]; !ok {
			return nil, fmt.Errorf("config file %s: unknown key %q (keys are the long flag names, e.g. issuer, public-addr)", name, k)
		}
		switch v := v.(type) {
		case nil:
		case string:
			out[k] = v
		case bool, int, float64:
			out[k] = fmt.Sprint(v)
		case []any:
			// A list, for the comma-separated settings (old-system-secrets).
			parts := make([]string, len(v))
			for i, p := range v {
				parts[i] = fmt.Sprint(p)
			}
			out[k] = strings.Join(parts, ",")
		default:
			return nil, fmt.Errorf("config file %s: %s must be a single value", name, k)
		}
	}
	return out, nil
}

// get returns a setting's value: flag, environment, config file, default.
func (s *settings) get(name string) string {
	v, ok := s.flags[name]
	if !ok {
		panic("setting " + name + " not registered")
	}
	if v.set {
		return v.value
	}
	def := settingDefs[name]
	if e := env(def.env, ""); e != "" {
		return e
	}
	if f, ok := s.file[name]; ok {
		return f
	}
	return def.def
}

// bool returns a boolean setting.
func (s *settings) bool(name string) (bool, error) {
	v := s.get(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("--%s: %q is not true or false", name, v)
	}
	return b, nil
}

// env returns the environment variable's value, or def when it is unset.
func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok && strings.TrimSpace(v) != "" {
		return v
	}
	return def
}

// dataDir returns --data-dir.
func (s *settings) dataDir() string { return s.get("data-dir") }

// databaseURL returns the database URL and whether it is PostgreSQL. The
// embedded default is latchkey.db in the data directory, which it creates.
func (s *settings) databaseURL() (string, bool, error) {
	if u := s.get("database-url"); u != "" {
		scheme, _, _ := strings.Cut(strings.TrimSpace(u), "://")
		scheme = strings.ToLower(scheme)
		return u, scheme == "postgres" || scheme == "postgresql", nil
	}
	if err := os.MkdirAll(s.dataDir(), 0o700); err != nil {
		return "", false, fmt.Errorf("create data dir: %w", err)
	}
	return filepath.Join(s.dataDir(), "latchkey.db"), false, nil
}

// openStore opens the store the settings name, migrated when migrate is
// set (the server and the tools that write apply pending migrations, so
// the embedded default needs no separate step).
func (s *settings) openStore(ctx context.Context, opts store.Options, migrate bool) (*store.Store, error) {
	u, _, err := s.databaseURL()
	if err != nil {
		return nil, err
	}
	st, err := store.Open(ctx, u, opts)
	if err != nil {
		return nil, err
	}
	if migrate {
		if _, err := st.Migrate(ctx); err != nil {
			st.Close()
			return nil, err
		}
	}
	return st, nil
}

// openSealedStore opens (and migrates) the store with the system secrets,
// for the commands that read what the store seals with them (signing
// keys, TOTP seeds), and returns the secrets too.
func (s *settings) openSealedStore(ctx context.Context, log *slog.Logger) (*store.Store, []byte, [][]byte, error) {
	secret, old, err := s.systemSecrets(log)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := s.openStore(ctx, store.Options{SystemSecret: secret, OldSystemSecrets: old}, true)
	if err != nil {
		return nil, nil, nil, err
	}
	return st, secret, old, nil
}

// Files the server keeps in the data directory.
const (
	systemSecretFile = "system-secret"
	adminTokenFile   = "admin-token"
)

// systemSecrets returns the system secret and the old ones. Without
// --system-secret the embedded default keeps a generated one in the data
// directory; PostgreSQL needs it given, since every replica must share it.
func (s *settings) systemSecrets(log *slog.Logger) (secret []byte, old [][]byte, err error) {
	for _, o := range strings.Split(s.get("old-system-secrets"), ",") {
		if o = strings.TrimSpace(o); o != "" {
			if len(o) < 32 {
				return nil, nil, errors.New("--old-system-secrets: every secret must be at least 32 bytes")
			}
			old = append(old, []byte(o))
		}
	}
	if v := s.get("system-secret"); v != "" {
		if len(v) < 32 {
			return nil, nil, errors.New("--system-secret must be at least 32 bytes")
		}
		return []byte(v), old, nil
	}
	_, postgres, err := s.databaseURL()
	if err != nil {
		return nil, nil, err
	}
	dev, err := s.bool("dev")
	if err != nil {
		return nil, nil, err
	}
	if postgres && !dev {
		return nil, nil, errors.New("with PostgreSQL, set --system-secret (LATCHKEY_SYSTEM_SECRET): every replica and tool must share it")
	}
	v, _, err := dataDirSecret(s.dataDir(), systemSecretFile, log)
	if err != nil {
		return nil, nil, err
	}
	return []byte(v), old, nil
}

// dataDirSecret returns the secret kept in file name of dir, generating it
// (256 random bits, base64url) the first time, readable by the owner only.
// Processes starting at once agree on one secret: it is written to a
// temporary file and linked into place, so it appears whole, once.
func dataDirSecret(dir, name string, log *slog.Logger) (secret, path string, err error) {
	path = filepath.Join(dir, name)
	if secret, err := readSecretFile(path, log); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return secret, path, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", path, fmt.Errorf("create data dir: %w", err)
	}
	raw := make([]byte, 32)
	_, _ = rand.Read(raw) // never fails (crypto/rand)
	secret = base64.RawURLEncoding.EncodeToString(raw)
	tmp, err := os.CreateTemp(dir, "."+name+"-*") // mode 0600
	if err != nil {
		return "", path, fmt.Errorf("create %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.WriteString(secret + "\n")
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return "", path, fmt.Errorf("write %s: %w", path, werr)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			secret, err := readSecretFile(path, log)
			return secret, path, err
		}
		return "", path, fmt.Errorf("create %s: %w", path, err)
	}
	log.Info("generated a secret file", "path", path)
	return secret, path, nil
}

func readSecretFile(path string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("a secret file is readable by others; chmod 600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return secret, nil
}

// newLogger returns the logger the settings ask for, writing to w.
func (s *settings) newLogger(w io.Writer) (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.get("log-level"))); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	f := s.get("log-format")
	if f == "auto" {
		f = "json"
		if isTerminal(w) {
			f = "text"
		}
	}
	var h slog.Handler
	switch f {
	case "text":
		h = slog.NewTextHandler(w, opts)
	case "json":
		h = slog.NewJSONHandler(w, opts)
	default:
		return nil, fmt.Errorf("--log-format %q: use text, json or auto", f)
	}
	// Lines logged while serving a request carry its request_id.
	return slog.New(observe.LogHandler(h)), nil
}

// isTerminal reports whether w is a terminal (a character device), where
// people read logs rather than collectors.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// maxConns returns --database-max-conns, 0 for the store's default.
func (s *settings) maxConns() (int, error) {
	if s.get("database-max-conns") == "" {
		return 0, nil
	}
	return s.positiveInt("database-max-conns")
}

// positiveInt returns a setting that must be a positive whole number.
func (s *settings) positiveInt(name string) (int, error) {
	v := s.get(name)
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("--%s: %q is not a positive number", name, v)
	}
	return n, nil
}

// rate returns a setting that is a number of requests per second, zero or
// more.
func (s *settings) rate(name string) (float64, error) {
	v := s.get(name)
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r < 0 || math.IsInf(r, 0) || math.IsNaN(r) {
		return 0, fmt.Errorf("--%s: %q is not a number of requests per second (0 or more)", name, v)
	}
	return r, nil
}

// duration returns a duration setting.
func (s *settings) duration(name string) (time.Duration, error) {
	v := s.get(name)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("--%s: %q is not a positive duration such as 30s or 5m", name, v)
	}
	return d, nil
}

// outboundAllow returns --outbound-allow: CIDR prefixes, or single
// addresses meaning just themselves.
func (s *settings) outboundAllow() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range strings.Split(s.get("outbound-allow"), ",") {
		if v = strings.TrimSpace(v); v == "" {
			continue
		}
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil || a.Zone() != "" {
				return nil, fmt.Errorf("--outbound-allow: %q is not a CIDR prefix such as 10.20.0.0/16 or an IP address", v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// withLog adds the log settings to names.
func withLog(names ...string) []string {
	return slices.Concat(names, []string{"log-format", "log-level"})
}
