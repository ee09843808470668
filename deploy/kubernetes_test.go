package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// manifests are the objects a kustomization builds, decoded into their
// Kubernetes API types, by name.
type manifests struct {
	deployments     map[string]*appsv1.Deployment
	services        map[string]*corev1.Service
	secrets         map[string]*corev1.Secret
	configMaps      map[string]*corev1.ConfigMap
	serviceAccounts map[string]*corev1.ServiceAccount
	pdbs            map[string]*policyv1.PodDisruptionBudget
	hpas            map[string]*autoscalingv2.HorizontalPodAutoscaler
	jobs            map[string]*batchv1.Job
	networkPolicies map[string]*networkingv1.NetworkPolicy
	yaml            []byte // the whole build output
}

// kustomize builds the kustomization in dir of fSys with kustomize's own
// library and decodes every object strictly: a field the API type does not
// have is an error.
func kustomize(t *testing.T, fSys filesys.FileSystem, dir string) *manifests {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	rm, err := k.Run(fSys, dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	out, err := rm.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	m := &manifests{
		deployments:     map[string]*appsv1.Deployment{},
		services:        map[string]*corev1.Service{},
		secrets:         map[string]*corev1.Secret{},
		configMaps:      map[string]*corev1.ConfigMap{},
		serviceAccounts: map[string]*corev1.ServiceAccount{},
		pdbs:            map[string]*policyv1.PodDisruptionBudget{},
		hpas:            map[string]*autoscalingv2.HorizontalPodAutoscaler{},
		jobs:            map[string]*batchv1.Job{},
		networkPolicies: map[string]*networkingv1.NetworkPolicy{},
		yaml:            out,
	}
	for _, r := range rm.Resources() {
		data, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		id := r.GetApiVersion() + " " + r.GetKind() + " " + r.GetName()
		var into any
		switch r.GetApiVersion() + " " + r.GetKind() {
		case "apps/v1 Deployment":
			into = add(m.deployments, r.GetName())
		case "v1 Service":
			into = add(m.services, r.GetName())
		case "v1 Secret":
			into = add(m.secrets, r.GetName())
		case "v1 ConfigMap":
			into = add(m.configMaps, r.GetName())
		case "v1 ServiceAccount":
			into = add(m.serviceAccounts, r.GetName())
		case "policy/v1 PodDisruptionBudget":
			into = add(m.pdbs, r.GetName())
		case "autoscaling/v2 HorizontalPodAutoscaler":
			into = add(m.hpas, r.GetName())
		case "batch/v1 Job":
			into = add(m.jobs, r.GetName())
		case "networking.k8s.io/v1 NetworkPolicy":
			into = add(m.networkPolicies, r.GetName())
		default:
			t.Errorf("%s: a kind the test does not know; add it to the test", id)
			continue
		}
		if err := decodeStrict(data, into); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	return m
}

// add puts a new object under name and returns it.
func add[T any](m map[string]*T, name string) *T {
	v := new(T)
	m[name] = v
	return v
}

// decodeStrict decodes one JSON object, rejecting unknown fields and
// trailing data.
func decodeStrict(data []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("data after the object")
	}
	return nil
}

// podTemplate is a workload's pod template.
type podTemplate struct {
	owner      string // "Deployment latchkey-provider"
	deployment *appsv1.Deployment
	spec       *corev1.PodTemplateSpec
}

func (m *manifests) podTemplates() []podTemplate {
	var out []podTemplate
	for _, name := range sortedKeys(m.deployments) {
		d := m.deployments[name]
		out = append(out, podTemplate{"Deployment " + name, d, &d.Spec.Template})
	}
	for _, name := range sortedKeys(m.jobs) {
		out = append(out, podTemplate{"Job " + name, nil, &m.jobs[name].Spec.Template})
	}
	return out
}

// deploymentRunning returns the Deployment whose first container runs
// latchkey with args.
func (m *manifests) deploymentRunning(t *testing.T, args ...string) *appsv1.Deployment {
	t.Helper()
	var found *appsv1.Deployment
	for _, name := range sortedKeys(m.deployments) {
		d := m.deployments[name]
		if cs := d.Spec.Template.Spec.Containers; len(cs) > 0 && slices.Equal(cs[0].Args, args) {
			if found != nil {
				t.Fatalf("two Deployments run latchkey %s: %s and %s", strings.Join(args, " "), found.Name, d.Name)
			}
			found = d
		}
	}
	if found == nil {
		t.Fatalf("no Deployment runs latchkey %s", strings.Join(args, " "))
	}
	return found
}

// envValue resolves a container's environment variable from its literal
// value or the ConfigMap or Secret it names; ok is false when the
// container does not set it.
func (m *manifests) envValue(c *corev1.Container, name string) (value string, ok bool) {
	for _, e := range c.Env {
		if e.Name != name {
			continue
		}
		switch {
		case e.ValueFrom == nil:
			return e.Value, true
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if cm := m.configMaps[ref.Name]; cm != nil {
				v, ok := cm.Data[ref.Key]
				return v, ok
			}
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			if s := m.secrets[ref.Name]; s != nil {
				if v, ok := s.StringData[ref.Key]; ok {
					return v, true
				}
				v, ok := s.Data[ref.Key]
				return string(v), ok
			}
		}
		return "", false
	}
	return "", false
}

// selects reports whether a non-empty equality selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// hasPort reports whether a container of the pod declares port: by name
// for a named port, by number otherwise.
func hasPort(spec *corev1.PodSpec, port intstr.IntOrString) bool {
	for _, c := range spec.Containers {
		if containerHasPort(&c, port) {
			return true
		}
	}
	return false
}

func containerHasPort(c *corev1.Container, port intstr.IntOrString) bool {
	for _, p := range c.Ports {
		if port.Type == intstr.String && p.Name == port.StrVal ||
			port.Type == intstr.Int && p.ContainerPort == port.IntVal {
			return true
		}
	}
	return false
}

func namedPort(c *corev1.Container, name string) (int32, bool) {
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort, true
		}
	}
	return 0, false
}

// TestKustomizeBase builds deploy/kubernetes/base with kustomize and
// checks what a deployment relies on.
func TestKustomizeBase(t *testing.T) {
	m := kustomize(t, filesys.MakeFsOnDisk(), filepath.Join("kubernetes", "base"))
	checkManifests(t, m)
	if !bytes.Contains(m.yaml, []byte("REPLACE-ME")) {
		t.Error("the base Secret should hold placeholders marked REPLACE-ME")
	}
}

// checkManifests checks a build of the base or of an overlay.
func checkManifests(t *testing.T, m *manifests) {
	t.Helper()
	for kind, n := range map[string]int{
		"Deployment": len(m.deployments), "Service": len(m.services), "Secret": len(m.secrets),
		"ConfigMap": len(m.configMaps), "ServiceAccount": len(m.serviceAccounts),
		"PodDisruptionBudget": len(m.pdbs), "HorizontalPodAutoscaler": len(m.hpas), "Job": len(m.jobs),
		"NetworkPolicy": len(m.networkPolicies),
	} {
		if n == 0 {
			t.Errorf("no %s in the build", kind)
		}
	}

	provider := m.deploymentRunning(t, "serve", "provider")
	login := m.deploymentRunning(t, "serve", "login")
	for _, c := range []struct {
		d    *appsv1.Deployment
		want int32
	}{{provider, 3}, {login, 2}} {
		if r := c.d.Spec.Replicas; r == nil || *r != c.want {
			t.Errorf("Deployment %s: replicas %s, want %d", c.d.Name, ptrString(r), c.want)
		}
	}

	checkWorkloads(t, m)
	checkServing(t, m, provider, map[string]string{
		"LATCHKEY_PUBLIC_ADDR": "http", "LATCHKEY_ADMIN_ADDR": "admin", "LATCHKEY_METRICS_ADDR": "metrics",
	}, "LATCHKEY_DATABASE_URL", "LATCHKEY_SYSTEM_SECRET", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_ISSUER", "LATCHKEY_LOGIN_URL")
	checkServing(t, m, login, map[string]string{
		"LATCHKEY_LOGIN_ADDR": "login", "LATCHKEY_METRICS_ADDR": "metrics",
	}, "LATCHKEY_DATABASE_URL", "LATCHKEY_SYSTEM_SECRET", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_ISSUER", "LATCHKEY_LOGIN_URL", "LATCHKEY_ADMIN_URL")
	checkEnvReferences(t, m)
	checkServices(t, m, provider, login)
	checkDisruptionBudgets(t, m, provider, login)
	checkAutoscaler(t, m, provider)
	checkJobs(t, m)
	checkNetworkPolicies(t, m, provider, login)
}

// checkWorkloads checks every pod template: security, resources, the
// service account, volumes.
func checkWorkloads(t *testing.T, m *manifests) {
	t.Helper()
	for _, name := range sortedKeys(m.serviceAccounts) {
		if a := m.serviceAccounts[name].AutomountServiceAccountToken; a == nil || *a {
			t.Errorf("ServiceAccount %s: automountServiceAccountToken must be false", name)
		}
	}
	for _, pt := range m.podTemplates() {
		spec := &pt.spec.Spec
		if d := pt.deployment; d != nil {
			if d.Spec.Selector == nil || len(d.Spec.Selector.MatchExpressions) > 0 ||
				!selects(d.Spec.Selector.MatchLabels, pt.spec.Labels) {
				t.Errorf("%s: the selector must be matchLabels that the pod template's labels match", pt.owner)
			}
			if len(spec.TopologySpreadConstraints) == 0 &&
				(spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil) {
				t.Errorf("%s: spread the replicas (topologySpreadConstraints or pod anti-affinity)", pt.owner)
			}
			for _, c := range spec.TopologySpreadConstraints {
				if c.LabelSelector == nil || !selects(c.LabelSelector.MatchLabels, pt.spec.Labels) {
					t.Errorf("%s: topology spread constraint on %s does not select the Deployment's own pods", pt.owner, c.TopologyKey)
				}
			}
			// The server finishes requests in flight for up to 10 s after
			// SIGTERM, which comes after the preStop hook.
			var preStop int64
			for _, c := range spec.Containers {
				if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
					preStop = max(preStop, c.Lifecycle.PreStop.Sleep.Seconds)
				}
			}
			if g := spec.TerminationGracePeriodSeconds; g == nil || *g <= 10+preStop {
				t.Errorf("%s: terminationGracePeriodSeconds %s must exceed the preStop sleep (%d s) plus the 10 s graceful shutdown", pt.owner, ptrString(g), preStop)
			}
		}
		sa := m.serviceAccounts[spec.ServiceAccountName]
		switch {
		case spec.ServiceAccountName == "":
			t.Errorf("%s: no serviceAccountName", pt.owner)
		case sa == nil:
			t.Errorf("%s: service account %q is not in the build", pt.owner, spec.ServiceAccountName)
		}
		if a := spec.AutomountServiceAccountToken; a != nil && *a {
			t.Errorf("%s: mounts a service account token", pt.owner)
		}
		podSC := spec.SecurityContext
		if podSC == nil {
			podSC = &corev1.PodSecurityContext{}
		}
		volumes := map[string]bool{}
		for _, v := range spec.Volumes {
			volumes[v.Name] = true
		}
		if len(spec.InitContainers) > 0 {
			t.Errorf("%s: init containers are not checked by this test; extend it", pt.owner)
		}
		for _, c := range spec.Containers {
			where := pt.owner + " container " + c.Name
			if !strings.Contains(c.Image, "latchkey") {
				t.Errorf("%s: image %q, want the latchkey image", where, c.Image)
			}
			sc := c.SecurityContext
			if sc == nil {
				t.Errorf("%s: no securityContext", where)
				continue
			}
			if !isTrue(sc.RunAsNonRoot) && !isTrue(podSC.RunAsNonRoot) {
				t.Errorf("%s: runAsNonRoot is not true", where)
			}
			if !isTrue(sc.ReadOnlyRootFilesystem) {
				t.Errorf("%s: readOnlyRootFilesystem is not true", where)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation is not false", where)
			}
			if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", where)
			}
			seccomp := sc.SeccompProfile
			if seccomp == nil {
				seccomp = podSC.SeccompProfile
			}
			if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: seccomp profile is not RuntimeDefault", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: set CPU and memory requests and a memory limit", where)
			}
			for _, vm := range c.VolumeMounts {
				if !volumes[vm.Name] {
					t.Errorf("%s: mounts volume %q, which the pod does not have", where, vm.Name)
				}
			}
		}
	}
}

func isTrue(b *bool) bool { return b != nil && *b }

// ptrString prints what p points to, or "unset".
func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// checkServing checks a serving Deployment: probes on named ports, the
// listen addresses against the declared container ports, the settings it
// needs.
func checkServing(t *testing.T, m *manifests, d *appsv1.Deployment, addrPorts map[string]string, required ...string) {
	t.Helper()
	c := &d.Spec.Template.Spec.Containers[0]
	where := "Deployment " + d.Name
	for _, p := range []struct {
		kind  string
		probe *corev1.Probe
		path  string
	}{
		{"readinessProbe", c.ReadinessProbe, "/health/ready"},
		{"livenessProbe", c.LivenessProbe, "/health/alive"},
		{"startupProbe", c.StartupProbe, "/health/alive"},
	} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s: no HTTP %s", where, p.kind)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s: %s path %q, want %q", where, p.kind, p.probe.HTTPGet.Path, p.path)
		case p.probe.HTTPGet.Port.Type != intstr.String:
			t.Errorf("%s: %s port %s is not a named port", where, p.kind, p.probe.HTTPGet.Port.String())
		case !containerHasPort(c, p.probe.HTTPGet.Port):
			t.Errorf("%s: %s port %q is not a port the container declares", where, p.kind, p.probe.HTTPGet.Port.StrVal)
		}
	}
	if _, ok := namedPort(c, "metrics"); !ok {
		t.Errorf("%s: no container port named metrics (Prometheus finds the pods by it)", where)
	}
	for env, portName := range addrPorts {
		addr, ok := m.envValue(c, env)
		if !ok {
			t.Errorf("%s: %s is not set", where, env)
			continue
		}
		host, port, err := net.SplitHostPort(addr)
		want, declared := namedPort(c, portName)
		switch {
		case err != nil:
			t.Errorf("%s: %s=%q: %v", where, env, addr, err)
		case host != "0.0.0.0" && host != "":
			t.Errorf("%s: %s=%q listens on %s only; in a pod listen on 0.0.0.0", where, env, addr, host)
		case !declared:
			t.Errorf("%s: no container port named %s for %s", where, portName, env)
		case port != fmt.Sprint(want):
			t.Errorf("%s: %s=%q, but the container port %s is %d", where, env, addr, portName, want)
		}
	}
	for _, env := range required {
		if v, ok := m.envValue(c, env); !ok || v == "" {
			t.Errorf("%s: %s is not set", where, env)
		}
	}
}

// checkEnvReferences checks that every key a container reads from a
// Secret or ConfigMap exists there, under the variable's own name, and
// that every key is read by some container.
func checkEnvReferences(t *testing.T, m *manifests) {
	t.Helper()
	used := map[string]bool{} // "Secret/name/key"
	for _, pt := range m.podTemplates() {
		for _, c := range pt.spec.Spec.Containers {
			where := pt.owner + " container " + c.Name
			for _, ef := range c.EnvFrom {
				switch {
				case ef.SecretRef != nil && m.secrets[ef.SecretRef.Name] == nil:
					t.Errorf("%s: envFrom Secret %q is not in the build", where, ef.SecretRef.Name)
				case ef.ConfigMapRef != nil && m.configMaps[ef.ConfigMapRef.Name] == nil:
					t.Errorf("%s: envFrom ConfigMap %q is not in the build", where, ef.ConfigMapRef.Name)
				}
			}
			for _, e := range c.Env {
				if !strings.HasPrefix(e.Name, "LATCHKEY_") {
					t.Errorf("%s: environment variable %s is not a Latchkey setting", where, e.Name)
				}
				if e.ValueFrom == nil {
					continue
				}
				var kind, name, key string
				var exists bool
				switch {
				case e.ValueFrom.SecretKeyRef != nil:
					kind, name, key = "Secret", e.ValueFrom.SecretKeyRef.Name, e.ValueFrom.SecretKeyRef.Key
					if s := m.secrets[name]; s != nil {
						_, inString := s.StringData[key]
						_, inData := s.Data[key]
						exists = inString || inData
					}
				case e.ValueFrom.ConfigMapKeyRef != nil:
					kind, name, key = "ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name, e.ValueFrom.ConfigMapKeyRef.Key
					if cm := m.configMaps[name]; cm != nil {
						_, exists = cm.Data[key]
					}
				default:
					t.Errorf("%s: %s comes from neither a Secret nor a ConfigMap", where, e.Name)
					continue
				}
				used[kind+"/"+name+"/"+key] = true
				if !exists {
					t.Errorf("%s: %s reads key %q of %s %q, which has no such key", where, e.Name, key, kind, name)
				}
				if key != e.Name {
					t.Errorf("%s: %s reads key %q; name the key as the variable", where, e.Name, key)
				}
			}
		}
	}
	for name, s := range m.secrets {
		keys := sortedKeys(s.Data)
		keys = append(keys, sortedKeys(s.StringData)...)
		for _, k := range keys {
			if !used["Secret/"+name+"/"+k] {
				t.Errorf("Secret %s: key %s is read by no container", name, k)
			}
		}
	}
	for name, cm := range m.configMaps {
		for _, k := range sortedKeys(cm.Data) {
			if !used["ConfigMap/"+name+"/"+k] {
				t.Errorf("ConfigMap %s: key %s is read by no container", name, k)
			}
		}
	}
}

// checkServices checks that every Service selects a Deployment's pods and
// that every port it targets exists in each pod it selects; that the admin
// API stays inside the cluster; and that the login app's admin URL is a
// Service of the provider's admin port.
func checkServices(t *testing.T, m *manifests, provider, login *appsv1.Deployment) {
	t.Helper()
	for _, name := range sortedKeys(m.services) {
		svc := m.services[name]
		deployments := 0
		for _, pt := range m.podTemplates() {
			if !selects(svc.Spec.Selector, pt.spec.Labels) {
				continue
			}
			if pt.deployment != nil {
				deployments++
			}
			for _, p := range svc.Spec.Ports {
				target := p.TargetPort
				if target.Type == intstr.Int && target.IntVal == 0 {
					target = intstr.FromInt32(p.Port)
				}
				if !hasPort(&pt.spec.Spec, target) {
					t.Errorf("Service %s port %s targets %s, which %s does not declare", name, p.Name, target.String(), pt.owner)
				}
			}
		}
		if deployments == 0 {
			t.Errorf("Service %s selects no Deployment's pods", name)
		}
	}

	c := &login.Spec.Template.Spec.Containers[0]
	adminURL, _ := m.envValue(c, "LATCHKEY_ADMIN_URL")
	u, err := url.Parse(adminURL)
	if err != nil || u.Hostname() == "" {
		t.Fatalf("login app: LATCHKEY_ADMIN_URL %q is not a URL", adminURL)
	}
	host := strings.SplitN(u.Hostname(), ".", 2)[0] // latchkey-admin[.namespace.svc…]
	svc := m.services[host]
	if svc == nil {
		t.Fatalf("login app: LATCHKEY_ADMIN_URL %q names no Service of the build", adminURL)
	}
	if svc.Spec.Type != "" && svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("Service %s (the admin API) is %s; keep it ClusterIP", svc.Name, svc.Spec.Type)
	}
	if !selects(svc.Spec.Selector, provider.Spec.Template.Labels) || selects(svc.Spec.Selector, login.Spec.Template.Labels) {
		t.Errorf("Service %s (the admin API) must select the provider's pods only", svc.Name)
	}
	adminPort, _ := namedPort(&provider.Spec.Template.Spec.Containers[0], "admin")
	ok := false
	for _, p := range svc.Spec.Ports {
		target := p.TargetPort
		if fmt.Sprint(p.Port) == u.Port() && (target.StrVal == "admin" || target.IntVal == adminPort) {
			ok = true
		}
	}
	if !ok {
		t.Errorf("login app: LATCHKEY_ADMIN_URL %q: Service %s has no port %s to the provider's admin port", adminURL, svc.Name, u.Port())
	}
	for _, name := range sortedKeys(m.services) {
		s := m.services[name]
		if selects(s.Spec.Selector, provider.Spec.Template.Labels) && s.Spec.Type != "" && s.Spec.Type != corev1.ServiceTypeClusterIP {
			for _, p := range s.Spec.Ports {
				if p.TargetPort.StrVal == "admin" || p.TargetPort.IntVal == adminPort || p.Port == adminPort {
					t.Errorf("Service %s (%s) exposes the admin API outside the cluster", name, s.Spec.Type)
				}
			}
		}
	}
}

// checkDisruptionBudgets checks that the provider and the login app each
// have a PodDisruptionBudget selecting exactly their pods that allows a
// disruption.
func checkDisruptionBudgets(t *testing.T, m *manifests, provider, login *appsv1.Deployment) {
	t.Helper()
	covered := map[string]bool{}
	for _, name := range sortedKeys(m.pdbs) {
		pdb := m.pdbs[name]
		if pdb.Spec.Selector == nil || len(pdb.Spec.Selector.MatchExpressions) > 0 {
			t.Errorf("PodDisruptionBudget %s: use a matchLabels selector", name)
			continue
		}
		var matched []*appsv1.Deployment
		for _, dname := range sortedKeys(m.deployments) {
			if d := m.deployments[dname]; selects(pdb.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				matched = append(matched, d)
			}
		}
		if len(matched) != 1 {
			t.Errorf("PodDisruptionBudget %s selects the pods of %d Deployments, want 1", name, len(matched))
			continue
		}
		d := matched[0]
		covered[d.Name] = true
		replicas := int32(1)
		if d.Spec.Replicas != nil {
			replicas = *d.Spec.Replicas
		}
		switch {
		case pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil:
			t.Errorf("PodDisruptionBudget %s: set minAvailable or maxUnavailable", name)
		case pdb.Spec.MinAvailable != nil && pdb.Spec.MinAvailable.Type == intstr.Int && pdb.Spec.MinAvailable.IntVal >= replicas:
			t.Errorf("PodDisruptionBudget %s: minAvailable %d of %d replicas blocks every drain", name, pdb.Spec.MinAvailable.IntVal, replicas)
		case pdb.Spec.MaxUnavailable != nil && pdb.Spec.MaxUnavailable.Type == intstr.Int && pdb.Spec.MaxUnavailable.IntVal < 1:
			t.Errorf("PodDisruptionBudget %s: maxUnavailable 0 blocks every drain", name)
		}
	}
	for _, d := range []*appsv1.Deployment{provider, login} {
		if !covered[d.Name] {
			t.Errorf("Deployment %s has no PodDisruptionBudget", d.Name)
		}
	}
}

// checkAutoscaler checks the provider's HorizontalPodAutoscaler.
func checkAutoscaler(t *testing.T, m *manifests, provider *appsv1.Deployment) {
	t.Helper()
	found := false
	for _, name := range sortedKeys(m.hpas) {
		hpa := m.hpas[name]
		ref := hpa.Spec.ScaleTargetRef
		d := m.deployments[ref.Name]
		if ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || d == nil {
			t.Errorf("HorizontalPodAutoscaler %s scales %s %s %s, which is not a Deployment of the build", name, ref.APIVersion, ref.Kind, ref.Name)
			continue
		}
		if d == provider {
			found = true
		}
		cpu := false
		for _, metric := range hpa.Spec.Metrics {
			if metric.Type == autoscalingv2.ResourceMetricSourceType && metric.Resource != nil &&
				metric.Resource.Name == corev1.ResourceCPU && metric.Resource.Target.AverageUtilization != nil {
				cpu = true
			}
		}
		if !cpu {
			t.Errorf("HorizontalPodAutoscaler %s: no CPU utilization target", name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("HorizontalPodAutoscaler %s: container %s of %s has no CPU request to measure utilization against", name, c.Name, d.Name)
			}
		}
		minReplicas := int32(1)
		if hpa.Spec.MinReplicas != nil {
			minReplicas = *hpa.Spec.MinReplicas
		}
		if d.Spec.Replicas != nil && (*d.Spec.Replicas < minReplicas || *d.Spec.Replicas > hpa.Spec.MaxReplicas) {
			t.Errorf("HorizontalPodAutoscaler %s: %s's %d replicas are outside [%d, %d]", name, d.Name, *d.Spec.Replicas, minReplicas, hpa.Spec.MaxReplicas)
		}
		if minReplicas < 2 {
			t.Errorf("HorizontalPodAutoscaler %s: minReplicas %d; keep at least 2 replicas", name, minReplicas)
		}
	}
	if !found {
		t.Errorf("no HorizontalPodAutoscaler scales %s", provider.Name)
	}
}

// checkJobs checks that a Job runs the migrations.
func checkJobs(t *testing.T, m *manifests) {
	t.Helper()
	migrates := false
	for _, name := range sortedKeys(m.jobs) {
		spec := m.jobs[name].Spec.Template.Spec
		if p := spec.RestartPolicy; p != corev1.RestartPolicyNever && p != corev1.RestartPolicyOnFailure {
			t.Errorf("Job %s: restartPolicy %q", name, p)
		}
		for _, c := range spec.Containers {
			if len(c.Command) == 0 && slices.Equal(c.Args, []string{"migrate"}) {
				migrates = true
				if v, ok := m.envValue(&c, "LATCHKEY_DATABASE_URL"); !ok || v == "" {
					t.Errorf("Job %s: LATCHKEY_DATABASE_URL is not set", name)
				}
			}
		}
	}
	if !migrates {
		t.Error("no Job runs latchkey migrate")
	}
}

// overlayPath is where the README's example overlay lives.
const overlayPath = "deploy/kubernetes/overlays/production"

// TestKustomizeOverlayFromREADME builds the example overlay of
// deploy/README.md against the base, in memory: the Secret's placeholders
// are replaced, the settings merged, the image and namespace set, and
// every reference still holds.
func TestKustomizeOverlayFromREADME(t *testing.T) {
	readme := string(readFile(t, "README.md"))
	block := regexp.MustCompile("(?s)```yaml\n(# " + regexp.QuoteMeta(overlayPath) + "/kustomization.yaml\n.*?)```").FindStringSubmatch(readme)
	if block == nil {
		t.Fatalf("README.md has no ```yaml block starting with # %s/kustomization.yaml", overlayPath)
	}
	fSys := filesys.MakeFsInMemory()
	write := func(name string, data []byte) {
		t.Helper()
		if err := fSys.MkdirAll(path.Dir(name)); err != nil {
			t.Fatal(err)
		}
		if err := fSys.WriteFile(name, data); err != nil {
			t.Fatal(err)
		}
	}
	base := filepath.Join("kubernetes", "base")
	entries, err := os.ReadDir(base)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		write("/repo/deploy/kubernetes/base/"+e.Name(), readFile(t, filepath.Join(base, e.Name())))
	}
	write("/repo/"+overlayPath+"/kustomization.yaml", []byte(block[1]))
	secrets := map[string]string{
		"LATCHKEY_SYSTEM_SECRET": "overlay-test-system-secret-0123456789abcdef",
		"LATCHKEY_ADMIN_TOKEN":   "overlay-test-admin-token",
		"LATCHKEY_DATABASE_URL":  "postgres://latchkey:pw@db.internal:5432/latchkey?sslmode=verify-full",
	}
	var env strings.Builder
	for _, k := range sortedKeys(secrets) {
		fmt.Fprintf(&env, "%s=%s\n", k, secrets[k])
	}
	write("/repo/"+overlayPath+"/latchkey.env", []byte(env.String()))

	m := kustomize(t, fSys, "/repo/"+overlayPath)
	checkManifests(t, m)
	if bytes.Contains(m.yaml, []byte("REPLACE-ME")) {
		t.Error("a placeholder of the base survives the overlay")
	}
	s := m.secrets["latchkey"]
	if s == nil {
		t.Fatal("the overlay has no Secret latchkey")
	}
	for k, want := range secrets {
		if got := string(s.Data[k]); got != want {
			t.Errorf("Secret latchkey %s = %q, want the overlay's %q", k, got, want)
		}
	}
	cm := m.configMaps["latchkey"]
	if cm == nil || !strings.HasPrefix(cm.Data["LATCHKEY_ISSUER"], "https://") || cm.Data["LATCHKEY_ISSUER"] == "https://id.example.com" {
		t.Errorf("the overlay does not set its own https issuer in ConfigMap latchkey: %v", cm)
	}
	if cm != nil && cm.Data["LATCHKEY_LOG_FORMAT"] != "json" {
		t.Error("the overlay's ConfigMap lost the base's keys (use behavior: merge)")
	}
	for _, pt := range m.podTemplates() {
		for _, c := range pt.spec.Spec.Containers {
			if c.Image == "latchkey:dev" || !strings.Contains(c.Image, "/") {
				t.Errorf("%s: image %q, want the overlay's registry image", pt.owner, c.Image)
			}
		}
	}
	for name, d := range m.deployments {
		if d.Namespace == "" {
			t.Errorf("Deployment %s has no namespace", name)
		}
	}
}

// checkNetworkPolicies checks that the provider's admin port admits the
// login app's pods and no one else, while its public and metrics ports
// stay open, and that the policies name ports the pods declare.
func checkNetworkPolicies(t *testing.T, m *manifests, provider, login *appsv1.Deployment) {
	t.Helper()
	pod := &provider.Spec.Template.Spec
	open := map[string]bool{}       // ports admitted from anywhere
	fromLogin := map[string]bool{}  // ports admitted from the login app's pods
	fromOthers := map[string]bool{} // ports admitted from other selected sources
	for _, name := range sortedKeys(m.networkPolicies) {
		np := m.networkPolicies[name]
		sel := np.Spec.PodSelector
		if len(sel.MatchExpressions) > 0 {
			t.Errorf("NetworkPolicy %s: use a matchLabels pod selector", name)
			continue
		}
		selected := 0
		for _, pt := range m.podTemplates() {
			if pt.deployment != nil && selects(sel.MatchLabels, pt.spec.Labels) {
				selected++
			}
		}
		if selected == 0 {
			t.Errorf("NetworkPolicy %s selects no Deployment's pods", name)
		}
		if !selects(sel.MatchLabels, provider.Spec.Template.Labels) {
			continue
		}
		for _, rule := range np.Spec.Ingress {
			var ports []string
			all := len(rule.Ports) == 0 // no ports: every port
			for _, p := range rule.Ports {
				if p.Port == nil {
					all = true
					continue
				}
				if !hasPort(pod, *p.Port) {
					t.Errorf("NetworkPolicy %s names port %s, which %s does not declare", name, p.Port.String(), provider.Name)
				}
				ports = append(ports, p.Port.String())
			}
			if all {
				for _, c := range pod.Containers {
					for _, p := range c.Ports {
						ports = append(ports, p.Name)
					}
				}
			}
			for _, port := range ports {
				if len(rule.From) == 0 {
					open[port] = true
				}
				for _, from := range rule.From {
					if from.PodSelector != nil && from.NamespaceSelector == nil && from.IPBlock == nil &&
						len(from.PodSelector.MatchExpressions) == 0 && selects(from.PodSelector.MatchLabels, login.Spec.Template.Labels) {
						fromLogin[port] = true
					} else {
						fromOthers[port] = true
					}
				}
			}
		}
	}
	adminPort, _ := namedPort(&pod.Containers[0], "admin")
	for _, admin := range []string{"admin", fmt.Sprint(adminPort)} {
		if open[admin] || fromOthers[admin] {
			t.Errorf("the NetworkPolicies admit others than the login app to the provider's admin port (%s)", admin)
		}
	}
	if !fromLogin["admin"] && !fromLogin[fmt.Sprint(adminPort)] {
		t.Error("no NetworkPolicy admits the login app to the provider's admin port")
	}
	for _, port := range []string{"http", "metrics"} {
		number, _ := namedPort(&pod.Containers[0], port)
		if !open[port] && !open[fmt.Sprint(number)] {
			t.Errorf("the NetworkPolicies close the provider's %s port", port)
		}
	}
}
