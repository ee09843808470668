package provider

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"

	"github.com/latchkey-oidc/latchkey/store"
)

// Pairwise subject identifiers (OpenID Connect Core §8.1). A client
// registered with subject_type pairwise knows each user by a sub of its
// sector alone, so clients of different sectors cannot join their records
// on it. Inside the provider the subject stays the login app's: sessions,
// consent grants, the subject columns of the store and the admin API all
// use it; subjectFor turns it into what a client sees, wherever a client
// sees it (ID tokens, userinfo, introspection, logout tokens).
//
// The value is HMAC-SHA256 over the sector and the subject, keyed with a
// secret kept sealed in the store (store.PairwiseSecret). That secret is
// the same on every replica and independent of the system secret, so
// rotating the system secret changes no sub.

// subjectPairwise is the subject_type of clients that get pairwise subs.
const subjectPairwise = "pairwise"

// subjectFor is the sub client c knows the user with the internal subject
// local by: local itself for a public client (and for no client), else the
// pairwise identifier of c's sector.
func (p *Provider) subjectFor(c *store.Client, local string) string {
	if c == nil || c.SubjectType != subjectPairwise || local == "" {
		return local
	}
	sector, err := sectorHost(c)
	if err != nil {
		// Only a client written to the store without the registrar's
		// checks has no sector; it is a sector of its own. A host never
		// contains "/", so no real sector is named so.
		sector = "client/" + c.ID
	}
	mac := hmac.New(sha256.New, p.pairwiseKey)
	mac.Write([]byte(sector))
	mac.Write([]byte{0})
	mac.Write([]byte(local))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// sectorHost is the sector identifier of a pairwise client (Core §8.1):
// the host of its sector_identifier_uri, or without one, the host all its
// redirect URIs share. It fails when there is no such host: redirect URIs
// on several hosts (or none, or without a host, like a native app's own
// scheme) need a sector_identifier_uri.
func sectorHost(c *store.Client) (string, error) {
	if c.SectorIdentifierURI != "" {
		u, err := url.Parse(c.SectorIdentifierURI)
		if err != nil || u.Hostname() == "" {
			return "", fmt.Errorf("sector_identifier_uri %q has no host", c.SectorIdentifierURI)
		}
		return strings.ToLower(u.Hostname()), nil
	}
	var hosts []string
	for _, raw := range c.RedirectURIs {
		host := ""
		if u, err := url.Parse(raw); err == nil {
			host = strings.ToLower(u.Hostname())
		}
		if host == "" {
			return "", fmt.Errorf("the redirect URI %q has no host; register a sector_identifier_uri", raw)
		}
		if !slices.Contains(hosts, host) {
			hosts = append(hosts, host)
		}
	}
	switch len(hosts) {
	case 0:
		return "", errors.New("a pairwise client needs redirect_uris or a sector_identifier_uri")
	case 1:
		return hosts[0], nil
	}
	return "", fmt.Errorf("the redirect_uris are on several hosts (%s); register a sector_identifier_uri listing them (OpenID Connect Core §8.1)",
		strings.Join(hosts, ", "))
}

// tokenSubject is the sub a token's client knows the token's user by,
// which userinfo and introspection answer: the ID token's sub, set when
// the token was issued (the client itself for client_credentials), or for
// a token issued without one (the password grant) the client's value of
// the internal subject.
func (p *Provider) tokenSubject(ar fosite.Requester) string {
	sess, ok := ar.GetSession().(*Session)
	if !ok {
		return ar.GetSession().GetSubject()
	}
	if sess.Claims != nil && sess.Claims.Subject != "" {
		return sess.Claims.Subject
	}
	client, _ := ar.GetClient().(*store.Client)
	return p.subjectFor(client, sess.GetSubject())
}

// hintClientOf is the client an id_token_hint was issued to (its azp, or
// its only audience): known when it is that client, else loaded. nil when
// the hint names no client or the client was deleted since.
func (p *Provider) hintClientOf(ctx context.Context, claims jwt.MapClaims, known *store.Client) (*store.Client, error) {
	id := hintClient(claims, audiences(claims))
	switch {
	case id == "":
		return nil, nil
	case known != nil && known.ID == id:
		return known, nil
	}
	return p.sessionClient(ctx, id)
}

// hintNames reports whether an id_token_hint issued to client hc names the
// user with the internal subject local.
func (p *Provider) hintNames(claims jwt.MapClaims, hc *store.Client, local string) bool {
	sub, _ := claims["sub"].(string)
	return sub != "" && sub == p.subjectFor(hc, local)
}

// hintSubject is the internal subject an id_token_hint issued to client hc
// names, for a logout request that comes without the session cookie. A
// public sub is the subject itself; a pairwise one cannot be turned back,
// so the hint's sid finds the SSO session whose subject it is. "" when
// that session is gone, or the hint has no sid: the login app then asks
// the user.
func (p *Provider) hintSubject(ctx context.Context, claims jwt.MapClaims, hc *store.Client) (string, error) {
	sub, _ := claims["sub"].(string)
	if hc == nil || hc.SubjectType != subjectPairwise {
		return sub, nil
	}
	sid, _ := claims["sid"].(string)
	if sid == "" {
		return "", nil
	}
	ls, err := p.store.GetLoginSessionBySID(ctx, sid)
	if errors.Is(err, store.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !p.hintNames(claims, hc, ls.Subject) {
		return "", nil
	}
	return ls.Subject, nil
}
