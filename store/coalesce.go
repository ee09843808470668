package store

import (
	"context"
	"strings"
	"sync"
	"time"
)

// tokenColumns are the columns every token INSERT writes.
const tokenColumns = `kind, signature, request_id, client_id, subject, active, access_signature, requested_at, expires_at, data`

// tokenColumnCount is how many values one row of tokenColumns takes.
const tokenColumnCount = 10

// insertFlushTimeout bounds one multi-row INSERT. The requests in it wait
// for it whatever their own cancellations say, so that a row is either
// stored and its token issued, or neither; but it ends sooner when every
// request in it has a deadline before that (flushDeadline).
const insertFlushTimeout = 10 * time.Second

// tokenInserts coalesces the token INSERTs made outside a transaction
// (client_credentials tokens, PAR requests) into multi-row INSERTs: a
// request that arrives while as many INSERTs as allowed are in flight
// queues, and the next free flush writes everything queued in one
// statement and one commit. Under load that trades one round trip and one
// commit per token for one per batch; a request alone is written at once,
// as before. No goroutine runs in the background: the requests themselves
// take turns writing (whoever finishes a flush hands the next batch to
// the first request in it).
type tokenInserts struct {
	s *Store
	// maxFlushes is how many INSERTs may be in flight at once: one on
	// SQLite, whose writes are serial anyway, a few on PostgreSQL so that
	// one batch fills while another commits.
	maxFlushes int
	// maxBatch bounds the rows of one INSERT.
	maxBatch int

	mu       sync.Mutex
	queue    []*pendingInsert
	flushing int
	queries  map[int]string // multi-row INSERT by row count
}

// pendingInsert is one request's row, waiting to be written.
type pendingInsert struct {
	args []any
	// deadline is the request's own; zero when it has none.
	deadline time.Time
	// result receives the row's outcome; lead hands the request a batch
	// (which starts with its own row) to write. Both have room for one
	// value, so the sender never waits.
	result chan error
	lead   chan []*pendingInsert
}

func newTokenInserts(s *Store, maxFlushes, maxBatch int) *tokenInserts {
	return &tokenInserts{s: s, maxFlushes: maxFlushes, maxBatch: maxBatch, queries: map[int]string{}}
}

// insert writes one row of tokenColumns and returns when it is committed
// (or failed).
func (t *tokenInserts) insert(ctx context.Context, args ...any) error {
	p := &pendingInsert{args: args, result: make(chan error, 1), lead: make(chan []*pendingInsert, 1)}
	p.deadline, _ = ctx.Deadline()
	t.mu.Lock()
	t.queue = append(t.queue, p)
	var batch []*pendingInsert
	if t.flushing < t.maxFlushes {
		t.flushing++
		batch = t.takeLocked()
	}
	t.mu.Unlock()
	for {
		if batch != nil {
			t.flush(ctx, batch)
		}
		select {
		case err := <-p.result:
			return err
		case batch = <-p.lead:
		}
	}
}

// takeLocked removes the next batch from the queue.
func (t *tokenInserts) takeLocked() []*pendingInsert {
	n := min(len(t.queue), t.maxBatch)
	batch := make([]*pendingInsert, n)
	copy(batch, t.queue)
	t.queue = append(t.queue[:0], t.queue[n:]...)
	return batch
}

// flush writes batch, tells each of its requests the outcome, and hands
// the next batch on, or frees its turn when nothing is queued.
func (t *tokenInserts) flush(ctx context.Context, batch []*pendingInsert) {
	ctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), flushDeadline(batch, time.Now()))
	errs := t.write(ctx, batch)
	cancel()
	for i, p := range batch {
		p.result <- errs[i]
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.queue) == 0 {
		t.flushing--
		return
	}
	next := t.takeLocked()
	next[0].lead <- next
}

// flushDeadline is when a batch's write gives up: insertFlushTimeout from
// now, or sooner when every request in it has a deadline before that — the
// write serves nobody once all of them have given up.
func flushDeadline(batch []*pendingInsert, now time.Time) time.Time {
	var latest time.Time
	for _, p := range batch {
		if p.deadline.IsZero() {
			return now.Add(insertFlushTimeout)
		}
		if p.deadline.After(latest) {
			latest = p.deadline
		}
	}
	return minTime(latest, now.Add(insertFlushTimeout))
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// write inserts the batch's rows in one statement. If that fails, each row
// is tried alone, so that only a bad row fails (a duplicate signature, say)
// and each gets its own error.
func (t *tokenInserts) write(ctx context.Context, batch []*pendingInsert) []error {
	errs := make([]error, len(batch))
	if len(batch) > 1 {
		args := make([]any, 0, len(batch)*tokenColumnCount)
		for _, p := range batch {
			args = append(args, p.args...)
		}
		if _, err := t.s.exec(ctx, t.query(len(batch)), args...); err == nil {
			return errs
		}
	}
	for i, p := range batch {
		_, errs[i] = t.s.exec(ctx, t.query(1), p.args...)
	}
	return errs
}

// query is the INSERT of n rows, made once per n.
func (t *tokenInserts) query(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if q, ok := t.queries[n]; ok {
		return q
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", tokenColumnCount), ", ") + ")"
	q := `INSERT INTO oauth2_tokens (` + tokenColumns + `) VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	t.queries[n] = q
	return q
}
