package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestPercentileNearestRank(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var out []time.Duration
		for _, v := range n {
			out = append(out, time.Duration(v)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	for _, tc := range []struct {
		name    string
		samples []time.Duration
		p       float64
		want    time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even is the lower middle", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p90 of 1..100", ms(hundred...), 90, 90 * time.Millisecond},
		{"p99 of 1..100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 is the max", ms(hundred...), 100, 100 * time.Millisecond},
		{"p99 of ten is the max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
		{"tiny p is the min", ms(1, 2, 3), 0.1, time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := percentile(tc.samples, tc.p); got != tc.want {
				t.Errorf("percentile(%v, %v) = %v, want %v", tc.samples, tc.p, got, tc.want)
			}
		})
	}
}

func TestSummarise(t *testing.T) {
	var tl tally
	// Out of order on purpose: summarise sorts.
	for _, d := range []int{40, 10, 30, 20, 100, 50, 60, 70, 80, 90} {
		tl.succeed(time.Duration(d)*time.Millisecond, "")
	}
	tl.succeed(5*time.Millisecond, "slow_down")
	tl.fail(&failure{kind: "oauth:invalid_grant", detail: "status 400: the code was used"})
	tl.fail(&failure{kind: "oauth:invalid_grant", detail: "status 400: again"})
	tl.fail(errors.New("dial tcp: connection refused"))
	started := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

	var r result
	summarise(&r, tl, 2*time.Second, started)
	if r.Requests != 14 || r.Errors != 3 {
		t.Errorf("requests %d, errors %d; want 14 and 3", r.Requests, r.Errors)
	}
	if r.ErrorsByKind["oauth:invalid_grant"] != 2 || r.ErrorsByKind["transport"] != 1 {
		t.Errorf("errors by kind %v", r.ErrorsByKind)
	}
	if r.ErrorExamples["oauth:invalid_grant"] != "oauth:invalid_grant: status 400: the code was used" {
		t.Errorf("example %q, want the first error of the kind", r.ErrorExamples["oauth:invalid_grant"])
	}
	if r.Answers["slow_down"] != 1 {
		t.Errorf("answers %v", r.Answers)
	}
	if r.RPS != 5.5 {
		t.Errorf("rps %v, want 11 successes / 2 s = 5.5", r.RPS)
	}
	// Sorted: 5 10 20 … 100 (11 samples).
	if r.P50 != 50 || r.P90 != 90 || r.P99 != 100 || r.Max != 100 {
		t.Errorf("p50 %v p90 %v p99 %v max %v, want 50 90 100 100", r.P50, r.P90, r.P99, r.Max)
	}
	if r.Mean != 50.455 {
		t.Errorf("mean %v, want 555/11 ms", r.Mean)
	}
	if r.DurationS != 2 || r.Start != "2025-01-02T03:04:05Z" {
		t.Errorf("duration %v, started_at %q", r.DurationS, r.Start)
	}
}

func TestSummariseWithoutSamples(t *testing.T) {
	var r result
	summarise(&r, tally{}, time.Second, time.Now())
	if r.Requests != 0 || r.RPS != 0 || r.P50 != 0 || r.Max != 0 || r.ErrorsByKind == nil {
		t.Errorf("empty tally gave %+v; want zero figures and an empty errors_by_kind", r)
	}
}

func TestMedianRun(t *testing.T) {
	runs := []result{{Run: 1, RPS: 300}, {Run: 2, RPS: 100}, {Run: 3, RPS: 200}}
	m := median(runs)
	if m.Run != 3 || m.MedianOf != 3 {
		t.Errorf("median of 300, 100, 200 is run %d (of %d), want run 3 of 3", m.Run, m.MedianOf)
	}
	if runs[2].MedianOf != 0 {
		t.Error("median changed the run it copied")
	}
	if m := median(runs[:2]); m.Run != 2 {
		t.Errorf("median of two runs is run %d, want the slower (run 2)", m.Run)
	}
}

func TestSummaryTable(t *testing.T) {
	var buf bytes.Buffer
	writeSummary(&buf, []result{
		{Scenario: "client_credentials", Run: 1, Concurrency: 64, RPS: 1234.5, P50: 1, P90: 2, P99: 3, Max: 4, Requests: 2469,
			ErrorsByKind: map[string]int{}},
		{Scenario: "device", Run: 1, Concurrency: 64, RPS: 10, Requests: 12, Errors: 2,
			ErrorsByKind: map[string]int{"transport": 2}, ErrorExamples: map[string]string{"transport": "transport: refused"},
			Answers: map[string]int{"slow_down": 9, "authorization_pending": 1}, Note: "polling path"},
		{Scenario: "client_credentials_jwt", Concurrency: 64, Error: "set-up: no JWT"},
	}, 64)
	out := buf.String()
	for _, want := range []string{
		"client_credentials", "1234.5", "2469",
		"device run 1 errors: transport 2", "e.g. transport: refused",
		"device run 1 answers: authorization_pending 1, slow_down 9", "device: polling path",
		"client_credentials_jwt: set-up: no JWT", "failed",
		"up to 64 idle connections per host",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestCheckJWT(t *testing.T) {
	for _, tc := range []struct {
		tok, alg string
		ok       bool
	}{
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "", true},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "RS256", true},
		{"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", "ES256", false}, // another algorithm
		{"ory_at_abc.def", "", false},                                 // an opaque HMAC token has one dot
		{"a.b.c", "", false},
		{"eyJ0eXAiOiJKV1QifQ.e30.c2ln", "", false}, // no alg
	} {
		if err := checkJWT(tc.tok, tc.alg); (err == nil) != tc.ok {
			t.Errorf("checkJWT(%q, %q) = %v, want ok %v", tc.tok, tc.alg, err, tc.ok)
		}
	}
}

func TestKindOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{answerFailure(400, []byte(`{"error":"invalid_grant","error_description":"x"}`)), "oauth:invalid_grant"},
		{answerFailure(502, []byte(`<html>bad gateway</html>`)), "http_502"},
		{transportFailure(errors.New("connection reset")), "transport"},
		{errors.New("wrapped: " + "anything"), "transport"},
		{&failure{kind: "not_jwt"}, "not_jwt"},
	} {
		if got := kindOf(tc.err); got != tc.want {
			t.Errorf("kindOf(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}
