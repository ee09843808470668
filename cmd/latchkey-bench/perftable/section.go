package main

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// facts are what perf-table measured besides latchkey-bench's lines.
type facts struct {
	// Command reruns the measurement with the same settings.
	Command  string   `json:"command"`
	Duration string   `json:"duration"`
	Warmup   string   `json:"warmup"`
	Runs     int      `json:"runs"`
	Machine  machine  `json:"machine"`
	PGBench  *pgbench `json:"pgbench,omitempty"`
	// RS256SignsPerSecond is how many RS256 signatures the machine's cores
	// make together (provider/keys BenchmarkGenerate/RS256/parallel): the
	// ceiling of RS256 JWT access tokens.
	RS256SignsPerSecond float64   `json:"rs256_signs_per_second,omitempty"`
	Backends            []backend `json:"backends"`
}

type machine struct {
	CPU        string `json:"cpu"`
	CPUs       int    `json:"cpus"`
	MemoryKiB  int64  `json:"memory_kib"`
	Kernel     string `json:"kernel"`
	Go         string `json:"go"`
	PostgreSQL string `json:"postgresql"`
	Commit     string `json:"commit"`
	Date       string `json:"date"`
}

// pgbench is the PostgreSQL ceiling: transactions per second of one
// token-shaped INSERT each, and their average latency.
type pgbench struct {
	TPS64       float64 `json:"tps_64"`
	LatencyMS64 float64 `json:"latency_ms_64"`
	TPS1        float64 `json:"tps_1"`
	LatencyMS1  float64 `json:"latency_ms_1"`
}

// backend is one database's server: its memory, and for SQLite its
// start-up times and how often its log said "database is locked".
type backend struct {
	Label      string `json:"label"`
	IdleRSSKiB int64  `json:"idle_rss_kib"`
	// RSSSamples are [unix seconds, VmRSS KiB] pairs taken during the load.
	RSSSamples [][2]float64 `json:"rss_samples"`
	// HWMKiB is the server's VmHWM when the load ended.
	HWMKiB    int64     `json:"hwm_kib"`
	Locked    *int      `json:"database_is_locked,omitempty"`
	StartupMS []float64 `json:"startup_ms,omitempty"`
}

// line is the part of a latchkey-bench JSON line the section shows.
type line struct {
	Scenario     string         `json:"scenario"`
	Label        string         `json:"label"`
	Run          int            `json:"run"`
	MedianOf     int            `json:"median_of"`
	Concurrency  int            `json:"concurrency"`
	DurationS    float64        `json:"duration_s"`
	WarmupS      float64        `json:"warmup_s"`
	Requests     int            `json:"requests"`
	Errors       int            `json:"errors"`
	ErrorsByKind map[string]int `json:"errors_by_kind"`
	RPS          float64        `json:"rps"`
	P50          float64        `json:"p50_ms"`
	P99          float64        `json:"p99_ms"`
	Start        string         `json:"started_at"`
	Error        string         `json:"error"`
}

// window is when the line's run put load on the server, warm-up included.
func (l line) window() (from, to float64, ok bool) {
	start, err := time.Parse(time.RFC3339Nano, l.Start)
	if err != nil || l.Run == 0 || l.MedianOf > 0 {
		return 0, 0, false
	}
	s := float64(start.UnixNano()) / 1e9
	return s - l.WarmupS, s + l.DurationS, true
}

// row is what the section knows about a scenario at a concurrency: the
// target Latchkey set itself and issue 7's reference figures of Ory
// Hydra v26.2.0, which were measured elsewhere.
type row struct {
	scenario    string
	concurrency int
	minRate     float64 // 0: no target
	maxP99      float64 // 0: no latency target
	reference   string
}

var rows = []row{
	{scenario: "client_credentials", concurrency: 64, minRate: 3000, maxP99: 50, reference: "214/s, p99 513 ms"},
	{scenario: "client_credentials", concurrency: 1, reference: "108/s, p50 9 ms"},
	{scenario: "client_credentials_jwt", concurrency: 64, minRate: 2500},
	{scenario: "client_credentials_jwt_rs256", concurrency: 64},
	{scenario: "introspection", concurrency: 64, minRate: 5000, reference: "1,327/s, p99 107 ms"},
	{scenario: "refresh", concurrency: 8, minRate: 1000, reference: "84/s, p99 199 ms"},
	{scenario: "authorization_code", concurrency: 8, minRate: 200, reference: "40 flows/s, p99 309 ms (login and consent)"},
	{scenario: "device", concurrency: 64},
}

// titles name the scenarios in the table, in latchkey-bench's order.
var titles = []struct{ scenario, title string }{
	{"client_credentials", "client_credentials, opaque token"},
	{"client_credentials_jwt", "client_credentials, JWT ES256"},
	{"client_credentials_jwt_rs256", "client_credentials, JWT RS256"},
	{"introspection", "introspection"},
	{"refresh", "refresh, with rotation"},
	{"authorization_code", "authorization code + PKCE, incl. login and consent"},
	{"device", "device grant polling"},
}

func titleOf(scenario string) (string, int) {
	for i, t := range titles {
		if t.scenario == scenario {
			return t.title, i
		}
	}
	return scenario, len(titles)
}

func rowOf(scenario string, concurrency int) row {
	for _, r := range rows {
		if r.scenario == scenario && r.concurrency == concurrency {
			return r
		}
	}
	return row{scenario: scenario, concurrency: concurrency}
}

// group is every line of one scenario at one concurrency on one backend.
type group struct {
	scenario    string
	concurrency int
	lines       []line
}

// shown is the group's line for the table: the median run, the only
// run, or the set-up failure.
func (g group) shown() (line, error) {
	var runs []line
	for _, l := range g.lines {
		switch {
		case l.MedianOf > 0:
			return l, nil
		case l.Error == "":
			runs = append(runs, l)
		}
	}
	switch len(runs) {
	case 0:
		return g.lines[len(g.lines)-1], nil
	case 1:
		return runs[0], nil
	}
	return line{}, fmt.Errorf("%s at %d on %s: %d runs and no median line (run latchkey-bench once with --runs instead)",
		g.scenario, g.concurrency, g.lines[0].Label, len(runs))
}

// render is the README section.
func render(f facts, lines []line) (string, error) {
	byLabel := map[string][]*group{}
	for _, l := range lines {
		if !slices.ContainsFunc(f.Backends, func(b backend) bool { return b.Label == l.Label }) {
			return "", fmt.Errorf("results labelled %q, a backend the facts do not list", l.Label)
		}
		gs := byLabel[l.Label]
		i := slices.IndexFunc(gs, func(g *group) bool { return g.scenario == l.Scenario && g.concurrency == l.Concurrency })
		if i < 0 {
			gs = append(gs, &group{scenario: l.Scenario, concurrency: l.Concurrency})
			i = len(gs) - 1
			byLabel[l.Label] = gs
		}
		gs[i].lines = append(gs[i].lines, l)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "## Performance\n\n")
	runs := "one run"
	if f.Runs > 1 {
		runs = fmt.Sprintf("%d runs", f.Runs)
	}
	fmt.Fprintf(&b, "Measured by `cmd/latchkey-bench/perf-table`: it builds `latchkey` as the image does (`CGO_ENABLED=0 -trimpath -ldflags '-s -w'`), starts `latchkey serve` "+
		"(default settings: JSON log of every request to a file; metrics listener off) on a fresh database of each backend "+
		"and runs every `latchkey-bench` scenario closed-loop, %s of %s after %s of warm-up each; the tables show the "+
		"median run by throughput. Rerun from the repository root with `%s`.\n\n", runs, f.Duration, f.Warmup, f.Command)
	m := f.Machine
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s GiB memory, %s, %s, PostgreSQL %s; Latchkey %s, measured %s. "+
		"The load generator (`latchkey-bench`) and PostgreSQL ran on the same host as the server and shared its CPUs.\n\n",
		m.CPU, m.CPUs, strconv.FormatFloat(float64(m.MemoryKiB)/(1<<20), 'f', 1, 64), m.Kernel, m.Go, m.PostgreSQL, m.Commit, m.Date)
	b.WriteString("The last column holds the figures issue 7 gives for Ory Hydra v26.2.0 on a similar machine, for comparison; " +
		"they were not measured here.\n")

	for _, be := range f.Backends {
		fmt.Fprintf(&b, "\n### %s\n\n", backendName(be.Label))
		gs := byLabel[be.Label]
		slices.SortStableFunc(gs, func(x, y *group) int {
			_, i := titleOf(x.scenario)
			_, j := titleOf(y.scenario)
			return cmp.Or(cmp.Compare(i, j), cmp.Compare(y.concurrency, x.concurrency))
		})
		if len(gs) == 0 {
			b.WriteString("No results: the load did not run.\n")
		} else if err := writeTable(&b, gs, f.RS256SignsPerSecond); err != nil {
			return "", err
		}
		cc64, _ := shownOf(gs, "client_credentials", 64)
		b.WriteString("\n")
		if be.Label == "postgres" && f.PGBench != nil {
			writeCeiling(&b, *f.PGBench, cc64)
		}
		writeMemory(&b, be, gs)
		if len(be.StartupMS) > 0 {
			ms := slices.Sorted(slices.Values(be.StartupMS))
			med := ms[(len(ms)-1)/2]
			var each []string
			for _, v := range be.StartupMS {
				each = append(each, num(v, 0))
			}
			fmt.Fprintf(&b, "\nStart-up: `latchkey serve` answered 200 on /health/ready %s ms after it was started on the existing data dir, "+
				"the median of %d restarts (%s ms); target ≤ 300 ms: %s.\n", num(med, 0), len(ms), strings.Join(each, ", "), verdict(med <= 300))
		}
		if be.Locked != nil {
			fmt.Fprintf(&b, "\n`database is locked` in the server's log during the load: %d times; target none: %s.\n", *be.Locked, verdict(*be.Locked == 0))
		}
	}
	return b.String(), nil
}

func backendName(label string) string {
	switch label {
	case "postgres":
		return "PostgreSQL"
	case "sqlite":
		return "SQLite"
	}
	return label
}

func shownOf(gs []*group, scenario string, concurrency int) (line, bool) {
	for _, g := range gs {
		if g.scenario == scenario && g.concurrency == concurrency {
			l, err := g.shown()
			return l, err == nil && l.Error == ""
		}
	}
	return line{}, false
}

// writeTable writes the backend's table. rs256 is the machine's RS256
// signatures per second (0 when not measured), the yardstick of the RS256
// target: at least 80 % of what the cores can sign.
func writeTable(b *strings.Builder, gs []*group, rs256 float64) error {
	b.WriteString("| scenario | concurrency | throughput | p50 ms | p99 ms | errors | target | Ory Hydra v26.2.0 (issue 7, not measured here) |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|---|---|\n")
	for _, g := range gs {
		l, err := g.shown()
		if err != nil {
			return err
		}
		title, _ := titleOf(g.scenario)
		r := rowOf(g.scenario, g.concurrency)
		unit := "req/s"
		if g.scenario == "authorization_code" {
			unit = "flows/s"
		}
		target := "-"
		if r.minRate > 0 {
			target = fmt.Sprintf("≥ %s %s", num(r.minRate, 0), unit)
			met := l.Error == "" && l.RPS >= r.minRate
			if r.maxP99 > 0 {
				target += fmt.Sprintf(", p99 ≤ %s ms", num(r.maxP99, 0))
				met = met && l.P99 <= r.maxP99
			}
			target += ": " + verdict(met)
		}
		if g.scenario == "client_credentials_jwt_rs256" && rs256 > 0 && l.Error == "" {
			share := 100 * l.RPS / rs256
			target = fmt.Sprintf("≥ 80 %% of the %s RS256 signatures/s the CPUs make: %s %%, %s", num(rs256, 0), num(share, 0), verdict(share >= 80))
		}
		ref := cmp.Or(r.reference, "-")
		if l.Error != "" {
			fmt.Fprintf(b, "| %s | %d | - | - | - | %s | %s | %s |\n", title, g.concurrency, cell("did not run: "+l.Error), target, ref)
			continue
		}
		errs := strconv.Itoa(l.Errors)
		if l.Errors > 0 {
			var kinds []string
			for _, k := range slices.Sorted(maps.Keys(l.ErrorsByKind)) {
				kinds = append(kinds, fmt.Sprintf("%s %d", k, l.ErrorsByKind[k]))
			}
			errs = cell(fmt.Sprintf("%s of %s (%s)", num(float64(l.Errors), 0), num(float64(l.Requests), 0), strings.Join(kinds, ", ")))
		}
		fmt.Fprintf(b, "| %s | %d | %s %s | %s | %s | %s | %s | %s |\n",
			title, g.concurrency, num(l.RPS, 0), unit, latency(l.P50), latency(l.P99), errs, target, ref)
	}
	return nil
}

func writeCeiling(b *strings.Builder, p pgbench, cc64 line) {
	fmt.Fprintf(b, "Ceiling: pgbench, one token-shaped INSERT per transaction into a copy of the token table with its indexes, "+
		"made %s tx/s at 64 clients (latency average %s ms) and %s tx/s at 1 client (%s ms) in the same run; "+
		"issue 7 gives about 6,500 and 1,800 on its machine.",
		num(p.TPS64, 0), latency(p.LatencyMS64), num(p.TPS1, 0), latency(p.LatencyMS1))
	if cc64.Scenario != "" && p.TPS64 > 0 {
		share := 100 * cc64.RPS / p.TPS64
		fmt.Fprintf(b, " client_credentials at 64 issued %s tokens/s, %s %% of the ceiling; target ≥ 50 %%: %s.",
			num(cc64.RPS, 0), num(share, 1), verdict(share >= 50))
	}
	b.WriteString("\n\n")
}

// writeMemory reports the server's resident memory: idle, during the
// client_credentials load at 64, and its peak over the whole run, which
// other scenarios (the login app's password hashing) may set.
func writeMemory(b *strings.Builder, be backend, gs []*group) {
	fmt.Fprintf(b, "Memory (VmRSS of `latchkey serve`): %s MiB idle, 2 s after it was ready; target ≤ 30 MiB: %s.",
		mib(float64(be.IdleRSSKiB)), verdict(be.IdleRSSKiB <= 30<<10))
	if len(be.RSSSamples) == 0 {
		b.WriteString("\n")
		return
	}
	ccPeak, ok := peakDuring(be.RSSSamples, gs, func(g *group) bool { return g.scenario == "client_credentials" && g.concurrency == 64 })
	if ok {
		fmt.Fprintf(b, " Peak under the client_credentials load at 64: %s MiB; target ≤ 64 MiB: %s.", mib(ccPeak), verdict(ccPeak <= 64<<10))
	}
	var peaks []string
	for _, g := range gs {
		if p, ok := peakDuring(be.RSSSamples, gs, func(o *group) bool { return o == g }); ok {
			title, _ := titleOf(g.scenario)
			peaks = append(peaks, fmt.Sprintf("%s at %d: %s", title, g.concurrency, mib(p)))
		}
	}
	if len(peaks) > 0 {
		fmt.Fprintf(b, " Peak during each scenario, in MiB: %s.", strings.Join(peaks, "; "))
	}
	fmt.Fprintf(b, " VmHWM at the end: %s MiB. Sampled every 0.5 s; the scenarios run in the order of the table, and memory "+
		"one takes (the login app's argon2id checks take 19 MiB each) goes back to the system gradually, so the next one may still show it.\n",
		mib(float64(be.HWMKiB)))
}

// peakDuring is the largest sample taken while a run of the groups that
// match was under way (warm-up included).
func peakDuring(samples [][2]float64, gs []*group, match func(*group) bool) (float64, bool) {
	peak, found := 0.0, false
	for _, g := range gs {
		if !match(g) {
			continue
		}
		for _, l := range g.lines {
			from, to, ok := l.window()
			if !ok {
				continue
			}
			for _, s := range samples {
				if from <= s[0] && s[0] <= to && s[1] >= peak {
					peak, found = s[1], true
				}
			}
		}
	}
	return peak, found
}

func verdict(met bool) string {
	if met {
		return "met"
	}
	return "not met"
}

// latency is milliseconds with as many decimals as small figures need.
func latency(ms float64) string {
	switch {
	case ms < 10:
		return num(ms, 2)
	case ms < 100:
		return num(ms, 1)
	}
	return num(ms, 0)
}

func mib(kib float64) string { return num(kib/1024, 1) }

// num formats v with places decimals and thousands separators.
func num(v float64, places int) string {
	s := strconv.FormatFloat(math.Abs(v), 'f', places, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var out []byte
	for i := range len(whole) {
		if i > 0 && (len(whole)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, whole[i])
	}
	s = string(out)
	if frac != "" {
		s += "." + frac
	}
	if v < 0 {
		s = "-" + s
	}
	return s
}

// cell makes text safe inside a markdown table cell.
func cell(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	return strings.ReplaceAll(s, "|", `\|`)
}
