package provider

import (
	"time"

	"github.com/latchkey-oidc/latchkey/provider/keys"
	"github.com/latchkey-oidc/latchkey/store"
)

// SigningKeyView is what the admin API and the CLI show of a signing key:
// its metadata, never key material.
type SigningKeyView struct {
	KID         string     `json:"kid"`
	Alg         string     `json:"alg"`
	State       string     `json:"state"`
	CreatedAt   time.Time  `json:"created_at"`
	ActivatedAt *time.Time `json:"activated_at,omitempty"`
	RetiredAt   *time.Time `json:"retired_at,omitempty"`
	// ExpiresAt is when a retired key stops being published.
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
}

// SigningKeyViews describes keys, in their order.
func SigningKeyViews(ks []*store.SigningKey) []SigningKeyView {
	out := make([]SigningKeyView, 0, len(ks))
	for _, k := range ks {
		out = append(out, SigningKeyView{
			KID:         k.ID,
			Alg:         k.Alg,
			State:       string(k.State),
			CreatedAt:   k.CreatedAt,
			ActivatedAt: k.ActivatedAt,
			RetiredAt:   k.RetiredAt,
			ExpiresAt:   k.ExpiresAt,
		})
	}
	return out
}

// NewKeyRing returns the signing keyring a provider with cfg keeps, for
// tools that manage keys without running a provider (the CLI). Load it
// before use. The store must be opened with StoreOptions(cfg), whose system
// secret seals the private keys.
func NewKeyRing(st *store.Store, cfg Config) *keys.Ring {
	return keys.New(st, keyRingOptions(cfg))
}

// keyRingOptions are the keyring options for cfg, defaults filled in.
func keyRingOptions(cfg Config) keys.Options {
	return keys.Options{
		Algs:        cfg.KeyAlgs,
		RotateEvery: orDefault(cfg.KeyRotateEvery, defaultKeyRotateEvery),
		// A retired key stays published while anything it signed may
		// still be presented: ID tokens come back as id_token_hint, and
		// refreshed sessions re-sign, so the longest token lifetime bounds it.
		RetiredKeepFor: max(
			orDefault(cfg.IDTokenLifespan, defaultIDTokenLifespan),
			orDefault(cfg.AccessTokenLifespan, defaultAccessTokenLifespan),
			orDefault(cfg.RefreshTokenLifespan, defaultRefreshTokenLifespan),
		),
		Log: cfg.Log,
	}
}
