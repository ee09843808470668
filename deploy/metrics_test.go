package deploy_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
)

// dashboardFile and alertsFile are the files whose queries must name
// metrics Latchkey registers.
var (
	dashboardFile = filepath.Join("grafana", "latchkey.json")
	alertsFile    = filepath.Join("prometheus", "alerts.yml")
)

// query is one PromQL expression of the dashboard or the alert rules.
type query struct {
	where string // "grafana/latchkey.json panel \"…\""
	expr  string
}

// deployQueries returns every PromQL expression of the Grafana dashboard
// (panel targets and template variable queries) and of the alert rules.
func deployQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	var dash any
	if err := json.Unmarshal(readFile(t, dashboardFile), &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	var walk func(v any, where string)
	walk = func(v any, where string) {
		switch v := v.(type) {
		case map[string]any:
			if title, ok := v["title"].(string); ok {
				where = fmt.Sprintf("%s panel %q", dashboardFile, title)
			}
			if name, ok := v["name"].(string); ok && v["type"] == "query" {
				where = fmt.Sprintf("%s variable %q", dashboardFile, name)
				switch q := v["query"].(type) {
				case string:
					qs = append(qs, query{where, q})
				case map[string]any:
					if s, ok := q["query"].(string); ok {
						qs = append(qs, query{where, s})
					}
				}
			}
			if expr, ok := v["expr"].(string); ok {
				qs = append(qs, query{where, expr})
			}
			for _, k := range sortedKeys(v) {
				walk(v[k], where)
			}
		case []any:
			for _, e := range v {
				walk(e, where)
			}
		}
	}
	walk(dash, dashboardFile)

	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert  string `yaml:"alert"`
				Record string `yaml:"record"`
				Expr   string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(readFile(t, alertsFile), &rules); err != nil {
		t.Fatalf("%s: %v", alertsFile, err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			qs = append(qs, query{fmt.Sprintf("%s alert %q", alertsFile, r.Alert+r.Record), r.Expr})
		}
	}
	return qs
}

// TestDeployQueriesParse checks, without a server, that the dashboard and
// the rules have queries, that each names a metric, and that the dashboard
// does not rely on the opt-in per-client metric.
func TestDeployQueriesParse(t *testing.T) {
	qs := deployQueries(t)
	panels, rules := 0, 0
	for _, q := range qs {
		if strings.HasPrefix(q.where, alertsFile) {
			rules++
		} else {
			panels++
		}
		names := queriedMetrics(q.expr)
		if len(names) == 0 && !strings.Contains(q.expr, "up{") {
			t.Errorf("%s: query %q names no latchkey_, go_ or process_ metric", q.where, q.expr)
		}
		for _, n := range names {
			if n == "latchkey_client_tokens_issued_total" {
				t.Errorf("%s: queries latchkey_client_tokens_issued_total, which exists only with --metrics-per-client", q.where)
			}
		}
	}
	if panels < 20 || rules < 5 {
		t.Errorf("found %d dashboard queries and %d rules; is the test reading the files?", panels, rules)
	}
	var dash struct {
		SchemaVersion int `json:"schemaVersion"`
		Templating    struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			ID         int    `json:"id"`
			Type       string `json:"type"`
			Datasource *struct {
				UID string `json:"uid"`
			} `json:"datasource"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(readFile(t, dashboardFile), &dash); err != nil {
		t.Fatal(err)
	}
	if dash.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d", dash.SchemaVersion)
	}
	hasDatasource := false
	for _, v := range dash.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && v.Query == "prometheus" {
			hasDatasource = true
		}
	}
	if !hasDatasource {
		t.Error("the dashboard has no datasource variable of type prometheus")
	}
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] {
			t.Errorf("panel id %d is used twice", p.ID)
		}
		ids[p.ID] = true
		if p.Type != "row" && (p.Datasource == nil || p.Datasource.UID != "${datasource}") {
			t.Errorf("panel %d does not use the ${datasource} variable", p.ID)
		}
	}
}

// scrape is a parsed Prometheus text exposition.
type scrape struct {
	types   map[string]string   // family → counter, gauge, histogram, …
	samples map[string][]sample // sample name → samples
}

type sample struct {
	labels map[string]string
	value  string
}

// parseExposition parses the Prometheus text format (version 0.0.4).
func parseExposition(t *testing.T, body []byte) *scrape {
	t.Helper()
	s := &scrape{types: map[string]string{}, samples: map[string][]sample{}}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			parts := strings.Fields(f)
			if len(parts) == 2 {
				s.types[parts[0]] = parts[1]
			}
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, labels, value, err := parseSample(line)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		s.samples[name] = append(s.samples[name], sample{labels, value})
	}
	return s
}

// parseSample parses `name{label="value",…} value`.
func parseSample(line string) (name string, labels map[string]string, value string, err error) {
	i := strings.IndexAny(line, "{ ")
	if i < 0 {
		return "", nil, "", fmt.Errorf("no value")
	}
	name, rest := line[:i], line[i:]
	labels = map[string]string{}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return "", nil, "", fmt.Errorf("bad labels")
			}
			lname := rest[:eq]
			rest = rest[eq+2:]
			var v strings.Builder
			for {
				if rest == "" {
					return "", nil, "", fmt.Errorf("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '\\' && rest != "" {
					v.WriteByte(rest[0])
					rest = rest[1:]
					continue
				}
				if c == '"' {
					break
				}
				v.WriteByte(c)
			}
			labels[lname] = v.String()
			rest = strings.TrimPrefix(rest, ",")
		}
		rest = rest[1:]
	}
	return name, labels, strings.TrimSpace(rest), nil
}

// family returns the family a queried name belongs to: the name itself,
// or a histogram's (or summary's) _bucket, _sum or _count series.
func (s *scrape) family(name string) (string, bool) {
	if _, ok := s.types[name]; ok && len(s.samples[name]) > 0 {
		return name, true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		typ := s.types[base]
		if (typ == "histogram" || suffix != "_bucket" && typ == "summary") && len(s.samples[name]) > 0 {
			return base, true
		}
	}
	return "", false
}

// labelNames returns the label names of a queried series name.
func (s *scrape) labelNames(name string) map[string]bool {
	out := map[string]bool{}
	for _, smp := range s.samples[name] {
		for l := range smp.labels {
			out[l] = true
		}
	}
	return out
}

// find returns the samples of name whose labels include want.
func (s *scrape) find(name string, want map[string]string) []sample {
	var out []sample
	for _, smp := range s.samples[name] {
		ok := true
		for k, v := range want {
			if smp.labels[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, smp)
		}
	}
	return out
}

// targetLabels are added by Prometheus (job, instance) or by the scrape
// configurations' relabelling, not by Latchkey.
var targetLabels = map[string]bool{"job": true, "instance": true, "namespace": true, "pod": true, "component": true}

var (
	selectorRe = regexp.MustCompile(`\b((?:latchkey|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9])\s*\{([^}]*)\}`)
	matcherRe  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	byRe       = regexp.MustCompile(`\bby\s*\(([^)]*)\)`)
)

// readmeMetrics returns the metric table of README.md: name → type.
func readmeMetrics(t *testing.T) map[string]string {
	t.Helper()
	readme := string(readFile(t, "README.md"))
	start := strings.Index(readme, "\n## Metrics")
	if start < 0 {
		t.Fatal("README.md has no ## Metrics section")
	}
	section := readme[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	row := regexp.MustCompile("(?m)^\\|\\s*`([a-z_:*]+)`\\s*\\|\\s*([a-z]+)\\s*\\|")
	out := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		if !strings.Contains(m[1], "*") {
			out[m[1]] = m[2]
		}
	}
	if len(out) < 20 {
		t.Fatalf("README.md's metric table has %d rows; want a row per metric (| `name` | type | labels | meaning |)", len(out))
	}
	return out
}

// TestMetricsServed runs the real server (`latchkey serve`: the provider
// with the login app, on SQLite in a temporary directory), makes a
// client_credentials token request and a readiness check, scrapes /metrics
// and checks that every metric the dashboard and the alert rules query is
// served with the labels they use, that the README's metric table lists
// exactly the latchkey_* families served, with their types, and that the
// labels the token latency alert and the dashboard filter on carry the
// values they expect.
func TestMetricsServed(t *testing.T) {
	qs := deployQueries(t)
	documented := readmeMetrics(t)
	bin := latchkeyBinary(t)

	dir := t.TempDir()
	public, admin, metrics := latchkeytest.FreeAddr(t), latchkeytest.FreeAddr(t), latchkeytest.FreeAddr(t)
	var logs latchkeytest.Output
	// --metrics-per-client is on so that the scrape holds every metric
	// of the README's table, the opt-in one included.
	srv := exec.Command(bin, "serve", "--data-dir", dir, "--public-addr", public, "--admin-addr", admin,
		"--metrics-addr", metrics, "--metrics-per-client", "--log-level", "warn")
	srv.Env = cleanEnv()
	srv.Stdout, srv.Stderr = &logs, &logs
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- srv.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		if err := srv.Process.Signal(os.Interrupt); err != nil {
			return err
		}
		select {
		case err := <-exited:
			return err
		case <-time.After(20 * time.Second):
			srv.Process.Kill()
			<-exited
			return fmt.Errorf("latchkey serve did not stop within 20 s of SIGINT")
		}
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("stopping latchkey serve: %v", err)
		}
	})
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nserver output:\n%s", append(args, logs.String())...)
	}

	client := &http.Client{Timeout: 10 * time.Second}
	get := func(u string) (int, []byte) {
		t.Helper()
		resp, err := client.Get(u)
		if err != nil {
			fail("GET %s: %v", u, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			fail("GET %s: %v", u, err)
		}
		return resp.StatusCode, body
	}

	// Ready: the database is migrated and the signing keys are loaded.
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			stopped = true
			fail("latchkey serve exited before it was ready: %v", err)
		default:
		}
		resp, err := client.Get("http://" + public + "/health/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			fail("latchkey serve was not ready within 90 s")
		}
		time.Sleep(200 * time.Millisecond)
	}

	// A client, made by the CLI on the server's data.
	clientFile := filepath.Join(t.TempDir(), "client.json")
	if err := os.WriteFile(clientFile, []byte(`{"client_name": "deploy test", "grant_types": ["client_credentials"], "response_types": [], "scope": "read", "token_endpoint_auth_method": "client_secret_basic"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	create := exec.CommandContext(ctx, bin, "clients", "create", "--file", clientFile, "--data-dir", dir)
	create.Env = cleanEnv()
	var createErr bytes.Buffer
	create.Stderr = &createErr
	out, err := create.Output()
	if err != nil {
		fail("latchkey clients create: %v\n%s", err, createErr.String())
	}
	var created struct {
		ClientID     string `json:"client_id"`
		ClientSecret string `json:"client_secret"`
	}
	if err := json.Unmarshal(out, &created); err != nil || created.ClientID == "" || created.ClientSecret == "" {
		fail("latchkey clients create printed %q: %v", out, err)
	}

	// One client_credentials token.
	req, err := http.NewRequest(http.MethodPost, "http://"+public+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "scope": {"read"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(created.ClientID), url.QueryEscape(created.ClientSecret))
	resp, err := client.Do(req)
	if err != nil {
		fail("token request: %v", err)
	}
	tokenBody, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var token struct {
		AccessToken string `json:"access_token"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(tokenBody, &token) != nil || token.AccessToken == "" {
		fail("token request: %d %s", resp.StatusCode, tokenBody)
	}
	if code, body := get("http://" + public + "/health/ready"); code != http.StatusOK {
		fail("GET /health/ready: %d %s", code, body)
	}

	code, body := get("http://" + metrics + "/metrics")
	if code != http.StatusOK {
		fail("GET /metrics: %d %s", code, body)
	}
	if err := stop(); err != nil {
		t.Errorf("latchkey serve did not stop cleanly on SIGINT: %v\n%s", err, logs.String())
	}
	s := parseExposition(t, body)

	// Every metric queried is served, with the labels the query uses.
	missing := map[string][]string{}
	for _, q := range qs {
		stripped := quoted.ReplaceAllString(q.expr, `""`)
		for _, name := range queriedMetrics(q.expr) {
			if _, ok := s.family(name); !ok {
				missing[name] = append(missing[name], q.where)
			}
		}
		for _, m := range selectorRe.FindAllStringSubmatch(stripped, -1) {
			have := s.labelNames(m[1])
			for _, lm := range matcherRe.FindAllStringSubmatch(m[2], -1) {
				if l := lm[1]; !targetLabels[l] && len(have) > 0 && !have[l] {
					t.Errorf("%s: %s has no label %q (it has %v)", q.where, m[1], l, sortedKeys(have))
				}
			}
		}
		for _, m := range byRe.FindAllStringSubmatch(stripped, -1) {
			for l := range strings.SplitSeq(m[1], ",") {
				l = strings.TrimSpace(l)
				if l == "" || targetLabels[l] {
					continue
				}
				found := false
				for _, name := range queriedMetrics(q.expr) {
					if s.labelNames(name)[l] {
						found = true
					}
				}
				if !found {
					t.Errorf("%s: groups by %q, a label none of its metrics has", q.where, l)
				}
			}
		}
	}
	for _, name := range sortedKeys(missing) {
		t.Errorf("%s is queried but not served by latchkey serve (queried in %s)", name, strings.Join(missing[name], "; "))
	}
	names := map[string]bool{}
	for _, q := range qs {
		for _, n := range queriedMetrics(q.expr) {
			names[n] = true
		}
	}
	t.Logf("%d queries of the dashboard and the alerts name %d metrics: %s", len(qs), len(names), strings.Join(sortedKeys(names), " "))
	t.Logf("the scrape has %d families; README.md's table lists %d metrics", len(s.types), len(documented))

	// The README's table and the served latchkey_* families agree.
	for _, name := range sortedKeys(s.types) {
		if !strings.HasPrefix(name, "latchkey_") {
			continue
		}
		typ, ok := documented[name]
		switch {
		case !ok:
			t.Errorf("%s (%s) is served but not in README.md's metric table", name, s.types[name])
		case typ != s.types[name]:
			t.Errorf("README.md says %s is a %s; it is served as a %s", name, typ, s.types[name])
		}
	}
	for _, name := range sortedKeys(documented) {
		if _, ok := s.types[name]; !ok {
			t.Errorf("README.md's metric table lists %s, which latchkey serve does not serve", name)
		} else if s.types[name] != documented[name] {
			t.Errorf("README.md says %s is a %s; it is served as a %s", name, documented[name], s.types[name])
		}
	}

	// The label values the alerts and the dashboard filter on.
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"latchkey_http_request_duration_seconds_bucket", map[string]string{"listener": "public", "route": "/oauth2/token"}},
		{"latchkey_http_requests_total", map[string]string{"listener": "public", "route": "/oauth2/token", "method": "POST", "code": "200"}},
		{"latchkey_tokens_issued_total", map[string]string{"grant_type": "client_credentials", "token_type": "access_token"}},
		{"latchkey_token_requests_total", map[string]string{"grant_type": "client_credentials"}},
		{"latchkey_client_tokens_issued_total", map[string]string{"client_id": created.ClientID, "grant_type": "client_credentials"}},
		{"latchkey_database_up", nil},
		{"go_sql_in_use_connections", map[string]string{"db_name": "latchkey"}},
		{"latchkey_build_info", nil},
	} {
		found := s.find(c.name, c.labels)
		if len(found) == 0 {
			t.Errorf("no %s series with labels %v in the scrape", c.name, c.labels)
			continue
		}
		switch c.name {
		case "latchkey_tokens_issued_total", "latchkey_token_requests_total", "latchkey_client_tokens_issued_total", "latchkey_database_up":
			if found[0].value != "1" {
				t.Errorf("%s%v = %s, want 1", c.name, c.labels, found[0].value)
			}
		case "latchkey_build_info":
			if found[0].labels["version"] == "" {
				t.Errorf("latchkey_build_info has no version label")
			}
		}
	}
	if t.Failed() {
		t.Logf("the scrape:\n%s", body)
	}
}
