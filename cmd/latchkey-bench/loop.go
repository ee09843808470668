package main

import (
	"context"
	"sync"
	"time"
)

// worker is one closed-loop client: it makes one request (or one flow),
// waits for the answer, and is asked for the next. A worker is used by
// one goroutine at a time and keeps its own state (a refresh token, a
// device code).
type worker interface {
	// do makes one recorded request. answer names an expected answer
	// that is not a plain success (a device poll's authorization_pending),
	// for the answers count; err is a failed request.
	do(ctx context.Context) (answer string, err error)
}

// preparer is a worker that needs state before a request (a new refresh
// token after a failed refresh, a new device code after one expired). The
// time prepare takes is not recorded; its failures are.
type preparer interface {
	prepare(ctx context.Context) error
}

// preparedWorker is a worker that prepares its state before its first
// request.
type preparedWorker interface {
	worker
	preparer
}

// prepareAll makes n workers with newWorker and prepares each before the
// load, so that set-up failures stop the scenario before it starts.
func prepareAll[W preparedWorker](ctx context.Context, n int, newWorker func() W) ([]worker, error) {
	ws := make([]worker, n)
	for i := range ws {
		w := newWorker()
		if err := w.prepare(ctx); err != nil {
			return nil, err
		}
		ws[i] = w
	}
	return ws, nil
}

// prepareBackoff spaces out attempts of a worker whose prepare fails, so
// that a broken set-up does not spin.
const prepareBackoff = 100 * time.Millisecond

// tally is what one worker recorded in the measured window.
type tally struct {
	latencies []time.Duration // of successful requests
	errors    map[string]int
	examples  map[string]string
	answers   map[string]int
}

func (t *tally) fail(err error) {
	if t.errors == nil {
		t.errors, t.examples = map[string]int{}, map[string]string{}
	}
	k := kindOf(err)
	t.errors[k]++
	if _, ok := t.examples[k]; !ok {
		t.examples[k] = err.Error()
	}
}

func (t *tally) succeed(d time.Duration, answer string) {
	t.latencies = append(t.latencies, d)
	if answer != "" {
		if t.answers == nil {
			t.answers = map[string]int{}
		}
		t.answers[answer]++
	}
}

// add merges o into t.
func (t *tally) add(o tally) {
	t.latencies = append(t.latencies, o.latencies...)
	for k, n := range o.errors {
		if t.errors == nil {
			t.errors, t.examples = map[string]int{}, map[string]string{}
		}
		t.errors[k] += n
		if _, ok := t.examples[k]; !ok {
			t.examples[k] = o.examples[k]
		}
	}
	for k, n := range o.answers {
		if t.answers == nil {
			t.answers = map[string]int{}
		}
		t.answers[k] += n
	}
}

// measure runs the workers in a closed loop: warm-up first, whose requests
// are made and not recorded, then the measured window of the given
// duration. A request is recorded when it starts and ends inside the
// window; a request still running when the window closes is awaited and
// not recorded, so the window's length is exactly duration. It returns the
// merged tally and when the window started.
func measure(ctx context.Context, workers []worker, warmup, duration time.Duration) (tally, time.Time) {
	start := time.Now().Add(warmup)
	end := start.Add(duration)
	per := make([]tally, len(workers))
	var wg sync.WaitGroup
	for i, w := range workers {
		wg.Go(func() { per[i] = loop(ctx, w, start, end) })
	}
	wg.Wait()
	var all tally
	for _, t := range per {
		all.add(t)
	}
	return all, start
}

// loop is one worker's closed loop until end.
func loop(ctx context.Context, w worker, start, end time.Time) tally {
	var t tally
	p, _ := w.(preparer)
	for ctx.Err() == nil {
		if p != nil {
			if err := p.prepare(ctx); err != nil {
				now := time.Now()
				if !now.Before(end) {
					break
				}
				if !now.Before(start) && ctx.Err() == nil {
					t.fail(err)
				}
				sleep(ctx, prepareBackoff)
				continue
			}
		}
		began := time.Now()
		if !began.Before(end) {
			break
		}
		answer, err := w.do(ctx)
		done := time.Now()
		if began.Before(start) || !done.Before(end) || ctx.Err() != nil {
			continue
		}
		if err != nil {
			t.fail(err)
		} else {
			t.succeed(done.Sub(began), answer)
		}
	}
	return t
}

func sleep(ctx context.Context, d time.Duration) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}
