package password

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestConcurrencyLimit holds every slot of a Hasher and checks that
// further computations wait for one, give up when their context ends, and
// go ahead once a slot is released.
func TestConcurrencyLimit(t *testing.T) {
	ctx := context.Background()
	h := &Hasher{MemoryKiB: 64, Time: 1, Threads: 1, MaxConcurrent: 2}
	hash, err := h.Hash(ctx, "a fine password")
	if err != nil {
		t.Fatal(err)
	}
	for range h.MaxConcurrent {
		if err := h.acquire(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got := len(h.sem); got != 2 {
		t.Fatalf("%d slots taken, want MaxConcurrent = 2", got)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	tests := []struct {
		name string
		ctx  context.Context
		call func(context.Context) error
		want error
	}{
		{"Hash, cancelled", cancelled, func(ctx context.Context) error { _, err := h.Hash(ctx, "a fine password"); return err }, context.Canceled},
		{"Verify, cancelled", cancelled, func(ctx context.Context) error { _, err := h.Verify(ctx, hash, "a fine password"); return err }, context.Canceled},
		{"VerifyDummy, cancelled", cancelled, func(ctx context.Context) error { return h.VerifyDummy(ctx, "x") }, context.Canceled},
		{"Verify, deadline while waiting", short, func(ctx context.Context) error { _, err := h.Verify(ctx, hash, "a fine password"); return err }, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(tt.ctx); !errors.Is(err, tt.want) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}

	done := make(chan error, 1)
	go func() {
		ok, err := h.Verify(ctx, hash, "a fine password")
		if err == nil && !ok {
			err = errors.New("no match")
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Verify ran while every slot was taken: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	h.release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Verify after a release: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Verify still waits after a slot was released")
	}
	h.release()
	if got := len(h.sem); got != 0 {
		t.Errorf("%d slots still taken", got)
	}
}

// TestDefaultConcurrency checks that a Hasher without MaxConcurrent still
// has a bound.
func TestDefaultConcurrency(t *testing.T) {
	h := &Hasher{MemoryKiB: 64, Time: 1, Threads: 1}
	if err := h.VerifyDummy(context.Background(), "x"); err != nil {
		t.Fatal(err)
	}
	if cap(h.sem) < 1 {
		t.Errorf("semaphore of capacity %d", cap(h.sem))
	}
}
