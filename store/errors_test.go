package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/lib/pq"
)

// TestMapErrUnavailable: the errors of a database that is down, restarting
// or out of connections become ErrUnavailable (the provider answers 503),
// and errors of a database that answered do not.
func TestMapErrUnavailable(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("store access token: %w", refused), true},
		{"connection reset", fmt.Errorf("read: %w", syscall.ECONNRESET), true},
		{"bad connection", driver.ErrBadConn, true},
		{"deadline", fmt.Errorf("wait to write: %w", context.DeadlineExceeded), true},
		{"admin shutdown", &pq.Error{Code: "57P01", Message: "terminating connection due to administrator command"}, true},
		{"starting up", &pq.Error{Code: "57P03", Message: "the database system is starting up"}, true},
		{"connection failure", &pq.Error{Code: "08006"}, true},
		{"too many connections", &pq.Error{Code: "53300"}, true},
		{"sqlite busy", errors.New("database is locked (5) (SQLITE_BUSY)"), true},
		{"unique violation", &pq.Error{Code: "23505"}, false},
		{"syntax error", &pq.Error{Code: "42601"}, false},
		{"cancelled by the caller", context.Canceled, false},
		{"sqlite constraint", errors.New("constraint failed: UNIQUE constraint failed: clients.id (2067)"), false},
	}
	s := &Store{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.mapErr(tc.err)
			if got := errors.Is(err, ErrUnavailable); got != tc.want {
				t.Errorf("errors.Is(mapErr(%v), ErrUnavailable) = %v, want %v", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("mapErr(%v) lost the driver's error: %v", tc.err, err)
			}
		})
	}
}

// TestWriteLockDeadlineUnavailable: a write whose deadline passed while it
// waited behind another writer for SQLite's write lock is ErrUnavailable.
func TestWriteLockDeadlineUnavailable(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, "sqlite://"+t.TempDir()+"/latchkey.db", Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if _, err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Hold the write lock as a long transaction would.
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Rollback(txCtx) }()
	// It takes the lock with its first statement.
	if _, err := s.RecordFailure(txCtx, "ip:192.0.2.2", time.Minute, 5, time.Minute); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	_, err = s.RecordFailure(short, "ip:192.0.2.1", time.Minute, 5, time.Minute)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a write that timed out behind another: %v, want ErrUnavailable", err)
	}
}
