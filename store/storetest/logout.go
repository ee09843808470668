package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

var _ = register(
	test{"LoginSessionEnd", testLoginSessionEnd},
	test{"BackchannelLogoutQueue", testBackchannelLogoutQueue},
	test{"BackchannelLogoutLeaseLapses", testBackchannelLogoutLeaseLapses},
	test{"BackchannelLogoutQueuedWithSessionEnd", testBackchannelLogoutQueuedWithSessionEnd},
)

var _ = registerShared(
	sharedTest{"BackchannelLogoutClaimAcrossReplicas", testBackchannelLogoutClaimAcrossReplicas},
)

// testLoginSessionEnd checks that ending sessions hands back the clients
// that took part in them, the last moment that list exists.
func testLoginSessionEnd(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	a := exampleLoginSession("alice", time.Now().Add(time.Hour))
	b := exampleLoginSession("alice", time.Now().Add(time.Hour))
	c := exampleLoginSession("bob", time.Now().Add(time.Hour))
	for _, ls := range []*store.LoginSession{a, b, c} {
		createLoginSession(t, s, ls)
	}
	for _, add := range []struct{ sid, client string }{
		{a.SID, "zeta"}, {a.SID, "alpha"}, {b.SID, "beta"}, {c.SID, "gamma"},
	} {
		if err := s.AddSessionClient(ctx, add.sid, add.client); err != nil {
			t.Fatalf("add session client: %v", err)
		}
	}

	ended, err := s.EndLoginSession(ctx, a.ID)
	if err != nil {
		t.Fatalf("end: %v", err)
	}
	if ended.SID != a.SID || ended.Subject != "alice" || strings.Join(ended.ClientIDs, " ") != "alpha zeta" {
		t.Fatalf("end returned %+v", ended)
	}
	if got := sessionClients(t, s, a.SID); got != "" {
		t.Fatalf("clients of the ended session: %q", got)
	}
	_, err = s.GetLoginSession(ctx, a.ID)
	expectErr(t, "get ended", err, store.ErrNotFound)
	_, err = s.EndLoginSession(ctx, a.ID)
	expectErr(t, "end twice", err, store.ErrNotFound)

	all, err := s.EndLoginSessionsBySubject(ctx, "alice")
	if err != nil {
		t.Fatalf("end by subject: %v", err)
	}
	if len(all) != 1 || all[0].SID != b.SID || all[0].Subject != "alice" || strings.Join(all[0].ClientIDs, " ") != "beta" {
		t.Fatalf("end by subject returned %+v", all)
	}
	if got := sessionClients(t, s, c.SID); got != "gamma" {
		t.Fatalf("another subject's session lost its clients: %q", got)
	}
	if all, err := s.EndLoginSessionsBySubject(ctx, "alice"); err != nil || len(all) != 0 {
		t.Fatalf("end by subject again: %v, %v", all, err)
	}
}

func listLogouts(t *testing.T, s *store.Store) []*store.BackchannelLogout {
	t.Helper()
	ls, err := s.ListBackchannelLogouts(context.Background())
	if err != nil {
		t.Fatalf("list back-channel logouts: %v", err)
	}
	return ls
}

func claimLogout(t *testing.T, s *store.Store, hold time.Duration) *store.BackchannelLogout {
	t.Helper()
	l, err := s.ClaimBackchannelLogout(context.Background(), hold)
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return l
}

func testBackchannelLogoutQueue(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})

	for _, bad := range []*store.BackchannelLogout{
		{SID: "sid-1", Subject: "alice"},
		{ClientID: "app"},
	} {
		if err := s.EnqueueBackchannelLogouts(ctx, []*store.BackchannelLogout{bad}); err == nil {
			t.Fatalf("enqueued %+v", bad)
		}
	}
	if err := s.EnqueueBackchannelLogouts(ctx, nil); err != nil {
		t.Fatalf("enqueue nothing: %v", err)
	}
	_, err := s.ClaimBackchannelLogout(ctx, time.Minute)
	expectErr(t, "claim from an empty queue", err, store.ErrNotFound)

	first := &store.BackchannelLogout{ClientID: "app-1", SID: "sid-1", Subject: "alice"}
	if err := s.EnqueueBackchannelLogouts(ctx, []*store.BackchannelLogout{first}); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	clock.Add(time.Second)
	second := &store.BackchannelLogout{ID: "chosen-jti", ClientID: "app-2", Subject: "alice"}
	if err := s.EnqueueBackchannelLogouts(ctx, []*store.BackchannelLogout{second}); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	if first.ID == "" || first.ID == second.ID || second.ID != "chosen-jti" {
		t.Fatalf("IDs %q and %q: want a generated one and the chosen one", first.ID, second.ID)
	}
	wantInstant(t, first.CreatedAt, flowEpoch, "created_at")
	dup := &store.BackchannelLogout{ID: "chosen-jti", ClientID: "app-3", SID: "sid-3"}
	expectErr(t, "enqueue a taken ID", s.EnqueueBackchannelLogouts(ctx, []*store.BackchannelLogout{dup}), store.ErrAlreadyExists)

	queued := listLogouts(t, s)
	if len(queued) != 2 || queued[0].ID != first.ID || queued[1].ID != second.ID {
		t.Fatalf("queue = %+v", queued)
	}
	q := queued[0]
	if q.ClientID != "app-1" || q.SID != "sid-1" || q.Subject != "alice" || q.Attempts != 0 || q.Lease != "" || q.LastError != "" {
		t.Fatalf("queued %+v", q)
	}
	wantInstant(t, q.CreatedAt, flowEpoch, "created_at")
	wantInstant(t, q.DueAt, flowEpoch, "due_at")

	// Claims go out oldest first, once each.
	c1 := claimLogout(t, s, time.Minute)
	if c1.ID != first.ID || c1.Attempts != 1 || c1.Lease == "" || c1.ClientID != "app-1" || c1.SID != "sid-1" {
		t.Fatalf("first claim = %+v", c1)
	}
	wantInstant(t, c1.DueAt, clock.Now().Add(time.Minute), "due_at of a claimed logout")
	c2 := claimLogout(t, s, time.Minute)
	if c2.ID != second.ID || c2.Lease == c1.Lease || c2.SID != "" || c2.Subject != "alice" {
		t.Fatalf("second claim = %+v", c2)
	}
	_, err = s.ClaimBackchannelLogout(ctx, time.Minute)
	expectErr(t, "claim while both are held", err, store.ErrNotFound)

	// A failed attempt is due again after the delay, with its reason.
	expectErr(t, "retry with another lease", s.RetryBackchannelLogout(ctx, c1.ID, c2.Lease, time.Second, "x"), store.ErrNotFound)
	expectErr(t, "retry without a lease", s.RetryBackchannelLogout(ctx, c1.ID, "", time.Second, "x"), store.ErrNotFound)
	long := strings.Repeat("e", 2000)
	if err := s.RetryBackchannelLogout(ctx, c1.ID, c1.Lease, 10*time.Second, long); err != nil {
		t.Fatalf("retry: %v", err)
	}
	queued = listLogouts(t, s)
	if len(queued) != 2 || queued[0].ID != first.ID || queued[0].Lease != "" || queued[0].Attempts != 1 ||
		queued[0].LastError == "" || !strings.HasPrefix(long, queued[0].LastError) || len(queued[0].LastError) > 1000 {
		t.Fatalf("after retry: %+v", queued)
	}
	wantInstant(t, queued[0].DueAt, clock.Now().Add(10*time.Second), "due_at after retry")
	expectErr(t, "finish with the given-up lease", s.FinishBackchannelLogout(ctx, c1.ID, c1.Lease), store.ErrNotFound)
	clock.Add(9 * time.Second)
	_, err = s.ClaimBackchannelLogout(ctx, time.Minute)
	expectErr(t, "claim before the retry is due", err, store.ErrNotFound)
	clock.Add(time.Second)
	again := claimLogout(t, s, time.Minute)
	if again.ID != first.ID || again.Attempts != 2 || again.Lease == c1.Lease {
		t.Fatalf("claim of the retry = %+v", again)
	}

	// Finished logouts leave the queue.
	expectErr(t, "finish with a wrong lease", s.FinishBackchannelLogout(ctx, again.ID, "wrong"), store.ErrNotFound)
	expectErr(t, "finish without a lease", s.FinishBackchannelLogout(ctx, again.ID, ""), store.ErrNotFound)
	if err := s.FinishBackchannelLogout(ctx, again.ID, again.Lease); err != nil {
		t.Fatalf("finish: %v", err)
	}
	if err := s.FinishBackchannelLogout(ctx, c2.ID, c2.Lease); err != nil {
		t.Fatalf("finish: %v", err)
	}
	expectErr(t, "finish twice", s.FinishBackchannelLogout(ctx, c2.ID, c2.Lease), store.ErrNotFound)
	if queued := listLogouts(t, s); len(queued) != 0 {
		t.Fatalf("queue after finishing everything: %+v", queued)
	}
}

// testBackchannelLogoutLeaseLapses checks that a logout whose claimer
// vanished is claimed again once the hold ends, and that the vanished
// claimer can then neither finish nor retry it.
func testBackchannelLogoutLeaseLapses(t *testing.T, open Opener) {
	ctx := context.Background()
	clock := NewClock(flowEpoch)
	s := open(t, store.Options{Now: clock.Now})
	if err := s.EnqueueBackchannelLogouts(ctx, []*store.BackchannelLogout{{ClientID: "app", SID: "sid"}}); err != nil {
		t.Fatal(err)
	}
	lost := claimLogout(t, s, 30*time.Second)
	clock.Add(29 * time.Second)
	_, err := s.ClaimBackchannelLogout(ctx, 30*time.Second)
	expectErr(t, "claim while held", err, store.ErrNotFound)
	clock.Add(time.Second)
	taken := claimLogout(t, s, 30*time.Second)
	if taken.ID != lost.ID || taken.Lease == lost.Lease || taken.Attempts != 2 {
		t.Fatalf("claim after the hold lapsed = %+v (lost claim %+v)", taken, lost)
	}
	expectErr(t, "finish with a lapsed lease", s.FinishBackchannelLogout(ctx, lost.ID, lost.Lease), store.ErrNotFound)
	expectErr(t, "retry with a lapsed lease", s.RetryBackchannelLogout(ctx, lost.ID, lost.Lease, 0, "late"), store.ErrNotFound)
	if err := s.FinishBackchannelLogout(ctx, taken.ID, taken.Lease); err != nil {
		t.Fatalf("finish with the current lease: %v", err)
	}
}

// testBackchannelLogoutQueuedWithSessionEnd checks that ending a session
// and queueing its logouts commit together or not at all.
func testBackchannelLogoutQueuedWithSessionEnd(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, store.Options{})
	ls := exampleLoginSession("alice", time.Now().Add(time.Hour))
	createLoginSession(t, s, ls)
	if err := s.AddSessionClient(ctx, ls.SID, "app"); err != nil {
		t.Fatal(err)
	}
	endAndQueue := func(fail error) error {
		return s.InTx(ctx, func(ctx context.Context) error {
			ended, err := s.EndLoginSession(ctx, ls.ID)
			if err != nil {
				return err
			}
			var logouts []*store.BackchannelLogout
			for _, id := range ended.ClientIDs {
				logouts = append(logouts, &store.BackchannelLogout{ClientID: id, SID: ended.SID, Subject: ended.Subject})
			}
			if err := s.EnqueueBackchannelLogouts(ctx, logouts); err != nil {
				return err
			}
			return fail
		})
	}
	boom := errors.New("boom")
	expectErr(t, "a transaction that fails", endAndQueue(boom), boom)
	if _, err := s.GetLoginSession(ctx, ls.ID); err != nil {
		t.Fatalf("the session ended although the transaction rolled back: %v", err)
	}
	if got := sessionClients(t, s, ls.SID); got != "app" {
		t.Fatalf("clients after rollback: %q", got)
	}
	if queued := listLogouts(t, s); len(queued) != 0 {
		t.Fatalf("logouts queued although the transaction rolled back: %+v", queued)
	}
	if err := endAndQueue(nil); err != nil {
		t.Fatalf("end and queue: %v", err)
	}
	queued := listLogouts(t, s)
	if len(queued) != 1 || queued[0].ClientID != "app" || queued[0].SID != ls.SID || queued[0].Subject != "alice" {
		t.Fatalf("queued %+v", queued)
	}
}

// testBackchannelLogoutClaimAcrossReplicas claims one queue from two stores
// on one database, many claimers each, and checks that every logout is
// claimed exactly once.
func testBackchannelLogoutClaimAcrossReplicas(t *testing.T, fresh FreshDB) {
	ctx := context.Background()
	dbURL := fresh(t)
	replicas := []*store.Store{OpenURL(t, dbURL, store.Options{}), OpenURL(t, dbURL, store.Options{})}
	const n = 40
	var logouts []*store.BackchannelLogout
	for i := range n {
		logouts = append(logouts, &store.BackchannelLogout{ClientID: fmt.Sprintf("app-%02d", i), SID: "sid"})
	}
	if err := replicas[0].EnqueueBackchannelLogouts(ctx, logouts); err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		claimed []string
	)
	errs := inParallel(8, func(i int) error {
		s := replicas[i%len(replicas)]
		for {
			l, err := s.ClaimBackchannelLogout(ctx, time.Hour)
			if errors.Is(err, store.ErrNotFound) {
				return nil
			}
			if err != nil {
				return err
			}
			mu.Lock()
			claimed = append(claimed, l.ID)
			mu.Unlock()
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
	}
	slices.Sort(claimed)
	if len(claimed) != n || len(slices.Compact(slices.Clone(claimed))) != n {
		t.Fatalf("%d claims of %d distinct logouts; want each of %d claimed once", len(claimed), len(slices.Compact(slices.Clone(claimed))), n)
	}
	for _, l := range listLogouts(t, replicas[1]) {
		if l.Attempts != 1 || l.Lease == "" {
			t.Fatalf("after the claims: %+v", l)
		}
	}
}
