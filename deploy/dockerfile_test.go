package deploy_test

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// dockerInstruction is one instruction of a Dockerfile, continuation lines
// joined.
type dockerInstruction struct {
	cmd  string // upper case: FROM, RUN, …
	args string
}

func parseDockerfile(t *testing.T, data []byte) []dockerInstruction {
	t.Helper()
	var out []dockerInstruction
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue
		}
		if l, ok := strings.CutSuffix(line, `\`); ok {
			cur.WriteString(l + " ")
			continue
		}
		cur.WriteString(line)
		full := strings.TrimSpace(cur.String())
		cur.Reset()
		if full == "" {
			continue
		}
		cmd, args, _ := strings.Cut(full, " ")
		out = append(out, dockerInstruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
	}
	return out
}

// TestDockerfile checks deploy/Dockerfile: a static, trimmed build in a Go
// image new enough for go.mod, a distroless or scratch final stage running
// as a numeric non-root user, the entry point and default command, the
// exposed ports; and that the build context the ignore file lets through
// holds every package the binary is built from.
func TestDockerfile(t *testing.T) {
	ins := parseDockerfile(t, readFile(t, "Dockerfile"))
	var froms []string
	var final []dockerInstruction // instructions of the last stage
	args := map[string]string{}
	build := ""
	var copied []string
	for _, in := range ins {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
			final = nil
		case "ARG":
			if k, v, ok := strings.Cut(in.args, "="); ok {
				args[k] = v
			}
		case "RUN":
			if strings.Contains(in.args, "go build") {
				build = in.args
			}
		case "COPY":
			if len(froms) == 1 && !strings.HasPrefix(in.args, "--from") {
				fields := strings.Fields(in.args)
				copied = append(copied, fields[:len(fields)-1]...)
			}
		}
		final = append(final, in)
	}
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, have FROM %q", froms)
	}
	if !strings.HasPrefix(froms[0], "golang:") {
		t.Errorf("build stage FROM %q, want a golang image", froms[0])
	}
	last := froms[len(froms)-1]
	if !strings.HasPrefix(last, "gcr.io/distroless/static") && last != "scratch" {
		t.Errorf("final stage FROM %q, want distroless static or scratch", last)
	}
	if !strings.Contains(string(readFile(t, "Dockerfile")), "CGO_ENABLED=0") {
		t.Error("the build does not set CGO_ENABLED=0")
	}
	if !strings.Contains(build, "-trimpath") || !regexp.MustCompile(`-ldflags "?'?-s -w`).MatchString(build) || !strings.Contains(build, "./cmd/latchkey") {
		t.Errorf("go build %q: want -trimpath, -ldflags '-s -w …' and ./cmd/latchkey", build)
	}

	// The Go image satisfies go.mod's go line (GOTOOLCHAIN=local).
	goMod := string(readFile(t, filepath.Join(repoRoot, "go.mod")))
	if m := regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`).FindStringSubmatch(goMod); m != nil {
		imageGo := args["GO_VERSION"]
		if !strings.Contains(froms[0], "${GO_VERSION}") {
			imageGo = strings.TrimPrefix(strings.SplitN(froms[0], "-", 2)[0], "golang:")
		}
		im := regexp.MustCompile(`^(\d+)\.(\d+)`).FindStringSubmatch(imageGo)
		if im == nil {
			t.Errorf("cannot read the Go version of the build image %q (GO_VERSION %q)", froms[0], imageGo)
		} else if atoi(im[1]) < atoi(m[1]) || atoi(im[1]) == atoi(m[1]) && atoi(im[2]) < atoi(m[2]) {
			t.Errorf("the build image's Go %s is older than go.mod's go %s.%s", imageGo, m[1], m[2])
		}
	}

	var user, entrypoint, command string
	var exposed []string
	for _, in := range final {
		switch in.cmd {
		case "USER":
			user = in.args
		case "ENTRYPOINT":
			entrypoint = in.args
		case "CMD":
			command = in.args
		case "EXPOSE":
			exposed = append(exposed, strings.Fields(in.args)...)
		}
	}
	uid, err := strconv.Atoi(strings.SplitN(user, ":", 2)[0])
	if err != nil || uid == 0 {
		t.Errorf("final stage USER %q, want a numeric non-root user", user)
	}
	if !regexp.MustCompile(`^\["[^"]*latchkey"\]$`).MatchString(entrypoint) {
		t.Errorf("ENTRYPOINT %s, want the latchkey binary (exec form)", entrypoint)
	}
	if command != `["serve", "provider"]` {
		t.Errorf("CMD %s, want [\"serve\", \"provider\"]", command)
	}
	for _, p := range []string{"8080", "8081", "9464"} {
		if !slices.Contains(exposed, p) {
			t.Errorf("EXPOSE %v lacks %s", exposed, p)
		}
	}

	// Every package of the module the binary needs is copied into the
	// build stage and let through by the ignore file.
	ignore := string(readFile(t, "Dockerfile.dockerignore"))
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is not on PATH: cannot list the packages cmd/latchkey is built from")
	}
	list := exec.Command(goCmd, "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}{{end}}{{end}}", "./cmd/latchkey")
	list.Dir = repoRoot
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	for dir := range strings.FieldsSeq(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil {
			t.Fatal(err)
		}
		top := strings.Split(filepath.ToSlash(rel), "/")[0]
		if !slices.Contains(copied, top) && !slices.Contains(copied, "./"+top) && !slices.Contains(copied, ".") {
			t.Errorf("package directory %s is not copied into the build stage (COPY %v)", rel, copied)
		}
		if !regexp.MustCompile(`(?m)^!` + regexp.QuoteMeta(top) + `/?$`).MatchString(ignore) {
			t.Errorf("Dockerfile.dockerignore does not let %s through", top)
		}
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
