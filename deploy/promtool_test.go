package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// promtool returns the promtool on PATH or skips the test.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not on PATH: install Prometheus (Debian: apt-get install prometheus) to check the config and run the alert tests; CI installs it")
	}
	return p
}

func runPromtool(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = "prometheus"
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestPromtool runs promtool on the Prometheus files: the compose
// configuration (with the rule files it loads), the rules, and the rules'
// unit tests.
func TestPromtool(t *testing.T) {
	for _, args := range [][]string{
		{"check", "config", "prometheus.yml"},
		{"check", "rules", "alerts.yml"},
		{"test", "rules", "alerts_test.yml"},
	} {
		out, err := runPromtool(t, args...)
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		} else {
			t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		}
	}
}

// kubernetesScrapeConfig is the part of prometheus/kubernetes.yml the test
// reads.
type kubernetesScrapeConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName        string           `yaml:"job_name"`
		KubernetesSD   []map[string]any `yaml:"kubernetes_sd_configs"`
		RelabelConfigs []struct {
			SourceLabels []string `yaml:"source_labels"`
			Regex        string   `yaml:"regex"`
			Action       string   `yaml:"action"`
		} `yaml:"relabel_configs"`
	} `yaml:"scrape_configs"`
}

// TestPromtoolKubernetesConfig checks prometheus/kubernetes.yml with
// promtool. Prometheus builds without Kubernetes service discovery
// (Debian's promtool is one) reject kubernetes_sd_configs as an unknown
// field; with such a promtool the test checks a copy whose discovery is
// replaced by a static target, which still checks everything else of the
// file (relabelling, rule files).
func TestPromtoolKubernetesConfig(t *testing.T) {
	data := readFile(t, filepath.Join("prometheus", "kubernetes.yml"))
	out, err := runPromtool(t, "check", "config", "kubernetes.yml")
	if err == nil {
		t.Logf("promtool check config kubernetes.yml:\n%s", out)
		return
	}
	if !strings.Contains(out, "field kubernetes_sd_configs not found") {
		t.Fatalf("promtool check config kubernetes.yml: %v\n%s", err, out)
	}
	t.Logf("this promtool is built without Kubernetes discovery; checking kubernetes.yml with a static target in place of kubernetes_sd_configs")
	sd := regexp.MustCompile(`(?m)^(\s*)kubernetes_sd_configs:\n\s*- role: pod\n`)
	if !sd.Match(data) {
		t.Fatal("kubernetes.yml: no `kubernetes_sd_configs:\\n  - role: pod` to replace")
	}
	dir := t.TempDir()
	stand := sd.ReplaceAll(data, []byte("${1}static_configs:\n${1}  - targets: [\"pod.invalid:9464\"]\n"))
	if err := os.WriteFile(filepath.Join(dir, "kubernetes.yml"), stand, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts.yml"), readFile(t, filepath.Join("prometheus", "alerts.yml")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool(t), "check", "config", "kubernetes.yml")
	cmd.Dir = dir
	out2, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check config (kubernetes.yml, static target): %v\n%s", err, out2)
	}
	t.Logf("promtool check config (kubernetes.yml, static target):\n%s", out2)
}

// TestPrometheusKubernetesJob checks that prometheus/kubernetes.yml keeps
// the pods of the kustomize base's Deployments on their "metrics" port and
// nothing else of theirs, and that the target-down alert covers its job.
func TestPrometheusKubernetesJob(t *testing.T) {
	data := readFile(t, filepath.Join("prometheus", "kubernetes.yml"))
	var cfg kubernetesScrapeConfig
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.ScrapeConfigs) != 1 || len(cfg.ScrapeConfigs[0].KubernetesSD) != 1 || cfg.ScrapeConfigs[0].KubernetesSD[0]["role"] != "pod" {
		t.Fatal("kubernetes.yml: want one scrape job with kubernetes_sd_configs role pod")
	}
	job := cfg.ScrapeConfigs[0]
	alerts := string(readFile(t, filepath.Join("prometheus", "alerts.yml")))
	if !regexp.MustCompile(`up\{job=~"[^"]*\b` + regexp.QuoteMeta(job.JobName) + `\b`).MatchString(alerts) {
		t.Errorf("alerts.yml: the target-down alert does not cover the job %q", job.JobName)
	}

	// Apply the keep and drop rules to the pods of the base: a target per
	// container port, as Kubernetes discovery makes them.
	m := kustomize(t, filesys.MakeFsOnDisk(), filepath.Join("kubernetes", "base"))
	kept := map[string]bool{}
	for _, pt := range m.podTemplates() {
		for _, c := range pt.spec.Spec.Containers {
			for _, p := range c.Ports {
				meta := map[string]string{
					"__meta_kubernetes_pod_container_port_name": p.Name,
					"__meta_kubernetes_pod_phase":               "Running",
				}
				for k, v := range pt.spec.Labels {
					meta["__meta_kubernetes_pod_label_"+sanitizeLabel(k)] = v
				}
				keep := true
				for _, r := range job.RelabelConfigs {
					if r.Action != "keep" && r.Action != "drop" {
						continue
					}
					var vals []string
					for _, l := range r.SourceLabels {
						vals = append(vals, meta[l])
					}
					re, err := regexp.Compile("^(?:" + r.Regex + ")$")
					if err != nil {
						t.Fatalf("kubernetes.yml: regex %q: %v", r.Regex, err)
					}
					match := re.MatchString(strings.Join(vals, ";"))
					if r.Action == "keep" && !match || r.Action == "drop" && match {
						keep = false
					}
				}
				if keep != (p.Name == "metrics") {
					t.Errorf("kubernetes.yml: %s port %s (%d) is kept=%v; want only the ports named metrics", pt.owner, p.Name, p.ContainerPort, keep)
				}
				if keep && pt.deployment != nil {
					kept[pt.deployment.Name] = true
				}
			}
		}
	}
	for name := range m.deployments {
		if !kept[name] {
			t.Errorf("kubernetes.yml does not scrape Deployment %s", name)
		}
	}
}

// sanitizeLabel turns a Kubernetes label name into the Prometheus label
// name discovery gives it.
func sanitizeLabel(s string) string {
	return regexp.MustCompile(`[^a-zA-Z0-9_]`).ReplaceAllString(s, "_")
}
