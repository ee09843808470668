package provider

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/latchkey-oidc/latchkey/provider/clientsecret"
	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// Provider is a running OpenID Provider on one store. It holds no state
// another replica needs: everything lives in the store, and what it keeps
// in memory (clients, keys) is a cache the store invalidates.
type Provider struct {
	cfg   Config
	store *store.Store
	fositeParts
	keys    *keys.Ring
	secrets *clientsecret.Hasher
	urls    endpoints
	log     *slog.Logger
	metrics *metrics
	// backchannelHTTP sends logout tokens; backchannelWake tells the
	// back-channel logout worker that logouts were queued.
	backchannelHTTP *http.Client
	backchannelWake chan struct{}
	// pairwiseKey keys pairwise subject identifiers (subjectFor).
	pairwiseKey []byte
	// tokenRates limits each client's token requests.
	tokenRates *tokenRateLimits
}

// StoreOptions returns the store options the provider relies on: its
// session type, the password check through the login side, and the system
// secret. Open the store with them (adding pool settings as needed).
func StoreOptions(cfg Config) store.Options {
	cfg, _ = cfg.withDefaults()
	return store.Options{
		NewSession:       newFositeSession,
		PasswordChecker:  &passwordChecker{url: cfg.PasswordCheckURL, token: cfg.AdminToken, client: cfg.HTTPClient},
		SystemSecret:     cfg.SystemSecret,
		OldSystemSecrets: cfg.OldSystemSecrets,
	}
}

// New builds a provider on st, which must be migrated and opened with
// StoreOptions(cfg). It loads the signing keys and the pairwise subject
// key, creating them on a fresh database.
func New(ctx context.Context, st *store.Store, cfg Config) (*Provider, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("provider config: %w", err)
	}
	hasher, err := clientsecret.NewHasher(cfg.SystemSecret, cfg.OldSystemSecrets...)
	if err != nil {
		return nil, fmt.Errorf("client secret hasher: %w", err)
	}
	ring := keys.New(st, keyRingOptions(cfg))
	if err := ring.Load(ctx); err != nil {
		return nil, fmt.Errorf("load signing keys: %w", err)
	}
	pairwiseKey, err := st.PairwiseSecret(ctx)
	if err != nil {
		return nil, fmt.Errorf("load the pairwise subject key: %w", err)
	}
	m, err := newMetrics(cfg.Registerer, cfg.MetricsPerClient)
	if err != nil {
		return nil, err
	}
	p := &Provider{
		cfg:     cfg,
		store:   st,
		keys:    ring,
		secrets: hasher,
		urls:    endpointsFor(cfg.Issuer),
		log:     cfg.Log,
		metrics: m,

		backchannelHTTP: noRedirects(cfg.notifyHTTP),
		backchannelWake: make(chan struct{}, 1),
		pairwiseKey:     pairwiseKey,
		tokenRates:      newTokenRateLimits(cfg.TokenRateLimit, time.Now),
	}
	p.fositeParts, err = composeFosite(cfg, st, ring, hasher, p.tokenSubject)
	if err != nil {
		return nil, fmt.Errorf("compose fosite: %w", err)
	}
	if cfg.Registerer != nil {
		if err := registerReplacing(cfg.Registerer, newStateCollector(p)); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Ready reports whether the provider can serve: the database answers and
// every configured algorithm has a signing key.
func (p *Provider) Ready(ctx context.Context) error {
	if err := p.store.Ping(ctx); err != nil {
		return fmt.Errorf("database: %w", err)
	}
	return p.keys.Usable()
}

// Issuer returns the issuer URL.
func (p *Provider) Issuer() string { return p.cfg.Issuer }

// Keys returns the signing keyring.
func (p *Provider) Keys() *keys.Ring { return p.keys }

// Run does the provider's background work until ctx ends: it follows
// changes other replicas make to clients and keys, rotates keys when due,
// deletes expired rows, and delivers back-channel logouts.
func (p *Provider) Run(ctx context.Context) {
	done := make(chan struct{}, 4)
	go func() { p.keys.Run(ctx, p.cfg.KeyRefreshInterval); done <- struct{}{} }()
	go func() { p.runBackchannelLogouts(ctx); done <- struct{}{} }()
	go func() { p.store.WatchCaches(ctx, 5*time.Second, p.log); done <- struct{}{} }()
	go func() {
		p.store.RunJanitor(ctx, 10*time.Minute, store.JanitorOptions{Pause: 50 * time.Millisecond}, func(err error) {
			p.log.Error("janitor", "err", err)
		})
		done <- struct{}{}
	}()
	for range 4 {
		<-done
	}
}
