package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ory/fosite"

	"github.com/latchkey-oidc/latchkey/store"
)

// The device authorization grant (RFC 8628). fosite issues the codes and
// answers the device's polls; the provider adds what fosite leaves out
// (notes §2): the verification page's challenge for the login app, the
// user-code check with its throttling, and the link from the user's
// sign-in and consent to the device request.
//
// A device flow in a browser goes: GET verification_uri → device challenge
// (the login app asks for the user code) → device continue → login
// challenge unless the SSO session will do → consent challenge →
// finishDevice, which records the decision the device's next poll finds.

// deviceGrantType is the grant_type of the device's token requests.
const deviceGrantType = "urn:ietf:params:oauth:grant-type:device_code"

// User-code guessing limits (RFC 8628 §5.1). The code space is 20^8; each
// challenge may try a few codes, and all challenges together a bounded
// number per window, so guessing a live code stays improbable. The global
// lock ends by itself and blocks only code entry, never a user's account.
const (
	userCodeTriesPerChallenge = 5
	userCodeGlobalWindow      = 10 * time.Minute
	userCodeGlobalFailures    = 100
	userCodeGlobalLock        = 5 * time.Minute
	userCodeGlobalKey         = "device-user-code:all"
	maxUserCodeLength         = 64
)

// deviceAuthResponse is the device authorization response (RFC 8628 §3.2),
// written by the provider because fosite's carries a stray "Header" key.
type deviceAuthResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	ExpiresIn               int64  `json:"expires_in"`
	Interval                int64  `json:"interval"`
}

// deviceAuthorize is the device authorization endpoint.
func (p *Provider) deviceAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := parseFormBody(r); err != nil {
		p.writeDeviceError(w, r, nil, err)
		return
	}
	if err := copyBasicClientID(r); err != nil {
		p.writeDeviceError(w, r, nil, err)
		return
	}
	req, err := p.oauth.NewDeviceRequest(ctx, r)
	if errors.Is(err, fosite.ErrInvalidGrant) {
		// fosite's answer to a client without the device grant, which
		// RFC 6749 §5.2 calls unauthorized_client.
		err = fosite.ErrUnauthorizedClient.WithHint("The client may not use the device authorization grant.")
	}
	if err != nil {
		p.writeDeviceError(w, r, req, err)
		return
	}
	resp, err := p.oauth.NewDeviceResponse(ctx, req, NewSession())
	if err != nil {
		p.writeDeviceError(w, r, req, err)
		return
	}
	writeJSON(w, http.StatusOK, deviceAuthResponse{
		DeviceCode:              resp.GetDeviceCode(),
		UserCode:                resp.GetUserCode(),
		VerificationURI:         resp.GetVerificationURI(),
		VerificationURIComplete: resp.GetVerificationURIComplete(),
		ExpiresIn:               resp.GetExpiresIn(),
		Interval:                pollIntervalSeconds(p.cfg.DevicePollInterval),
	})
}

// pollIntervalSeconds is the interval the device is told, in whole seconds
// and never below the one the token endpoint enforces (fosite rounds down,
// to 0 for a sub-second interval, which clients read as 5).
func pollIntervalSeconds(d time.Duration) int64 {
	return max(1, int64(math.Ceil(d.Seconds())))
}

// copyBasicClientID puts the client ID of HTTP Basic authentication into
// the form when the body has none: fosite requires it in the body even
// from clients that authenticate with Basic (notes §2.5). fosite still
// authenticates the client; this only copies its name.
func copyBasicClientID(r *http.Request) error {
	if err := r.ParseForm(); err != nil {
		return fosite.ErrInvalidRequest.WithHint("The request body is not a form.").WithWrap(err)
	}
	if r.PostForm.Get("client_id") != "" {
		return nil
	}
	user, _, ok := r.BasicAuth()
	if !ok || user == "" {
		return nil
	}
	// RFC 6749 §2.3.1: the Basic credentials are form-encoded first.
	id, err := url.QueryUnescape(user)
	if err != nil {
		return fosite.ErrInvalidRequest.WithHint("The client ID in the Authorization header is not form-encoded.")
	}
	r.PostForm.Set("client_id", id)
	r.Form.Set("client_id", id)
	return nil
}

// writeDeviceError answers the device authorization endpoint with an RFC
// 6749 §5.2 error; fosite has no writer of its own for it.
func (p *Provider) writeDeviceError(w http.ResponseWriter, r *http.Request, req fosite.DeviceRequester, err error) {
	err = retryable(w, err)
	rfcErr := fosite.ErrorToRFC6749Error(err)
	if rfcErr.CodeField >= 500 {
		p.logFailure(r.Context(), "device authorization", err, "debug", rfcErr.DebugField)
	}
	if req == nil {
		req = fosite.NewDeviceRequest()
	}
	p.oauth.WriteAccessError(r.Context(), w, req, err)
}

// deviceVerification is the verification_uri: it starts a device
// challenge, bound to this browser by a flow cookie, and sends the user to
// the login app to enter (or confirm) the user code.
func (p *Provider) deviceVerification(w http.ResponseWriter, r *http.Request) {
	userCode := strings.TrimSpace(r.URL.Query().Get("user_code"))
	if len(userCode) > maxUserCodeLength {
		userCode = ""
	}
	// The flow's Form holds the verification request's parameters: the
	// user code from verification_uri_complete, shown to the user to
	// confirm, never approved without them.
	fl := &flow{RequestedAt: time.Now().UTC().Truncate(time.Second), Form: url.Values{}}
	if userCode != "" {
		fl.Form.Set("user_code", userCode)
	}
	p.beginFlow(w, fl)
	id, err := p.createChallenge(r.Context(), store.ChallengeDevice, fl)
	if err != nil {
		p.logFailure(r.Context(), "device verification", err)
		p.serverErrorPage(w, err, "Please try again.")
		return
	}
	next := p.cfg.LoginURL + "/device?device_challenge=" + url.QueryEscape(id)
	if userCode != "" {
		next += "&user_code=" + url.QueryEscape(userCode)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// deviceView adds the user code from verification_uri_complete to a device
// challenge's view, to pre-fill the form.
func deviceView(v *ChallengeView, fl *flow) {
	v.UserCode = fl.Form.Get("user_code")
}

// deviceDecision is the result of an accepted device challenge: the device
// request the user's code named.
type deviceDecision struct {
	DeviceSignature   string    `json:"device_signature"`
	ClientID          string    `json:"client_id"`
	RequestedAt       time.Time `json:"requested_at"`
	RequestedScopes   []string  `json:"requested_scope"`
	RequestedAudience []string  `json:"requested_audience,omitempty"`
}

// deviceRejection is the result of a device challenge the provider
// rejected itself because too many wrong codes were entered.
type deviceRejection struct {
	Rejection
	TooManyAttempts bool `json:"too_many_attempts,omitempty"`
}

// userCodeAccept is the body of PUT /admin/device/accept.
type userCodeAccept struct {
	UserCode string `json:"user_code"`
}

// normaliseUserCode makes what a person typed comparable with the code
// issued: upper case, without the spaces and dashes people add.
func normaliseUserCode(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || unicode.IsSpace(r) {
			return -1
		}
		return unicode.ToUpper(r)
	}, s)
}

// adminAcceptDevice checks the user code the login app collected. A wrong,
// expired or used code is 400 invalid_user_code and the challenge stays
// pending, so the login app can ask again; after
// userCodeTriesPerChallenge wrong codes the challenge is rejected.
func (p *Provider) adminAcceptDevice(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	var in userCodeAccept
	if err := readJSON(r, &in); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if _, ok := p.pendingFlow(w, r, challengeDevice); !ok {
		return
	}
	id := r.URL.Query().Get("challenge")
	code := normaliseUserCode(in.UserCode)
	if code == "" {
		writeError(w, http.StatusBadRequest, "invalid_user_code", "Enter the code your device shows.")
		return
	}
	// Every attempt is counted before the code is looked at, on the
	// challenge and then over all challenges, so that concurrent guesses
	// cannot exceed either limit. The global limit counts wrong codes
	// only: a right one is taken back from it, and an attempt it refuses
	// costs the challenge none of its tries.
	chKey := "device-challenge:" + sha256Hex(id)
	attempt, err := p.store.RecordFailure(ctx, chKey, p.cfg.ChallengeLifespan, userCodeTriesPerChallenge+1, p.cfg.ChallengeLifespan)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	if attempt.Failures > userCodeTriesPerChallenge {
		p.rejectGuessedChallenge(w, r, id)
		return
	}
	global, err := p.store.RecordFailure(ctx, userCodeGlobalKey, userCodeGlobalWindow, userCodeGlobalFailures, userCodeGlobalLock)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	if global.Failures > userCodeGlobalFailures && !global.LockedUntil.IsZero() {
		if err := p.store.UndoFailure(ctx, chKey, userCodeTriesPerChallenge+1); err != nil {
			p.adminServerError(w, r, err)
			return
		}
		writeTooManyAttempts(w, global.LockedUntil, "Too many wrong codes were entered recently. Try again later.", "")
		return
	}
	dec, err := p.checkUserCode(ctx, code)
	if errors.Is(err, errBadUserCode) {
		if attempt.Failures >= userCodeTriesPerChallenge {
			p.rejectGuessedChallenge(w, r, id)
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_user_code",
			"The code is wrong, has expired or was used already. Check the code your device shows.")
		return
	}
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	if err := p.store.UndoFailure(ctx, userCodeGlobalKey, userCodeGlobalFailures); err != nil {
		p.adminServerError(w, r, err)
		return
	}
	p.decide(w, r, challengeDevice, store.ChallengeAccepted, dec, "",
		p.urls.deviceContinue+"?device_verifier="+url.QueryEscape(id))
}

// errBadUserCode is a user code that names no device request awaiting a
// decision.
var errBadUserCode = errors.New("unknown, expired or decided user code")

// checkUserCode finds the undecided, unexpired device request of a
// normalised user code.
func (p *Provider) checkUserCode(ctx context.Context, code string) (*deviceDecision, error) {
	if len(code) > maxUserCodeLength {
		return nil, errBadUserCode
	}
	req, sig, err := p.deviceRequestByUserCode(ctx, code)
	if err != nil {
		return nil, err
	}
	return &deviceDecision{
		DeviceSignature:   sig,
		ClientID:          req.GetClient().GetID(),
		RequestedAt:       req.GetRequestedAt().UTC().Truncate(time.Second),
		RequestedScopes:   req.GetRequestedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
	}, nil
}

// deviceRequestByUserCode loads the device request of a normalised user
// code; errBadUserCode when there is none awaiting a decision.
func (p *Provider) deviceRequestByUserCode(ctx context.Context, code string) (*fosite.DeviceRequest, string, error) {
	ucSig, err := p.device.UserCodeSignature(ctx, code)
	if err != nil {
		return nil, "", fmt.Errorf("user code signature: %w", err)
	}
	req, sig, err := p.store.GetDeviceSessionByUserCode(ctx, ucSig, NewSession())
	if errors.Is(err, store.ErrNotFound) {
		// Unknown, used, or its client was deleted.
		return nil, "", errBadUserCode
	}
	if err != nil {
		return nil, "", err
	}
	if p.device.ValidateUserCode(ctx, req, code) != nil || req.GetUserCodeState() != fosite.UserCodeUnused {
		return nil, "", errBadUserCode
	}
	return req, sig, nil
}

// rejectGuessedChallenge ends a challenge on which too many wrong codes
// were entered: the login app sends the user to redirect_to, which says so.
func (p *Provider) rejectGuessedChallenge(w http.ResponseWriter, r *http.Request, id string) {
	rej := deviceRejection{
		Rejection:       Rejection{Error: "access_denied", ErrorDescription: "Too many wrong codes were entered."},
		TooManyAttempts: true,
	}
	b, err := json.Marshal(rej)
	if err != nil {
		p.adminServerError(w, r, err)
		return
	}
	_, err = p.store.DecideChallenge(r.Context(), challengeDevice, id, store.ChallengeRejected, b, "")
	switch {
	case errors.Is(err, store.ErrConflict):
		writeError(w, http.StatusConflict, "conflict", "The challenge was already decided.")
		return
	case errors.Is(err, store.ErrNotFound):
		writeError(w, http.StatusNotFound, "not_found", "No such challenge, or it expired.")
		return
	case err != nil:
		p.adminServerError(w, r, err)
		return
	}
	writeTooManyAttempts(w, time.Time{}, "Too many wrong codes were entered. Start again from your device's instructions.",
		p.urls.deviceContinue+"?device_verifier="+url.QueryEscape(id))
}

// writeTooManyAttempts is the admin API's 429. With redirectTo the
// challenge has ended and the login app should send the user there.
func writeTooManyAttempts(w http.ResponseWriter, until time.Time, description, redirectTo string) {
	if !until.IsZero() {
		secs := max(1, int64(math.Ceil(time.Until(until).Seconds())))
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	writeJSON(w, http.StatusTooManyRequests, struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
		RedirectTo  string `json:"redirect_to,omitempty"`
	}{"too_many_attempts", description, redirectTo})
}

// deviceContinue resumes a device flow after the login app decided the
// device challenge: on to sign-in and consent, or to a page saying no.
func (p *Provider) deviceContinue(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	c, fl, err := p.consumeFlow(r, challengeDevice, r.URL.Query().Get("device_verifier"))
	if err != nil {
		p.writeFlowError(w, r, err, "device sign-in",
			"The device sign-in was already completed or took too long. Start again from your device's instructions.")
		return
	}
	if c.State == store.ChallengeRejected {
		p.endFlow(w, fl)
		var rej deviceRejection
		_ = json.Unmarshal(c.Result, &rej)
		if rej.TooManyAttempts {
			p.errorPage(w, http.StatusForbidden, "Device not connected", "access_denied",
				"Too many wrong codes were entered. Start again from your device's instructions.")
			return
		}
		// The user declined the code verification_uri_complete showed them.
		if code := normaliseUserCode(fl.Form.Get("user_code")); code != "" {
			if req, sig, err := p.deviceRequestByUserCode(ctx, code); err == nil {
				p.rejectDeviceRequest(ctx, sig, req)
			} else if !errors.Is(err, errBadUserCode) {
				p.log.ErrorContext(ctx, "device continue: load device request", "err", err)
			}
		}
		p.deviceDeniedPage(w, rejection(c))
		return
	}
	var dec deviceDecision
	if err := json.Unmarshal(c.Result, &dec); err != nil || dec.DeviceSignature == "" {
		p.endFlow(w, fl)
		p.log.ErrorContext(ctx, "device continue: decode decision", "err", err)
		p.errorPage(w, http.StatusInternalServerError, "Something went wrong", "server_error", "Please try again.")
		return
	}
	// The same flow cookie carries on through sign-in and consent.
	dfl := &flow{
		ID:                fl.ID,
		CSRF:              fl.CSRF,
		DeviceSignature:   dec.DeviceSignature,
		ClientID:          dec.ClientID,
		RequestedAt:       dec.RequestedAt,
		RequestedScopes:   dec.RequestedScopes,
		RequestedAudience: dec.RequestedAudience,
	}
	fc, err := p.store.GetClient(ctx, dec.ClientID)
	if err != nil {
		p.failFlow(w, r, nil, dfl, fosite.ErrInvalidClient.WithHint("The device's application is no longer registered.").WithWrap(err))
		return
	}
	client := fc.(*store.Client)
	ls, err := p.currentSession(r)
	if err != nil {
		p.failFlow(w, r, nil, dfl, fosite.ErrServerError.WithWrap(err))
		return
	}
	// A device request has no prompt, max_age or id_token_hint: an empty
	// authorization request leaves the session's and the client's rules.
	if reason := p.loginNeeded(ctx, fosite.NewAuthorizeRequest(), client, ls); reason != "" {
		if ls != nil {
			dfl.Subject, dfl.SID = ls.Subject, ls.SID
		}
		next, err := p.loginChallengeURL(ctx, dfl)
		if err != nil {
			p.failFlow(w, r, nil, dfl, fosite.ErrServerError.WithWrap(err))
			return
		}
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	dfl.signedIn(ls)
	p.redirectDeviceToConsent(w, r, client, dfl)
}

// redirectDeviceToConsent sends the signed-in user of a device flow to the
// login app's consent step.
func (p *Provider) redirectDeviceToConsent(w http.ResponseWriter, r *http.Request, client *store.Client, fl *flow) {
	ctx := r.Context()
	skip, err := p.consentSkippable(ctx, client, fl, false)
	if err != nil {
		p.failFlow(w, r, nil, fl, fosite.ErrServerError.WithWrap(err))
		return
	}
	fl.Skip = skip
	next, err := p.consentChallengeURL(ctx, fl)
	if err != nil {
		p.failFlow(w, r, nil, fl, fosite.ErrServerError.WithWrap(err))
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// finishDevice records the user's consent on the device request, which
// the device's next poll turns into tokens.
func (p *Provider) finishDevice(w http.ResponseWriter, r *http.Request, fl *flow, ca *ConsentAccept) {
	ctx := r.Context()
	fc, err := p.store.GetClient(ctx, fl.ClientID)
	if err != nil {
		p.failFlow(w, r, nil, fl, fosite.ErrInvalidClient.WithHint("The device's application is no longer registered.").WithWrap(err))
		return
	}
	client := fc.(*store.Client)
	dr, err := p.store.GetDeviceCodeSession(ctx, fl.DeviceSignature, NewSession())
	if errors.Is(err, store.ErrNotFound) {
		p.endFlow(w, fl)
		p.deviceGonePage(w)
		return
	}
	if err != nil {
		p.failFlow(w, r, nil, fl, fosite.ErrServerError.WithWrap(err))
		return
	}
	req, ok := dr.(*fosite.DeviceRequest)
	if !ok {
		p.failFlow(w, r, nil, fl, fosite.ErrServerError.WithDebugf("device request of type %T", dr))
		return
	}
	if req.GetUserCodeState() != fosite.UserCodeUnused || p.device.ValidateUserCode(ctx, req, "") != nil {
		p.endFlow(w, fl)
		p.deviceGonePage(w)
		return
	}
	sess := p.userSession(fl, client, url.Values{}, ca, false)
	// The codes keep the lifetimes they were issued with.
	old := req.GetSession()
	for _, tt := range []fosite.TokenType{fosite.DeviceCode, fosite.UserCode} {
		if t := old.GetExpiresAt(tt); !t.IsZero() {
			sess.SetExpiresAt(tt, t)
		}
	}
	req.SetSession(sess)
	for _, s := range ca.GrantScope {
		req.GrantScope(s)
	}
	for _, a := range ca.GrantAudience {
		req.GrantAudience(a)
	}
	req.SetUserCodeState(fosite.UserCodeAccepted)
	err = p.store.InTx(ctx, func(ctx context.Context) error {
		if err := p.store.DecideDeviceSession(ctx, fl.DeviceSignature, req); err != nil {
			return err
		}
		if !req.GetGrantedScopes().Has("openid") {
			return nil
		}
		// fosite's device token handler issues the ID token from this
		// session, keyed by the device code signature (notes §2.3).
		// Request.Sanitize copies; DeviceRequest.Sanitize would strip
		// req's own form.
		return p.store.CreateOpenIDConnectSession(ctx, fl.DeviceSignature, req.Request.Sanitize(nil))
	})
	if errors.Is(err, store.ErrNotFound) {
		// Decided or used meanwhile, through another browser.
		p.endFlow(w, fl)
		p.deviceGonePage(w)
		return
	}
	if err != nil {
		p.failFlow(w, r, nil, fl, fosite.ErrServerError.WithWrap(err))
		return
	}
	if fl.SID != "" {
		// So that logging out of this session reaches the client.
		if err := p.store.AddSessionClient(ctx, fl.SID, client.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			p.log.ErrorContext(ctx, "device flow: record session client", "err", err)
		}
	}
	p.endFlow(w, fl)
	p.errorPage(w, http.StatusOK, "Device connected", "", "You can return to your device; it will finish signing in by itself.")
}

// failDevice ends a device flow with err. A refusal (the user or the login
// app said no) is recorded so the device's next poll gets access_denied;
// after a server error the request stays undecided and the user may try
// again before it expires.
func (p *Provider) failDevice(w http.ResponseWriter, r *http.Request, fl *flow, err error) {
	ctx := r.Context()
	rfcErr := fosite.ErrorToRFC6749Error(err)
	if rfcErr.CodeField >= 500 {
		p.logFailure(ctx, "device flow", err, "debug", rfcErr.GetDescription()+" "+rfcErr.DebugField)
		p.serverErrorPage(w, err, "Your device was not connected. Please enter its code again.")
		return
	}
	if fl.DeviceSignature != "" {
		dr, lerr := p.store.GetDeviceCodeSession(ctx, fl.DeviceSignature, NewSession())
		if req, ok := dr.(*fosite.DeviceRequest); lerr == nil && ok {
			p.rejectDeviceRequest(ctx, fl.DeviceSignature, req)
		} else if lerr != nil && !errors.Is(lerr, store.ErrNotFound) {
			p.log.ErrorContext(ctx, "device flow: load device request", "err", lerr)
		}
	}
	p.deviceDeniedPage(w, err)
}

// rejectDeviceRequest records that the user refused a device request, if
// it is still undecided.
func (p *Provider) rejectDeviceRequest(ctx context.Context, sig string, req *fosite.DeviceRequest) {
	if req.GetUserCodeState() != fosite.UserCodeUnused {
		return
	}
	req.SetUserCodeState(fosite.UserCodeRejected)
	if err := p.store.DecideDeviceSession(ctx, sig, req); err != nil && !errors.Is(err, store.ErrNotFound) {
		p.log.ErrorContext(ctx, "reject device request", "err", err)
	}
}

func (p *Provider) deviceDeniedPage(w http.ResponseWriter, err error) {
	rfcErr := fosite.ErrorToRFC6749Error(err)
	p.errorPage(w, http.StatusForbidden, "Device not connected", rfcErr.ErrorField,
		"The request to connect your device was declined. Your device has not been signed in.")
}

func (p *Provider) deviceGonePage(w http.ResponseWriter) {
	p.errorPage(w, http.StatusBadRequest, "Device not connected", "expired_token",
		"The device's request was already answered or has expired. Start again from your device.")
}
