package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// result is one JSON line: one scenario's run, the median of its runs, or
// a scenario that could not run (Error set, no figures).
type result struct {
	Scenario string `json:"scenario"`
	// Label is --label, which names the set-up under load.
	Label string `json:"label,omitempty"`
	Run   int    `json:"run,omitempty"`
	// MedianOf is set on the extra line that repeats the median run (by
	// rps) of a scenario run more than once.
	MedianOf      int               `json:"median_of,omitempty"`
	Concurrency   int               `json:"concurrency"`
	DurationS     float64           `json:"duration_s"`
	WarmupS       float64           `json:"warmup_s"`
	Requests      int               `json:"requests"`
	Errors        int               `json:"errors"`
	ErrorsByKind  map[string]int    `json:"errors_by_kind"`
	ErrorExamples map[string]string `json:"error_examples,omitempty"`
	// Answers counts expected answers that are not plain successes
	// (device polling: authorization_pending, slow_down).
	Answers map[string]int `json:"answers,omitempty"`
	// RPS is successful requests per second of the measured window.
	RPS   float64 `json:"rps"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	Max   float64 `json:"max_ms"`
	Mean  float64 `json:"mean_ms"`
	Start string  `json:"started_at,omitempty"`

	Issuer string `json:"issuer"`
	// KeepAlive and IdlePerHost describe the one shared transport.
	KeepAlive   bool   `json:"keep_alive"`
	IdlePerHost int    `json:"max_idle_conns_per_host"`
	Note        string `json:"note,omitempty"`
	Error       string `json:"error,omitempty"`
}

// summarise turns a window's tally into a result's figures.
func summarise(r *result, t tally, duration time.Duration, started time.Time) {
	r.DurationS = duration.Seconds()
	r.Start = started.UTC().Format(time.RFC3339Nano)
	r.ErrorsByKind = map[string]int{}
	for k, n := range t.errors {
		r.ErrorsByKind[k] = n
		r.Errors += n
	}
	if len(t.examples) > 0 {
		r.ErrorExamples = maps.Clone(t.examples)
	}
	if len(t.answers) > 0 {
		r.Answers = maps.Clone(t.answers)
	}
	r.Requests = len(t.latencies) + r.Errors
	if duration > 0 {
		r.RPS = round(float64(len(t.latencies))/duration.Seconds(), 1)
	}
	l := slices.Clone(t.latencies)
	slices.Sort(l)
	r.P50, r.P90, r.P99 = ms(percentile(l, 50)), ms(percentile(l, 90)), ms(percentile(l, 99))
	if len(l) > 0 {
		r.Max = ms(l[len(l)-1])
		var sum time.Duration
		for _, d := range l {
			sum += d
		}
		r.Mean = ms(sum / time.Duration(len(l)))
	}
}

// percentile is the nearest-rank percentile p (0 < p ≤ 100) of sorted
// samples: the smallest sample that at least p% of the samples do not
// exceed. It is 0 without samples.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// ms is d in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return round(float64(d)/float64(time.Millisecond), 3) }

func round(v float64, places int) float64 {
	f := math.Pow(10, float64(places))
	return math.Round(v*f) / f
}

// median returns a copy of the run with the median rps (the lower of the
// two middle runs for an even count), marked as the median of all.
func median(runs []result) result {
	sorted := slices.Clone(runs)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].RPS < sorted[j].RPS })
	m := sorted[(len(sorted)-1)/2]
	m.MedianOf = len(runs)
	return m
}

// writeSummary prints the human table: one row per run (and median), then
// the errors and notes.
func writeSummary(w io.Writer, results []result, idlePerHost int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\trun\tconc\treq/s\tp50 ms\tp90 ms\tp99 ms\tmax ms\trequests\terrors\t")
	for _, r := range results {
		name := r.Scenario
		run := fmt.Sprint(r.Run)
		if r.MedianOf > 0 {
			run = fmt.Sprintf("median of %d", r.MedianOf)
		}
		if r.Error != "" {
			fmt.Fprintf(tw, "%s\t-\t%d\t-\t-\t-\t-\t-\t-\tfailed\t\n", name, r.Concurrency)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%d\t\n",
			name, run, r.Concurrency, r.RPS, r.P50, r.P90, r.P99, r.Max, r.Requests, r.Errors)
	}
	tw.Flush()
	notes := map[string]bool{}
	for _, r := range results {
		if r.Note != "" && !notes[r.Scenario] {
			notes[r.Scenario] = true
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, r.Note)
		}
		switch {
		case r.Error != "":
			fmt.Fprintf(w, "%s: %s\n", r.Scenario, r.Error)
		case r.MedianOf > 0:
		default:
			if r.Errors > 0 {
				fmt.Fprintf(w, "%s run %d errors: %s\n", r.Scenario, r.Run, formatCounts(r.ErrorsByKind))
				for _, k := range slices.Sorted(maps.Keys(r.ErrorExamples)) {
					fmt.Fprintf(w, "  e.g. %s\n", r.ErrorExamples[k])
				}
			}
			if len(r.Answers) > 0 {
				fmt.Fprintf(w, "%s run %d answers: %s\n", r.Scenario, r.Run, formatCounts(r.Answers))
			}
		}
	}
	fmt.Fprintf(w, "req/s counts successful requests; latencies are of successful requests. "+
		"Connections: one shared keep-alive transport, up to %d idle connections per host.\n", idlePerHost)
}

func formatCounts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
