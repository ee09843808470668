// Command perftable writes the "Performance" section of Latchkey's
// README.md from what cmd/latchkey-bench/perf-table measured: the JSON
// lines of latchkey-bench (one file or more, each line labelled with its
// backend by --label) and a facts file with the rest (the machine,
// pgbench's ceiling, the server's memory and start-up times).
//
//	perftable --facts facts.json --readme README.md results.jsonl…
//
// It replaces the section from the line "## Performance" up to the next
// "## " heading, or adds it after the Status section when there is none
// yet, and prints the section to stdout. The section shows, per backend
// and scenario, the median run (the line latchkey-bench marks with
// median_of, or the only run), next to Latchkey's targets and to the
// reference figures issue 7 gives for Ory Hydra.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command; it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("perftable", flag.ContinueOnError)
	fs.SetOutput(stderr)
	factsPath := fs.String("facts", "", "JSON file with the machine, pgbench, memory and start-up facts (required)")
	readmePath := fs.String("readme", "README.md", "the README whose Performance section is written")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *factsPath == "" || fs.NArg() == 0 {
		fmt.Fprintln(stderr, "usage: perftable --facts facts.json [--readme README.md] results.jsonl…")
		return 2
	}
	if err := write(*factsPath, *readmePath, fs.Args(), stdout); err != nil {
		fmt.Fprintln(stderr, "perftable:", err)
		return 1
	}
	return 0
}

func write(factsPath, readmePath string, resultPaths []string, stdout io.Writer) error {
	var f facts
	data, err := os.ReadFile(factsPath)
	if err != nil {
		return fmt.Errorf("read facts: %w", err)
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("parse facts %s: %w", factsPath, err)
	}
	var lines []line
	for _, p := range resultPaths {
		ls, err := readLines(p)
		if err != nil {
			return err
		}
		lines = append(lines, ls...)
	}
	section, err := render(f, lines)
	if err != nil {
		return err
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		return fmt.Errorf("read README: %w", err)
	}
	info, err := os.Stat(readmePath)
	if err != nil {
		return fmt.Errorf("read README: %w", err)
	}
	if err := os.WriteFile(readmePath, replaceSection(readme, section), info.Mode().Perm()); err != nil {
		return fmt.Errorf("write README: %w", err)
	}
	_, err = io.WriteString(stdout, section)
	return err
}

// readLines reads latchkey-bench's JSON lines.
func readLines(path string) ([]line, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	var lines []line
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", path, n, err)
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return lines, nil
}

// replaceSection puts section in place of README's "## Performance"
// section, or after the Status section (at the end without one).
func replaceSection(readme []byte, section string) []byte {
	lines := bytes.SplitAfter(readme, []byte("\n"))
	headings := headingLines(lines)
	start, end := -1, len(lines)
	for i, h := range headings {
		if string(bytes.TrimRight(lines[h], " \r\n")) == "## Performance" {
			start = h
			if i+1 < len(headings) {
				end = headings[i+1]
			}
			break
		}
	}
	if start < 0 {
		start = len(lines)
		for i, h := range headings {
			if string(bytes.TrimRight(lines[h], " \r\n")) == "## Status" && i+1 < len(headings) {
				start = headings[i+1]
				break
			}
		}
		end = start
	}
	var out bytes.Buffer
	for _, l := range lines[:start] {
		out.Write(l)
	}
	if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), []byte("\n\n")) {
		if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			out.WriteString("\n")
		}
		out.WriteString("\n")
	}
	out.WriteString(section)
	if end < len(lines) {
		out.WriteString("\n")
	}
	for _, l := range lines[end:] {
		out.Write(l)
	}
	return out.Bytes()
}

// headingLines are the indexes of the "## " lines outside fenced code
// blocks, where a shell comment may start the same way.
func headingLines(lines [][]byte) []int {
	var hs []int
	fenced := false
	for i, l := range lines {
		switch {
		case bytes.HasPrefix(l, []byte("```")):
			fenced = !fenced
		case !fenced && bytes.HasPrefix(l, []byte("## ")):
			hs = append(hs, i)
		}
	}
	return hs
}
