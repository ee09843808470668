package deploy_test

import (
	"go/scanner"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// citation matches a test SECURITY.md cites: the file from the repository
// root, then the test as "go test -run" takes it, each in backticks.
var citation = regexp.MustCompile("`([A-Za-z0-9_./-]+_test\\.go)` `(Test[A-Za-z0-9_]*)((?:/[^`]+)?)`")

// TestSecurityChecklist keeps SECURITY.md honest as the code moves: every
// row of its checklist cites at least one test, or says the test is
// pending, or that the control is NOT MET; every cited file declares the
// cited top-level test; every cited subtest is named by a string literal
// of that package's tests. Pending rows are counted and logged, not
// failed. The README and this directory's README link the document.
func TestSecurityChecklist(t *testing.T) {
	doc := strings.Split(string(readFile(t, "SECURITY.md")), "\n")
	literals := map[string]map[string]bool{} // by directory
	var inChecklist, seenChecklist bool
	var rows, cited, pending, notMet int
	for i, line := range doc {
		if strings.HasPrefix(line, "## ") {
			inChecklist = line == "## Checklist"
			seenChecklist = seenChecklist || inChecklist
			continue
		}
		if !inChecklist || !strings.HasPrefix(line, "|") || strings.HasPrefix(line, "|---") || strings.Contains(line, "| control |") {
			continue
		}
		rows++
		where := "SECURITY.md:" + strconv.Itoa(i+1)
		cites := citation.FindAllStringSubmatch(line, -1)
		switch {
		case strings.Contains(line, "test: (pending)"):
			pending++
			t.Logf("%s: pending: %s", where, strings.TrimSpace(strings.SplitN(strings.Trim(line, "| "), "|", 3)[1]))
		case strings.Contains(line, "**NOT MET**"):
			notMet++
		case len(cites) == 0:
			t.Errorf("%s cites no test and is neither pending nor NOT MET: %s", where, line)
		}
		for _, c := range cites {
			cited++
			file, test, sub := c[1], c[2], strings.TrimPrefix(c[3], "/")
			src, err := os.ReadFile(filepath.Join(repoRoot, file))
			if err != nil {
				t.Errorf("%s cites %s: %v", where, file, err)
				continue
			}
			if !regexp.MustCompile(`(?m)^func ` + test + `\(t \*testing\.T\) \{`).Match(src) {
				t.Errorf("%s cites %s %s, but the file declares no func %s(t *testing.T)", where, file, test, test)
				continue
			}
			if sub == "" {
				continue
			}
			dir := filepath.Dir(filepath.Join(repoRoot, file))
			if literals[dir] == nil {
				literals[dir] = testNames(t, dir)
			}
			for _, seg := range strings.Split(sub, "/") {
				if !literals[dir][seg] {
					t.Errorf("%s cites %s %s/%s, but no string literal under %s names the subtest %q", where, file, test, sub, filepath.Dir(file), seg)
				}
			}
		}
	}
	if !seenChecklist {
		t.Fatal("SECURITY.md has no \"## Checklist\" section")
	}
	t.Logf("%d checklist rows: %d tests cited, %d rows pending, %d NOT MET", rows, cited, pending, notMet)
	if rows < 40 || cited < 100 {
		t.Errorf("found %d rows and %d citations: has the checklist's format changed?", rows, cited)
	}

	for file, link := range map[string]string{filepath.Join(repoRoot, "README.md"): "deploy/SECURITY.md", "README.md": "(SECURITY.md)"} {
		if b, err := os.ReadFile(file); err != nil || !strings.Contains(string(b), link) {
			t.Errorf("%s does not link %s (%v)", file, link, err)
		}
	}
}

// testNames returns every string literal of the Go files under dir, as a
// subtest name: spaces become underscores, as t.Run makes them.
func testNames(t *testing.T, dir string) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
			return err
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		var s scanner.Scanner
		fset := token.NewFileSet()
		s.Init(fset.AddFile(path, -1, len(src)), src, nil, 0)
		for {
			_, tok, lit := s.Scan()
			if tok == token.EOF {
				break
			}
			if tok == token.STRING {
				if v, err := strconv.Unquote(lit); err == nil {
					names[strings.ReplaceAll(v, " ", "_")] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}
