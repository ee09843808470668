package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Cache topics with a generation counter in cache_generations.
const (
	topicClients     = "clients"
	topicSigningKeys = "signing_keys"
)

func (s *Store) bumpGeneration(ctx context.Context, topic string) error {
	if _, err := s.exec(ctx, `UPDATE cache_generations SET generation = generation + 1 WHERE topic = ?`, topic); err != nil {
		return fmt.Errorf("bump %s generation: %w", topic, err)
	}
	return nil
}

// Generation returns the current generation of a cache topic ("clients",
// "signing_keys"); it moves whenever any replica changes that data.
func (s *Store) Generation(ctx context.Context, topic string) (int64, error) {
	var g int64
	if err := s.get(ctx, &g, `SELECT generation FROM cache_generations WHERE topic = ?`, topic); err != nil {
		return 0, fmt.Errorf("read %s generation: %w", topic, err)
	}
	return g, nil
}

// SyncCaches reads the generations once and drops cached data another
// replica has changed.
func (s *Store) SyncCaches(ctx context.Context) error {
	g, err := s.Generation(ctx, topicClients)
	if err != nil {
		return err
	}
	s.clients.observe(g)
	return nil
}

// WatchCaches calls SyncCaches every interval until ctx ends, so a client
// changed on one replica is seen by all within about one interval.
func (s *Store) WatchCaches(ctx context.Context, interval time.Duration, log *slog.Logger) {
	every(ctx, interval, func() {
		if err := s.SyncCaches(ctx); err != nil && ctx.Err() == nil && log != nil {
			log.Warn("cache sync failed", "err", err)
		}
	})
}

// every calls fn at each interval until ctx ends.
func every(ctx context.Context, interval time.Duration, fn func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			fn()
		}
	}
}
