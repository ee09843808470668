package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"

	"github.com/latchkey-oidc/latchkey/store"
)

// What a transaction sends to the database, and when. TransactionRollback
// (oauth2.go) covers joining and rolling back.
var _ = register(
	test{"TransactionTokenRowsInOneStatement", testTransactionTokenRows},
	test{"TransactionTokenRowFailsBeforeCommit", testTransactionTokenRowFails},
	test{"TransactionStartsWithItsFirstStatement", testTransactionStartsLate},
)

// testTransactionTokenRows: the tokens a transaction stores go to the
// database as one INSERT, before the transaction's next statement or its
// commit, so the transaction reads its own writes and a rollback leaves
// nothing.
func testTransactionTokenRows(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	req := request(c, randomID("req"), nil)
	access, refresh, pkce := randomID("access"), randomID("refresh"), randomID("pkce")
	if _, err := s.GetClient(ctx, c.ID); err != nil { // reading a token reads its client, from the cache from now on
		t.Fatal(err)
	}

	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := s.Statements()
	if err := s.CreateAccessTokenSession(txCtx, access, req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(txCtx, refresh, access, req); err != nil {
		t.Fatal(err)
	}
	if got := s.Statements() - before; got != 0 {
		t.Fatalf("storing two tokens in a transaction sent %d statements before its next one, want 0", got)
	}
	got, err := s.GetRefreshTokenSession(txCtx, refresh, openid.NewDefaultSession())
	if err != nil {
		t.Fatalf("the transaction does not read its own refresh token: %v", err)
	}
	checkRequest(t, got, req)
	if got := s.Statements() - before; got != 2 {
		t.Fatalf("two tokens and a read cost %d statements, want 2 (one INSERT, one SELECT)", got)
	}
	if err := s.CreatePKCERequestSession(txCtx, pkce, req); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	if got := s.Statements() - before; got != 3 {
		t.Fatalf("the token stored last cost %d statements in all, want 3 (its INSERT went with the commit)", got)
	}
	for name, get := range map[string]func() error{
		"access token":  func() error { _, err := s.GetAccessTokenSession(ctx, access, nil); return err },
		"refresh token": func() error { _, err := s.GetRefreshTokenSession(ctx, refresh, nil); return err },
		"PKCE request":  func() error { _, err := s.GetPKCERequestSession(ctx, pkce, nil); return err },
	} {
		if err := get(); err != nil {
			t.Errorf("%s after the commit: %v", name, err)
		}
	}

	// Rolled back before anything was sent: nothing is stored, and the
	// store's next transaction does not send the discarded row.
	txCtx, err = s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	discarded := randomID("access")
	if err := s.CreateAccessTokenSession(txCtx, discarded, req); err != nil {
		t.Fatal(err)
	}
	if err := s.Rollback(txCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAccessTokenSession(ctx, discarded, nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("a token of a rolled-back transaction: got %v, want ErrNotFound", err)
	}
}

// testTransactionTokenRowFails: a deferred row that cannot be stored fails
// the commit, and the transaction's other writes are not stored either.
func testTransactionTokenRowFails(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	taken := randomID("access")
	if err := s.CreateAccessTokenSession(ctx, taken, request(c, randomID("req"), nil)); err != nil {
		t.Fatal(err)
	}
	req := request(c, randomID("req"), nil)
	refresh := randomID("refresh")
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshTokenSession(txCtx, refresh, taken, req); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateAccessTokenSession(txCtx, taken, req); err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(txCtx); err == nil {
		t.Fatal("a transaction storing a token under a taken signature committed")
	}
	// fosite rolls back after a failed commit; the transaction has ended,
	// so that must neither fail nor release SQLite's write lock again.
	rolledBack := make(chan error, 1)
	go func() { rolledBack <- s.Rollback(txCtx) }()
	select {
	case err := <-rolledBack:
		if err != nil {
			t.Fatalf("rollback after the failed commit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("rollback after the failed commit did not return")
	}
	if _, err := s.GetRefreshTokenSession(ctx, refresh, nil); !errors.Is(err, fosite.ErrNotFound) {
		t.Fatalf("the refresh token of the failed transaction: got %v, want ErrNotFound", err)
	}
	// The store goes on: the next transaction commits.
	if err := s.InTx(ctx, func(ctx context.Context) error {
		return s.CreateRefreshTokenSession(ctx, refresh, "", req)
	}); err != nil {
		t.Fatalf("the next transaction: %v", err)
	}
}

// testTransactionStartsLate: until a transaction sends its first statement
// it holds nothing, so others write meanwhile. The provider opens one
// around an authorization response, which signs its ID tokens before the
// response's rows are written; on SQLite a started transaction holds the
// write lock.
func testTransactionStartsLate(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	c := newClient(t, s)
	txCtx, err := s.BeginTX(ctx)
	if err != nil {
		t.Fatal(err)
	}
	code := randomID("code")
	if err := s.CreateAuthorizeCodeSession(txCtx, code, request(c, randomID("req"), nil)); err != nil {
		t.Fatal(err)
	}
	// A write waiting for the lock ends with ErrUnavailable at its
	// deadline; no wait at all is needed.
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := s.RecordFailure(short, "ip:192.0.2.1", time.Minute, 5, time.Minute); err != nil {
		t.Fatalf("a write beside a transaction that has sent nothing: %v", err)
	}
	if err := s.Commit(txCtx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAuthorizeCodeSession(ctx, code, nil); err != nil {
		t.Fatalf("the code stored by the transaction: %v", err)
	}
}
