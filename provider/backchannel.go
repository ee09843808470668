package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/latchkey-oidc/latchkey/store"
)

// OpenID Connect Back-Channel Logout 1.0. When an SSO session ends (the
// user signed out, or an operator revoked the subject's sessions), every
// client that took part in it and registered a backchannel_logout_uri gets
// a logout token POSTed to that URI, server to server.
//
// Delivery goes through a queue in the database, written in the same
// transaction that ends the session: a provider that stops before or while
// sending loses no logout, and any replica may send it. Each provider runs
// a worker (Run) that claims due deliveries with a lease, signs the token
// at send time from the stored claims, and on failure tries again with
// exponential backoff until it gives up.

// backchannelLogoutEvent is the logout token's event type (§2.4).
const backchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

// logoutTokenLifespan bounds how long a captured logout token could be
// replayed; §4 recommends at most two minutes.
const logoutTokenLifespan = 2 * time.Minute

// end ends SSO sessions with endFn and, in the same transaction, queues
// the back-channel logouts of their clients, then wakes the local worker
// if there is one. It returns what endFn ended.
func (s *SSOSessions) end(ctx context.Context, endFn func(ctx context.Context) ([]*store.EndedSession, error)) ([]*store.EndedSession, error) {
	var ended []*store.EndedSession
	err := s.store.InTx(ctx, func(ctx context.Context) error {
		var err error
		if ended, err = endFn(ctx); err != nil {
			return err
		}
		return s.queueBackchannelLogouts(ctx, ended)
	})
	if err != nil {
		return nil, err
	}
	if s.wake != nil {
		s.wake()
	}
	return ended, nil
}

// queueBackchannelLogouts queues a logout token for every client of the
// ended sessions that registered a backchannel_logout_uri.
func (s *SSOSessions) queueBackchannelLogouts(ctx context.Context, ended []*store.EndedSession) error {
	var logouts []*store.BackchannelLogout
	for _, es := range ended {
		for _, id := range es.ClientIDs {
			c, err := sessionClient(ctx, s.store, id)
			if err != nil {
				return err
			}
			if c == nil || c.BackchannelLogoutURI == "" {
				continue
			}
			logouts = append(logouts, &store.BackchannelLogout{ClientID: id, SID: es.SID, Subject: es.Subject})
		}
	}
	if err := s.store.EnqueueBackchannelLogouts(ctx, logouts); err != nil {
		return fmt.Errorf("queue back-channel logouts: %w", err)
	}
	return nil
}

// sessionClient loads a client that took part in a session; nil when it
// has been deleted since.
func (p *Provider) sessionClient(ctx context.Context, id string) (*store.Client, error) {
	return sessionClient(ctx, p.store, id)
}

func sessionClient(ctx context.Context, st *store.Store, id string) (*store.Client, error) {
	fc, err := st.GetClient(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load client %q: %w", id, err)
	}
	return fc.(*store.Client), nil
}

// wakeBackchannel tells this provider's worker that logouts were queued,
// so they go out now rather than at the next poll.
func (p *Provider) wakeBackchannel() {
	select {
	case p.backchannelWake <- struct{}{}:
	default:
	}
}

// runBackchannelLogouts delivers queued logout tokens until ctx ends: at
// once, then at every poll interval or when woken.
func (p *Provider) runBackchannelLogouts(ctx context.Context) {
	cfg := p.cfg.BackchannelLogout
	slots := make(chan struct{}, cfg.Concurrency)
	var inFlight sync.WaitGroup
	defer inFlight.Wait()
	tick := time.NewTicker(cfg.PollInterval)
	defer tick.Stop()
	for {
		p.claimDueLogouts(ctx, slots, &inFlight)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-p.backchannelWake:
		}
	}
}

// claimDueLogouts claims due logouts and sends each in its own goroutine,
// at most one per free slot, until none is due.
func (p *Provider) claimDueLogouts(ctx context.Context, slots chan struct{}, inFlight *sync.WaitGroup) {
	// A claim lapses only after the request's own timeout, with room to
	// record the outcome.
	hold := p.cfg.BackchannelLogout.Timeout + 30*time.Second
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		l, err := p.store.ClaimBackchannelLogout(ctx, hold)
		if err != nil {
			<-slots
			if !errors.Is(err, store.ErrNotFound) && ctx.Err() == nil {
				p.log.ErrorContext(ctx, "back-channel logout: claim a delivery", "err", err)
			}
			return
		}
		inFlight.Add(1)
		go func() {
			defer func() { <-slots; inFlight.Done() }()
			p.deliverBackchannelLogout(ctx, l)
		}()
	}
}

// attempt is the outcome of one back-channel logout request.
type attempt struct {
	delivered bool
	// permanent marks a failure that retrying cannot mend.
	permanent bool
	// reason says why it failed, for the queue and the log.
	reason string
}

// deliverBackchannelLogout makes one attempt at a claimed logout and
// records the outcome in the queue and the metrics.
func (p *Provider) deliverBackchannelLogout(ctx context.Context, l *store.BackchannelLogout) {
	a := p.sendBackchannelLogout(ctx, l)
	// The outcome is recorded even when ctx ended meanwhile: a provider
	// that is stopping still says what it knows.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	log := p.log.With("client_id", l.ClientID, "sid", l.SID, "jti", l.ID, "attempt", l.Attempts)
	cfg := p.cfg.BackchannelLogout
	now := time.Now()
	deadline := l.CreatedAt.Add(cfg.GiveUpAfter)
	var err error
	switch {
	case a.delivered:
		err = p.store.FinishBackchannelLogout(rctx, l.ID, l.Lease)
		p.metrics.backchannelDeliveries.WithLabelValues(deliveryDelivered).Inc()
		log.InfoContext(rctx, "back-channel logout delivered")
	case ctx.Err() != nil:
		// Cut short by shutdown, not the relying party's fault: hand the
		// logout back so the next provider sends it at once.
		err = p.store.RetryBackchannelLogout(rctx, l.ID, l.Lease, 0, "interrupted: the provider stopped")
	case a.permanent || !now.Before(deadline):
		err = p.store.FinishBackchannelLogout(rctx, l.ID, l.Lease)
		p.metrics.backchannelDeliveries.WithLabelValues(deliveryFailed).Inc()
		log.WarnContext(rctx, "back-channel logout failed; giving up", "reason", a.reason)
	default:
		delay := min(retryDelay(cfg, l.Attempts), deadline.Sub(now))
		err = p.store.RetryBackchannelLogout(rctx, l.ID, l.Lease, delay, a.reason)
		p.metrics.backchannelDeliveries.WithLabelValues(deliveryRetry).Inc()
		log.InfoContext(rctx, "back-channel logout failed; will retry", "reason", a.reason, "retry_in", delay)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		// The claim lapsed and another provider took the logout over;
		// what it does decides.
		log.WarnContext(rctx, "back-channel logout: the claim lapsed before the outcome was recorded")
	case err != nil:
		log.ErrorContext(rctx, "back-channel logout: record the outcome", "err", err)
	}
}

// retryDelay is how long to wait after the attempts-th failed attempt:
// RetryMin, doubled for each attempt before it, at most RetryMax.
func retryDelay(cfg BackchannelLogoutConfig, attempts int) time.Duration {
	d := cfg.RetryMin
	for i := 1; i < attempts && d < cfg.RetryMax; i++ {
		d *= 2
	}
	return min(d, cfg.RetryMax)
}

// sendBackchannelLogout signs the logout token and POSTs it to the
// client's backchannel_logout_uri (§2.5).
func (p *Provider) sendBackchannelLogout(ctx context.Context, l *store.BackchannelLogout) attempt {
	c, err := p.sessionClient(ctx, l.ClientID)
	switch {
	case err != nil:
		return attempt{reason: err.Error()}
	case c == nil:
		return attempt{permanent: true, reason: "the client was deleted"}
	case c.BackchannelLogoutURI == "":
		return attempt{permanent: true, reason: "the client no longer has a backchannel_logout_uri"}
	case c.BackchannelLogoutSessionRequired && l.SID == "":
		return attempt{permanent: true, reason: "the client requires sid and the session is not known"}
	}
	token, err := p.logoutToken(ctx, c, l)
	if err != nil {
		return attempt{reason: err.Error()}
	}
	rctx, cancel := context.WithTimeout(ctx, p.cfg.BackchannelLogout.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return attempt{permanent: true, reason: fmt.Sprintf("backchannel_logout_uri: %v", err)}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.backchannelHTTP.Do(req)
	if err != nil {
		// The error names the URL, never the body with the token. An
		// address the outbound policy refuses stays refused: retrying
		// would only knock at it for a day.
		return attempt{permanent: isOutboundRefused(err), reason: err.Error()}
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		// §2.8: 200, or 204 from frameworks that answer an empty body so.
		return attempt{delivered: true}
	case resp.StatusCode == http.StatusBadRequest:
		// §2.8: the relying party judged the request invalid or could not
		// log out, and §2.5 asks not to retransmit unless a previous
		// transmission may have failed for a recoverable reason.
		return attempt{permanent: true, reason: "the relying party answered 400 Bad Request: " + printable(answer)}
	default:
		return attempt{reason: fmt.Sprintf("the relying party answered %s", resp.Status)}
	}
}

// logoutToken signs the logout token of l for client c (§2.4) with the
// key the client's ID tokens are signed with. It has sid and sub when they
// are known, and never a nonce.
func (p *Provider) logoutToken(ctx context.Context, c *store.Client, l *store.BackchannelLogout) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss":    p.cfg.Issuer,
		"aud":    c.ID,
		"iat":    now.Unix(),
		"exp":    now.Add(logoutTokenLifespan).Unix(),
		"jti":    l.ID,
		"events": map[string]any{backchannelLogoutEvent: map[string]any{}},
	}
	if l.SID != "" {
		claims["sid"] = l.SID
	}
	if l.Subject != "" {
		// The queue keeps the internal subject; each client gets its own.
		claims["sub"] = p.subjectFor(c, l.Subject)
	}
	alg := c.IDTokenSignedResponseAlg
	if !slices.Contains(p.keys.Algs(), alg) {
		alg = p.keys.DefaultAlg()
	}
	tok, err := p.keys.Sign(ctx, alg, claims, map[string]any{"typ": "logout+jwt"})
	if err != nil {
		return "", fmt.Errorf("sign logout token: %w", err)
	}
	return tok, nil
}

// printable keeps the first line of a relying party's answer, for the log.
func printable(b []byte) string {
	s, _, _ := strings.Cut(strings.ToValidUTF8(string(b), "?"), "\n")
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// noRedirects returns a copy of c that does not follow redirects: a logout
// token goes to the registered URI or nowhere.
func noRedirects(c *http.Client) *http.Client {
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cp
}
