package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
	"github.com/ory/fosite/storage"
)

var _ storage.Transactional = (*Store)(nil)

type txKey struct{}

// txState is what a context carries inside a transaction. Only the context
// that began the transaction may commit or roll it back; nested BeginTX calls
// (fosite opens its own inside the provider's) are no-ops.
type txState struct {
	tx    *sqlx.Tx
	owner bool
	// ended is set by the owner's Commit or Rollback: fosite rolls back
	// after a failed commit, and SQLite's write lock must be released
	// once.
	ended bool
	// rows is shared by the transaction's owner and every context that
	// joined it.
	rows *txRows
}

// txRows holds the token rows a transaction has stored but not yet sent.
// They go to the database as one multi-row INSERT just before the
// transaction's next statement, or its commit: a code exchange or a
// refresh stores two or three tokens, and each INSERT would otherwise be a
// round trip of its own. Sending them before any other statement keeps
// the transaction reading its own writes, and failures still come before
// the commit.
type txRows struct {
	args []any
	n    int
}

func txFrom(ctx context.Context) *sqlx.Tx {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.tx
	}
	return nil
}

// deferTokenRow adds a row of tokenColumns to ctx's transaction. It
// reports false outside a transaction.
func deferTokenRow(ctx context.Context, args []any) bool {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok {
		return false
	}
	st.rows.args = append(st.rows.args, args...)
	st.rows.n++
	return true
}

// sendTokenRows writes the rows ctx's transaction has deferred. Every
// statement in a transaction calls it first.
func (s *Store) sendTokenRows(ctx context.Context) error {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok || st.rows.n == 0 {
		return nil
	}
	args, n := st.rows.args, st.rows.n
	st.rows.args, st.rows.n = nil, 0
	if _, err := s.exec(ctx, s.tokens.query(n), args...); err != nil {
		return fmt.Errorf("store %d token rows: %w", n, err)
	}
	return nil
}

// BeginTX starts a transaction and returns a context carrying it. Inside an
// existing transaction it returns a context that joins it.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return context.WithValue(ctx, txKey{}, &txState{tx: st.tx, rows: st.rows}), nil
	}
	if s.writeLock != nil {
		select {
		case s.writeLock <- struct{}{}:
		case <-ctx.Done():
			return ctx, fmt.Errorf("begin transaction: %w", s.mapErr(ctx.Err()))
		}
	}
	tx, err := s.db.BeginTxx(ctx, nil)
	if err != nil {
		s.unlockWrites()
		return ctx, fmt.Errorf("begin transaction: %w", s.mapErr(err))
	}
	return context.WithValue(ctx, txKey{}, &txState{tx: tx, owner: true, rows: &txRows{}}), nil
}

// Commit commits the transaction ctx began; for a joined one it does nothing.
func (s *Store) Commit(ctx context.Context) error {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok {
		return errors.New("commit: no transaction in context")
	}
	if !st.owner {
		return nil
	}
	if st.ended {
		return errors.New("commit: the transaction has ended")
	}
	st.ended = true
	defer s.unlockWrites()
	if err := s.sendTokenRows(ctx); err != nil {
		_ = st.tx.Rollback()
		return fmt.Errorf("commit: %w", err)
	}
	if err := st.tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", s.mapErr(err))
	}
	return nil
}

// Rollback rolls back the transaction ctx began; for a joined one it does
// nothing, leaving the decision to the owner.
func (s *Store) Rollback(ctx context.Context) error {
	st, ok := ctx.Value(txKey{}).(*txState)
	if !ok {
		return errors.New("rollback: no transaction in context")
	}
	if !st.owner || st.ended {
		return nil
	}
	st.ended = true
	defer s.unlockWrites()
	st.rows.args, st.rows.n = nil, 0
	if err := st.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

func (s *Store) unlockWrites() {
	if s.writeLock != nil {
		<-s.writeLock
	}
}

// InTx runs fn in a transaction (joining one already in ctx) and commits when
// fn returns nil.
func (s *Store) InTx(ctx context.Context, fn func(ctx context.Context) error) (err error) {
	ctx, err = s.BeginTX(ctx)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = s.Rollback(ctx)
		}
	}()
	if err = fn(ctx); err != nil {
		return err
	}
	return s.Commit(ctx)
}
