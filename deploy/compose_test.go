package deploy_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// composeFile is the part of deploy/compose.yaml the test reads.
type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Ports   []string `yaml:"ports"`
	Volumes []string `yaml:"volumes"`
	Restart string   `yaml:"restart"`
}

// interpolation is compose's ${VAR}, ${VAR:-default} and ${VAR-default}.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::?-([^}]*))?\}`)

// withDefaults replaces every variable by its default: the example value
// compose uses when the variable is not set.
func withDefaults(s string) string {
	return interpolation.ReplaceAllString(s, "$2")
}

// TestCompose checks deploy/compose.yaml: the services and their order of
// start, that the services agree on the database, the secrets and the
// addresses, that the example secrets are long enough for latchkey to
// start, and that Prometheus scrapes the services where they serve
// /metrics.
func TestCompose(t *testing.T) {
	var f composeFile
	if err := yaml.Unmarshal(readFile(t, "compose.yaml"), &f); err != nil {
		t.Fatalf("compose.yaml: %v", err)
	}
	for _, name := range []string{"postgres", "migrate", "provider", "login", "prometheus", "grafana"} {
		if _, ok := f.Services[name]; !ok {
			t.Fatalf("compose.yaml: no service %q", name)
		}
	}
	env := func(service, name string) string {
		return withDefaults(f.Services[service].Environment[name])
	}

	pg := f.Services["postgres"]
	if !strings.HasPrefix(pg.Image, "postgres:16") {
		t.Errorf("postgres: image %q, want PostgreSQL 16", pg.Image)
	}
	if pg.Healthcheck == nil || !strings.Contains(strings.Join(pg.Healthcheck.Test, " "), "pg_isready") {
		t.Error("postgres: no pg_isready healthcheck")
	}

	wantCommand := map[string][]string{
		"migrate":  {"migrate"},
		"provider": {"serve", "provider"},
		"login":    {"serve", "login"},
	}
	wantDeps := map[string]map[string]string{
		"migrate":  {"postgres": "service_healthy"},
		"provider": {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
		"login":    {"postgres": "service_healthy", "migrate": "service_completed_successfully"},
	}
	for _, name := range sortedKeys(wantCommand) {
		s := f.Services[name]
		if !slices.Equal(s.Command, wantCommand[name]) {
			t.Errorf("%s: command %q, want %q", name, s.Command, wantCommand[name])
		}
		for dep, cond := range wantDeps[name] {
			if got := s.DependsOn[dep].Condition; got != cond {
				t.Errorf("%s: depends on %s with condition %q, want %q", name, dep, got, cond)
			}
		}
		if s.Build == nil {
			t.Errorf("%s: no build section", name)
		} else if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil || filepath.Clean(s.Build.Context) != repoRoot {
			t.Errorf("%s: build context %q and dockerfile %q should be the repository root and deploy/Dockerfile", name, s.Build.Context, s.Build.Dockerfile)
		}
		if env(name, "LATCHKEY_LOG_FORMAT") != "json" {
			t.Errorf("%s: LATCHKEY_LOG_FORMAT should be json", name)
		}
		dbURL, err := url.Parse(env(name, "LATCHKEY_DATABASE_URL"))
		if err != nil || dbURL.Scheme != "postgres" || dbURL.Hostname() != "postgres" {
			t.Errorf("%s: LATCHKEY_DATABASE_URL %q is not the postgres service", name, env(name, "LATCHKEY_DATABASE_URL"))
			continue
		}
		pw, _ := dbURL.User.Password()
		if dbURL.User.Username() != withDefaults(pg.Environment["POSTGRES_USER"]) || pw != withDefaults(pg.Environment["POSTGRES_PASSWORD"]) ||
			strings.TrimPrefix(dbURL.Path, "/") != withDefaults(pg.Environment["POSTGRES_DB"]) {
			t.Errorf("%s: LATCHKEY_DATABASE_URL does not match the postgres service's user, password and database", name)
		}
	}
	if r := f.Services["migrate"].Restart; r != "no" {
		t.Errorf("migrate: restart %q; a one-shot service must not restart", r)
	}

	// The provider and the login app share the secrets and the issuer,
	// and the example secrets are long enough for latchkey to accept them.
	for _, name := range []string{"LATCHKEY_SYSTEM_SECRET", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_ISSUER", "LATCHKEY_LOGIN_URL"} {
		if p, l := env("provider", name), env("login", name); p == "" || p != l {
			t.Errorf("%s differs between provider (%q) and login (%q)", name, p, l)
		}
	}
	if s := env("provider", "LATCHKEY_SYSTEM_SECRET"); len(s) < 32 {
		t.Errorf("the example LATCHKEY_SYSTEM_SECRET is %d bytes; latchkey needs 32 or more", len(s))
	}
	if s := env("provider", "LATCHKEY_ADMIN_TOKEN"); len(s) < 16 {
		t.Errorf("the example LATCHKEY_ADMIN_TOKEN is %d characters; latchkey needs 16 or more", len(s))
	}
	for _, name := range []string{"LATCHKEY_SYSTEM_SECRET", "LATCHKEY_ADMIN_TOKEN"} {
		if v := f.Services["provider"].Environment[name]; !strings.Contains(v, "${"+name) {
			t.Errorf("provider: %s should come from the environment (${%s:-example}), not be fixed in the file", name, name)
		}
	}

	// The login app reaches the provider's admin API inside the network.
	adminURL, err := url.Parse(env("login", "LATCHKEY_ADMIN_URL"))
	_, adminPort, _ := net.SplitHostPort(env("provider", "LATCHKEY_ADMIN_ADDR"))
	if err != nil || adminURL.Hostname() != "provider" || adminURL.Port() != adminPort || adminPort == "" {
		t.Errorf("login: LATCHKEY_ADMIN_URL %q should be http://provider:<port of the provider's LATCHKEY_ADMIN_ADDR %q>",
			env("login", "LATCHKEY_ADMIN_URL"), env("provider", "LATCHKEY_ADMIN_ADDR"))
	}
	// Containers listen on every interface; ports are published on the
	// host's loopback only.
	for _, name := range []string{"provider", "login"} {
		for _, setting := range []string{"LATCHKEY_PUBLIC_ADDR", "LATCHKEY_ADMIN_ADDR", "LATCHKEY_LOGIN_ADDR", "LATCHKEY_METRICS_ADDR"} {
			if v := env(name, setting); v != "" && !strings.HasPrefix(v, "0.0.0.0:") {
				t.Errorf("%s: %s=%q; in a container listen on 0.0.0.0", name, setting, v)
			}
		}
	}
	for _, name := range sortedKeys(f.Services) {
		for _, p := range f.Services[name].Ports {
			if !strings.HasPrefix(p, "127.0.0.1:") {
				t.Errorf("%s: port %q is published on every interface of the host; publish on 127.0.0.1", name, p)
			}
		}
		// Bind mounts exist; named volumes are declared.
		for _, v := range f.Services[name].Volumes {
			src := strings.SplitN(v, ":", 2)[0]
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(src); err != nil {
					t.Errorf("%s: volume %q: %v", name, v, err)
				}
			} else if _, ok := f.Volumes[src]; !ok {
				t.Errorf("%s: named volume %q is not declared under volumes", name, src)
			}
		}
	}

	// Prometheus scrapes the provider and the login app where they serve
	// /metrics.
	var prom struct {
		ScrapeConfigs []struct {
			JobName       string `yaml:"job_name"`
			StaticConfigs []struct {
				Targets []string `yaml:"targets"`
			} `yaml:"static_configs"`
		} `yaml:"scrape_configs"`
	}
	if err := yaml.Unmarshal(readFile(t, filepath.Join("prometheus", "prometheus.yml")), &prom); err != nil {
		t.Fatal(err)
	}
	scraped := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, st := range sc.StaticConfigs {
			for _, target := range st.Targets {
				host, port, err := net.SplitHostPort(target)
				if err != nil {
					t.Errorf("prometheus.yml: target %q: %v", target, err)
					continue
				}
				_, metricsPort, _ := net.SplitHostPort(env(host, "LATCHKEY_METRICS_ADDR"))
				if metricsPort != port {
					t.Errorf("prometheus.yml scrapes %s, but compose service %q serves /metrics on LATCHKEY_METRICS_ADDR %q",
						target, host, env(host, "LATCHKEY_METRICS_ADDR"))
				}
				scraped[host] = true
			}
		}
	}
	for _, name := range []string{"provider", "login"} {
		if !scraped[name] {
			t.Errorf("prometheus.yml does not scrape the compose service %s", name)
		}
	}
	mountsPrometheusDir := slices.ContainsFunc(f.Services["prometheus"].Volumes, func(v string) bool {
		return strings.HasPrefix(v, "./prometheus:/etc/prometheus")
	})
	if !mountsPrometheusDir {
		t.Error("prometheus: deploy/prometheus (config and rules) is not mounted at /etc/prometheus")
	}
}
