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
}

func txFrom(ctx context.Context) *sqlx.Tx {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return st.tx
	}
	return nil
}

// BeginTX starts a transaction and returns a context carrying it. Inside an
// existing transaction it returns a context that joins it.
func (s *Store) BeginTX(ctx context.Context) (context.Context, error) {
	if st, ok := ctx.Value(txKey{}).(*txState); ok {
		return context.WithValue(ctx, txKey{}, &txState{tx: st.tx}), nil
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
	return context.WithValue(ctx, txKey{}, &txState{tx: tx, owner: true}), nil
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
	if !st.owner {
		return nil
	}
	defer s.unlockWrites()
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
