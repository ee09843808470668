package deploy_test

import (
	"bufio"
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// settingName matches a Latchkey environment variable; "LATCHKEY_*" in
// prose is none.
var settingName = regexp.MustCompile(`\bLATCHKEY_[A-Z0-9_]*[A-Z0-9]\b`)

// TestSettingsAreReal checks that every LATCHKEY_* environment variable
// named anywhere under deploy/ (compose, manifests, Dockerfile, README,
// Prometheus and Grafana files) is a setting of `latchkey serve`, as its
// help lists them.
func TestSettingsAreReal(t *testing.T) {
	bin := latchkeyBinary(t)
	cmd := exec.Command(bin, "serve", "-h")
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("latchkey serve -h: %v\n%s", err, out)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`\(env (LATCHKEY_[A-Z0-9_]+)`).FindAllSubmatch(out, -1) {
		known[string(m[1])] = true
	}
	if len(known) < 10 {
		t.Fatalf("latchkey serve -h lists %d LATCHKEY_* variables; the test cannot read its help:\n%s", len(known), out)
	}

	named := map[string][]string{} // name → file:line
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || strings.HasSuffix(path, ".go") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Buffer(nil, 1<<20)
		for line := 1; sc.Scan(); line++ {
			for _, name := range settingName.FindAllString(sc.Text(), -1) {
				named[name] = append(named[name], path+":"+strconv.Itoa(line))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, must := range []string{"LATCHKEY_DATABASE_URL", "LATCHKEY_SYSTEM_SECRET", "LATCHKEY_ADMIN_TOKEN", "LATCHKEY_METRICS_ADDR"} {
		if len(named[must]) == 0 {
			t.Errorf("no file under deploy/ names %s; is the walk looking in the right place?", must)
		}
	}
	for _, name := range sortedKeys(named) {
		if !known[name] {
			t.Errorf("%s is not a setting of latchkey serve (named at %s)", name, strings.Join(named[name], ", "))
		}
	}
	t.Logf("%d LATCHKEY_* names under deploy/, all settings of latchkey serve", len(named))
}
