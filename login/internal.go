package login

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
)

// passwordCheck answers the provider's question for the resource owner
// password grant (provider/README.md, "The password grant"): the admin
// token authenticates the provider; the answer is the user's subject, or a
// refusal that does not say why. Users with a second factor are refused:
// the grant cannot ask for it.
func (a *App) passwordCheck(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(a.cfg.AdminToken)) != 1 {
		writeJSONError(w, http.StatusUnauthorized, "invalid_token", "The admin token is missing or wrong.")
		return
	}
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&in); err != nil || !jsonEnds(dec) {
		writeJSONError(w, http.StatusBadRequest, "invalid_request", "The body must be JSON with username and password.")
		return
	}
	ctx := r.Context()
	user, wait, err := a.checkPassword(ctx, "", in.Username, in.Password)
	switch {
	case err != nil:
		a.cfg.Log.ErrorContext(ctx, "password check failed", "error", err)
		writePasswordCheckError(w, err)
		return
	case wait > 0:
		writeJSONError(w, http.StatusTooManyRequests, "too_many_attempts", "Too many attempts for this account.")
		return
	case user == nil:
		writeJSONError(w, http.StatusUnauthorized, "invalid_credentials", "Invalid username or password.")
		return
	}
	f, err := a.factorsOf(ctx, user)
	if err != nil {
		a.cfg.Log.ErrorContext(ctx, "password check failed", "error", err)
		writePasswordCheckError(w, err)
		return
	}
	if f.TOTP || f.Passkeys > 0 {
		a.metrics.signIns.WithLabelValues(methodPasswordGrant, resultFailure).Inc()
		writeJSONError(w, http.StatusForbidden, "mfa_required", "This account signs in with a second factor.")
		return
	}
	a.metrics.signIns.WithLabelValues(methodPasswordGrant, resultSuccess).Inc()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"subject": user.ID})
}

// jsonEnds reports whether dec has nothing left after the value it
// decoded: a body with more is not what the provider meant to send.
func jsonEnds(dec *json.Decoder) bool {
	_, err := dec.Token()
	return errors.Is(err, io.EOF)
}

func writeJSONError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// writePasswordCheckError answers a password check that failed on this
// side: 503 while the database is unavailable, so the provider's password
// grant can say to try again, else 500.
func writePasswordCheckError(w http.ResponseWriter, err error) {
	if unavailable(err) {
		w.Header().Set("Retry-After", retryAfter)
		writeJSONError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "The password could not be checked; try again shortly.")
		return
	}
	writeJSONError(w, http.StatusInternalServerError, "server_error", "The password could not be checked.")
}
