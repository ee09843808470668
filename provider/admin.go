package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gorilla/mux"

	"github.com/latchkey-oidc/latchkey/store"
)

// The operator's part of the admin API: clients, signing keys, and what a
// subject holds (sessions, tokens, consents). The login app's challenge
// calls are in challenges.go.

// Page sizes of GET /admin/clients.
const (
	defaultClientPage = 100
	maxClientPage     = 1000
)

// adminListClients answers a page of clients ordered by client_id, after
// the one named by ?after=. A full page links the next one (Link rel=next).
func (p *Provider) adminListClients(w http.ResponseWriter, r *http.Request) {
	q, ok := adminQuery(w, r)
	if !ok {
		return
	}
	limit := defaultClientPage
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxClientPage {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit must be a number from 1 to %d.", maxClientPage))
			return
		}
		limit = n
	}
	clients, err := p.store.ListClients(r.Context(), q.Get("after"), limit)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	if len(clients) == limit {
		next := url.Values{"after": {clients[len(clients)-1].ID}, "limit": {strconv.Itoa(limit)}}
		w.Header().Set("Link", fmt.Sprintf(`<%s?%s>; rel="next"`, r.URL.Path, next.Encode()))
	}
	writeJSON(w, http.StatusOK, clients)
}

func (p *Provider) adminCreateClient(w http.ResponseWriter, r *http.Request) {
	req, err := ParseClientRequest(r.Body)
	if err != nil {
		p.writeAdminClientError(w, r, err, "")
		return
	}
	c, err := p.clients().Create(r.Context(), req)
	if err != nil {
		p.writeAdminClientError(w, r, err, req.ID)
		return
	}
	w.Header().Set("Location", "/admin/clients/"+url.PathEscape(c.ID))
	writeJSON(w, http.StatusCreated, c)
}

func (p *Provider) adminGetClient(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	c, err := p.store.LoadClient(r.Context(), id)
	if err != nil {
		p.writeAdminClientError(w, r, err, id)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// adminUpdateClient replaces a client's metadata; see ClientRequest for
// how the body changes the secret.
func (p *Provider) adminUpdateClient(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	req, err := ParseClientRequest(r.Body)
	if err != nil {
		p.writeAdminClientError(w, r, err, id)
		return
	}
	c, err := p.clients().Update(r.Context(), id, req)
	if err != nil {
		p.writeAdminClientError(w, r, err, id)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// adminDeleteClient deletes a client; its tokens stop working at once,
// since every token lookup loads its client.
func (p *Provider) adminDeleteClient(w http.ResponseWriter, r *http.Request) {
	id := mux.Vars(r)["id"]
	if err := p.store.DeleteClient(r.Context(), id); err != nil {
		p.writeAdminClientError(w, r, err, id)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// writeAdminClientError answers a failed client call: 400 in the RFC 7591 shape
// for metadata, 404 and 409 for a missing or taken client_id.
func (p *Provider) writeAdminClientError(w http.ResponseWriter, r *http.Request, err error, id string) {
	var me *ClientMetadataError
	switch {
	case errors.As(err, &me):
		writeError(w, http.StatusBadRequest, me.Code, me.Description)
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("There is no client %q.", id))
	case errors.Is(err, store.ErrAlreadyExists):
		writeError(w, http.StatusConflict, "conflict", fmt.Sprintf("The client_id %q is taken.", id))
	default:
		p.adminServerError(w, r, err)
	}
}

// adminListKeys lists the published signing keys, without key material.
// It reloads them first when they changed, so a rotation made elsewhere
// (another replica, the CLI) shows at once.
func (p *Provider) adminListKeys(w http.ResponseWriter, r *http.Request) {
	if err := p.keys.Refresh(r.Context()); err != nil {
		p.adminServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, SigningKeyViews(p.keys.Keys()))
}

// KeyRotation is the body of POST /admin/keys/rotate: the algorithm to
// rotate, or none (an empty body too) for every algorithm.
type KeyRotation struct {
	Alg string `json:"alg,omitempty"`
}

// adminRotateKeys rotates signing keys and answers the new key list.
func (p *Provider) adminRotateKeys(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "The body could not be read.")
		return
	}
	var kr KeyRotation
	if len(bytes.TrimSpace(body)) > 0 {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&kr); err != nil || !jsonEnds(dec) {
			writeError(w, http.StatusBadRequest, "invalid_request", `The body must be empty or {"alg":"…"}.`)
			return
		}
	}
	algs := p.keys.Algs()
	if kr.Alg != "" {
		if !slices.Contains(algs, kr.Alg) {
			writeError(w, http.StatusBadRequest, "invalid_request", "alg must be one of "+strings.Join(algs, ", ")+".")
			return
		}
		algs = []string{kr.Alg}
	}
	for _, alg := range algs {
		if err := p.keys.Rotate(r.Context(), alg); err != nil {
			p.adminServerError(w, r, fmt.Errorf("rotate %s keys: %w", alg, err))
			return
		}
		p.log.InfoContext(r.Context(), "signing keys rotated through the admin API", "alg", alg)
	}
	writeJSON(w, http.StatusOK, SigningKeyViews(p.keys.Keys()))
}

// TokensRevoked answers DELETE /admin/subjects/{subject}/tokens and
// …/consents: how many tokens and codes were revoked, for one client or
// (ClientID empty) all.
type TokensRevoked struct {
	Subject       string `json:"subject"`
	ClientID      string `json:"client_id,omitempty"`
	RevokedTokens int64  `json:"revoked_tokens"`
}

// adminQuery returns the request's query parameters, answering 400
// itself when one is repeated or not valid UTF-8 (checkParams).
func adminQuery(w http.ResponseWriter, r *http.Request) (url.Values, bool) {
	q := r.URL.Query()
	if err := checkParams(q); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", paramProblem(err))
		return nil, false
	}
	return q, true
}

// adminSubject returns the request's subject, answering 400 itself when it is
// blank.
func adminSubject(w http.ResponseWriter, r *http.Request) (string, bool) {
	s := mux.Vars(r)["subject"]
	if strings.TrimSpace(s) == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "The subject is empty.")
		return "", false
	}
	return s, true
}

// adminRevokeTokens revokes a subject's access tokens, refresh tokens and
// unused codes, of one client (?client_id=) or all.
func (p *Provider) adminRevokeTokens(w http.ResponseWriter, r *http.Request) {
	sub, ok := adminSubject(w, r)
	if !ok {
		return
	}
	q, ok := adminQuery(w, r)
	if !ok {
		return
	}
	clientID := q.Get("client_id")
	n, err := p.store.RevokeTokensBySubject(r.Context(), sub, clientID)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TokensRevoked{Subject: sub, ClientID: clientID, RevokedTokens: n})
}

// adminRevokeConsents withdraws what a subject granted one client
// (?client_id=) or every client, so the next authorization asks again. As
// in Hydra, the tokens those grants produced are revoked with them: a
// withdrawn consent that left a refresh token working would not be one.
func (p *Provider) adminRevokeConsents(w http.ResponseWriter, r *http.Request) {
	sub, ok := adminSubject(w, r)
	if !ok {
		return
	}
	q, ok := adminQuery(w, r)
	if !ok {
		return
	}
	ctx := r.Context()
	clientID := q.Get("client_id")
	var err error
	if clientID != "" {
		if err = p.store.DeleteConsentGrant(ctx, sub, clientID); errors.Is(err, store.ErrNotFound) {
			err = nil // nothing to withdraw; the tokens may still exist
		}
	} else {
		err = p.store.DeleteConsentGrantsBySubject(ctx, sub)
	}
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	n, err := p.store.RevokeTokensBySubject(ctx, sub, clientID)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, TokensRevoked{Subject: sub, ClientID: clientID, RevokedTokens: n})
}
