package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ory/fosite"
	"golang.org/x/text/language"
)

// requestRecord is how a fosite request is kept in a row's data column. The
// client is stored by ID and loaded (from the cache) when the row is read, so
// a deleted client's tokens stop working.
type requestRecord struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"requested_scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"requested_audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Lang              string          `json:"lang,omitempty"`
	Session           json.RawMessage `json:"session,omitempty"`

	// Authorize requests (PAR) only.
	ResponseTypes        []string `json:"response_types,omitempty"`
	RedirectURI          string   `json:"redirect_uri,omitempty"`
	State                string   `json:"state,omitempty"`
	HandledResponseTypes []string `json:"handled_response_types,omitempty"`
	ResponseMode         string   `json:"response_mode,omitempty"`
	DefaultResponseMode  string   `json:"default_response_mode,omitempty"`
	Authorize            bool     `json:"authorize,omitempty"`
}

func encodeRequest(r fosite.Requester) ([]byte, error) {
	rec := requestRecord{
		ID:                r.GetID(),
		RequestedAt:       utc(r.GetRequestedAt()),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              r.GetRequestForm(),
	}
	if c := r.GetClient(); c != nil {
		rec.ClientID = c.GetID()
	}
	if rq, ok := r.(interface{ GetLang() language.Tag }); ok && rq.GetLang() != language.Und {
		rec.Lang = rq.GetLang().String()
	}
	if ar, ok := r.(fosite.AuthorizeRequester); ok {
		rec.Authorize = true
		rec.ResponseTypes = ar.GetResponseTypes()
		if u := ar.GetRedirectURI(); u != nil {
			rec.RedirectURI = u.String()
		}
		rec.State = ar.GetState()
		rec.ResponseMode = string(ar.GetResponseMode())
		rec.DefaultResponseMode = string(ar.GetDefaultResponseMode())
		if a, ok := r.(*fosite.AuthorizeRequest); ok {
			rec.HandledResponseTypes = a.HandledResponseTypes
		}
	}
	// The session is encoded in the same pass: as a json.RawMessage it
	// would be encoded, then checked and copied again.
	out := struct {
		requestRecord
		Session fosite.Session `json:"session,omitempty"`
	}{rec, r.GetSession()}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	return b, nil
}

// decodeRequest rebuilds the fosite request in data. The session is decoded
// into sess (a fresh default session when nil).
func (s *Store) decodeRequest(ctx context.Context, data []byte, sess fosite.Session) (*fosite.Request, *requestRecord, error) {
	var rec requestRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, nil, fmt.Errorf("decode stored request: %w", err)
	}
	client, err := s.GetClient(ctx, rec.ClientID)
	if err != nil {
		return nil, nil, fmt.Errorf("client %q of stored request: %w", rec.ClientID, err)
	}
	if sess == nil {
		sess = s.opts.NewSession()
	}
	if len(rec.Session) > 0 {
		if err := json.Unmarshal(rec.Session, sess); err != nil {
			return nil, nil, fmt.Errorf("decode stored session: %w", err)
		}
	}
	req := &fosite.Request{
		ID:                rec.ID,
		RequestedAt:       rec.RequestedAt,
		Client:            client,
		RequestedScope:    fosite.Arguments(rec.RequestedScope),
		GrantedScope:      fosite.Arguments(rec.GrantedScope),
		RequestedAudience: fosite.Arguments(rec.RequestedAudience),
		GrantedAudience:   fosite.Arguments(rec.GrantedAudience),
		Form:              rec.Form,
		Session:           sess,
	}
	if req.Form == nil {
		req.Form = url.Values{}
	}
	if rec.Lang != "" {
		if tag, err := language.Parse(rec.Lang); err == nil {
			req.Lang = tag
		}
	}
	return req, &rec, nil
}

func (s *Store) decodeAuthorizeRequest(ctx context.Context, data []byte, sess fosite.Session) (*fosite.AuthorizeRequest, error) {
	req, rec, err := s.decodeRequest(ctx, data, sess)
	if err != nil {
		return nil, err
	}
	ar := &fosite.AuthorizeRequest{
		ResponseTypes:        fosite.Arguments(rec.ResponseTypes),
		State:                rec.State,
		HandledResponseTypes: fosite.Arguments(rec.HandledResponseTypes),
		ResponseMode:         fosite.ResponseModeType(rec.ResponseMode),
		DefaultResponseMode:  fosite.ResponseModeType(rec.DefaultResponseMode),
		Request:              *req,
	}
	if ar.HandledResponseTypes == nil {
		ar.HandledResponseTypes = fosite.Arguments{}
	}
	if rec.RedirectURI != "" {
		u, err := url.Parse(rec.RedirectURI)
		if err != nil {
			return nil, fmt.Errorf("decode stored redirect_uri: %w", err)
		}
		ar.RedirectURI = u
	}
	return ar, nil
}

// expiry picks the expiry a row is kept until: the session's for kind, or
// fallback when the session sets none.
func expiry(r fosite.Requester, kind fosite.TokenType, fallback time.Time) time.Time {
	if sess := r.GetSession(); sess != nil {
		if t := sess.GetExpiresAt(kind); !t.IsZero() {
			return utc(t)
		}
	}
	return utc(fallback)
}

// farFuture marks rows that never expire (refresh tokens without a lifespan).
var farFuture = time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC)

// subjectOf returns the session's subject, for the subject column.
func subjectOf(r fosite.Requester) string {
	if sess := r.GetSession(); sess != nil {
		return sess.GetSubject()
	}
	return ""
}

// hashKey returns the hex SHA-256 of a value that must not be stored in
// clear but is not an HMAC signature already (request URIs, challenges, JTIs).
func hashKey(v string) string {
	sum := sha256.Sum256([]byte(v))
	return hex.EncodeToString(sum[:])
}

// codeKey reduces an OpenID Connect session key to the signature part of a
// fosite HMAC token. fosite keys these sessions by the raw authorization code
// (and deletes device-flow ones by the raw device code while creating them by
// its signature), so both forms map to one row keyed by the signature, which
// is what the other tables use and is safe to store.
func codeKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[i+1:]
	}
	return key
}
