package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"StatementFirstUseWhilePoolBusy", testStatementFirstUseWhilePoolBusy},
)

// testStatementFirstUseWhilePoolBusy: a statement used for the first time
// outside a transaction waits for a pool connection while transactions hold
// them all; those transactions must still run their statements and end,
// or neither side ever goes on (a burst of one user's email code requests
// did this: each held the user's row or waited for it).
func testStatementFirstUseWhilePoolBusy(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{MaxOpenConns: 1})
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.PoolCollector())

	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A transaction takes its connection with its first statement.
	if _, err := s.GetClient(txCtx, "no-such-client"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("first statement in the transaction: got %v, want ErrNotFound", err)
	}
	// The deadline only ends the deadlock this test is about, so that it
	// fails instead of hanging; without the deadlock it is never reached.
	waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	outside := make(chan error, 1)
	go func() {
		_, err := s.CheckLock(waitCtx, "ip:192.0.2.1")
		outside <- err
	}()
	for poolWaits(t, reg) == 0 {
		time.Sleep(time.Millisecond)
	}
	// The transaction holds the only connection, and its statement is new.
	if _, err := s.RecordFailure(txCtx, "ip:192.0.2.2", time.Minute, 5, time.Minute); err != nil {
		t.Fatalf("statement in the transaction: %v", err)
	}
	if err := s.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	if err := <-outside; err != nil {
		t.Fatalf("statement waiting for the connection: %v", err)
	}
}

// poolWaits is how many times a statement waited for a free connection.
func poolWaits(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "go_sql_wait_count_total" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatal("no go_sql_wait_count_total")
	return 0
}
