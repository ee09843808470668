package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/readme-want.md from the fixture")

// TestREADME writes the section of a fixture (latchkey-bench lines of two
// backends and perf-table's facts) into a README without one, and then
// again into the README it wrote, which must not change it.
func TestREADME(t *testing.T) {
	before, err := os.ReadFile("testdata/readme-before.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := filepath.Join(t.TempDir(), "README.md")
	if err := os.WriteFile(readme, before, 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--facts", "testdata/facts.json", "--readme", readme, "testdata/results.jsonl"}
	var stdout, stderr bytes.Buffer
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	got, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("testdata/readme-want.md", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("testdata/readme-want.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("README differs from testdata/readme-want.md (go test -update rewrites it):\n%s", got)
	}
	if !strings.Contains(string(got), stdout.String()) || !strings.HasPrefix(stdout.String(), "## Performance\n") {
		t.Errorf("stdout is not the section written:\n%s", stdout.String())
	}

	stdout.Reset()
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("second run: exit %d: %s", code, stderr.String())
	}
	again, _ := os.ReadFile(readme)
	if !bytes.Equal(again, want) {
		t.Errorf("writing the section again changed the README:\n%s", again)
	}
}

func TestReplaceSection(t *testing.T) {
	const section = "## Performance\n\nnew\n"
	for _, tc := range []struct{ name, readme, want string }{
		{
			"replaces the section up to the next heading",
			"# T\n\n## Status\n\ns\n\n## Performance\n\nold\n\n### PostgreSQL\n\nold table\n\n## Tests\n\nt\n",
			"# T\n\n## Status\n\ns\n\n## Performance\n\nnew\n\n## Tests\n\nt\n",
		},
		{
			"replaces the last section up to the end",
			"# T\n\n## Performance\n\nold\n",
			"# T\n\n## Performance\n\nnew\n",
		},
		{
			"adds the section after Status",
			"# T\n\n## Status\n\ns\n\n## Quick start\n\nq\n",
			"# T\n\n## Status\n\ns\n\n## Performance\n\nnew\n\n## Quick start\n\nq\n",
		},
		{
			"appends without Status",
			"# T\n\nintro",
			"# T\n\nintro\n\n## Performance\n\nnew\n",
		},
		{
			"ignores headings in code blocks",
			"## Performance\n\nold\n```sh\n## a comment\n```\n\n## Tests\n",
			"## Performance\n\nnew\n\n## Tests\n",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(replaceSection([]byte(tc.readme), section)); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
		})
	}
}

func TestSeveralRunsWithoutMedian(t *testing.T) {
	f := facts{Backends: []backend{{Label: "sqlite"}}}
	lines := []line{
		{Scenario: "refresh", Label: "sqlite", Run: 1, Concurrency: 8},
		{Scenario: "refresh", Label: "sqlite", Run: 1, Concurrency: 8},
	}
	if _, err := render(f, lines); err == nil || !strings.Contains(err.Error(), "no median line") {
		t.Errorf("two runs of one scenario without a median line: %v, want an error", err)
	}
	lines[1].Label = "postgres"
	if _, err := render(f, lines); err == nil || !strings.Contains(err.Error(), `"postgres"`) {
		t.Errorf("results of a backend the facts do not list: %v, want an error", err)
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		v      float64
		places int
		want   string
	}{
		{0, 0, "0"}, {999.4, 0, "999"}, {1000, 0, "1,000"}, {1234567.891, 1, "1,234,567.9"}, {-6500, 0, "-6,500"}, {0.555, 2, "0.56"},
	} {
		if got := num(tc.v, tc.places); got != tc.want {
			t.Errorf("num(%v, %d) = %q, want %q", tc.v, tc.places, got, tc.want)
		}
	}
}
