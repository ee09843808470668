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
	*txn
	owner bool
}

// txn is a transaction, shared by the context that began it and every
// context that joined it.
//
// It starts in the database only with its first statement: the provider
// opens one around a whole authorization response, which signs ID tokens
// before it writes anything, and on SQLite a started transaction holds the
// write lock. The token rows it stores wait too (see deferTokenRow), so a
// transaction that only stores tokens runs one INSERT and its commit.
type txn struct {
	// ctx is BeginTX's: the transaction lives as long as it, as it would
	// had it started there.
	ctx context.Context
	tx  *sqlx.Tx
	// ended is set by the owner's Commit or Rollback: fosite rolls back
	// after a failed commit, and SQLite's write lock must be released
	// once.
	ended bool
	// args holds rows of tokenColumns stored but not yet sent, one after
	// the other (tokenColumnCount values a row). They go to the database as one multi-row INSERT just before the
	// transaction's next statement, or its commit: a code exchange or a
	// refresh stores two or three tokens, and each INSERT would otherwise
	// be a round trip of its own. Sending them before any other statement
	// keeps the transaction reading its own writes, and failures still
	// come before the commit.
	args []any
}

func txFrom(ctx context.Context) *txn {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.txn
	}
	return nil
}

// begun returns ctx's transaction, starting it in the database if this is
// its first statement; outside a transaction it returns nil.
func (s *Store) begun(ctx context.Context) (*sqlx.Tx, error) {
	t := txFrom(ctx)
	if t == nil {
		return nil, nil
	}
	if t.tx != nil {
		return t.tx, nil
	}
	if t.ended {
		return nil, errors.New("the transaction has ended")
	}
	if s.writeLock != nil {
		select {
		case s.writeLock <- struct{}{}:
		case <-t.ctx.Done():
			return nil, fmt.Errorf("begin transaction: %w", s.mapErr(t.ctx.Err()))
		}
	}
	tx, err := s.db.BeginTxx(t.ctx, nil)
	if err != nil {
		s.unlockWrites()
		return nil, fmt.Errorf("begin transaction: %w", s.mapErr(err))
	}
	t.tx = tx
	return tx, nil
}

// deferTokenRow adds a row of tokenColumns to ctx's transaction. It
// reports false outside a transaction.
func deferTokenRow(ctx context.Context, args []any) bool {
	t := txFrom(ctx)
	if t == nil {
		return false
	}
	t.args = append(t.args, args...)
	return true
}

// sendTokenRows writes the rows ctx's transaction has deferred; stmt calls
// it before each of the transaction's statements, and Commit before the
// commit.
func (s *Store) sendTokenRows(ctx context.Context) error {
	t := txFrom(ctx)
	if t == nil || len(t.args) == 0 {
		return nil
	}
	args, n := t.args, len(t.args)/tokenColumnCount
	t.args = nil
	if _, err := s.exec(ctx, s.tokens.query(n), args...); err != nil {
		return fmt.Errorf("store %d token rows: %w", n, err)
	}
	return nil
}

// BeginTX returns a context carrying a new transaction; see txn for when
// it starts in the database. Inside an existing transaction it returns a
// context that joins it.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if t := txFrom(ctx); t != nil {
		return context.WithValue(ctx, txKey{}, &txState{txn: t}), nil
	}
	return context.WithValue(ctx, txKey{}, &txState{txn: &txn{ctx: ctx}, owner: true}), nil
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
	if err := s.sendTokenRows(ctx); err != nil {
		_ = s.Rollback(ctx)
		return fmt.Errorf("commit: %w", err)
	}
	st.end()
	if st.tx == nil {
		return nil // it never ran a statement
	}
	defer s.unlockWrites()
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
	st.end()
	if st.tx == nil {
		return nil // it never ran a statement
	}
	defer s.unlockWrites()
	if err := st.tx.Rollback(); err != nil && !errors.Is(err, sql.ErrTxDone) {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// end marks t ended and drops the rows it had not sent.
func (t *txn) end() {
	t.ended = true
	t.args = nil
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
