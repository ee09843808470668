package deploy_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// repoRoot is the module root, relative to this package's directory (the
// working directory of its tests).
const repoRoot = ".."

var (
	buildOnce sync.Once
	buildDir  string
	buildPath string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// latchkeyBinary builds ./cmd/latchkey once per test run with the go
// command on PATH and returns the binary's path. It skips the test when
// there is no go command.
func latchkeyBinary(t *testing.T) string {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: cannot build cmd/latchkey to check the deploy files against it")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "latchkey-deploy-test-")
		if buildErr != nil {
			return
		}
		buildPath = filepath.Join(buildDir, "latchkey")
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goCmd, "build", "-o", buildPath, "./cmd/latchkey")
		cmd.Dir = repoRoot
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/latchkey: %v\n%s", err, out.String())
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

// cleanEnv is the test's environment without LATCHKEY_* variables, so
// that settings of the machine running the tests do not reach the binary.
func cleanEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LATCHKEY_") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// readFile reads a file of this directory or fails the test.
func readFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quoted matches PromQL string literals, whose content is no identifier.
var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")

// metricName matches the metric names the deploy files may query.
var metricName = regexp.MustCompile(`\b(?:latchkey|go|process)_[a-zA-Z0-9_]*[a-zA-Z0-9]\b`)

// queriedMetrics returns the Latchkey, Go and process metric names a
// PromQL expression mentions (label values in quotes are not names).
func queriedMetrics(expr string) []string {
	return metricName.FindAllString(quoted.ReplaceAllString(expr, `""`), -1)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
