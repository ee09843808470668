package conformance

import (
	"context"
	"fmt"
	"strings"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// Status is a module's outcome, with the suite's meaning: FAIL when a
// condition the suite runs as a FAILURE failed, WARN when only WARNING
// conditions did, SKIP when the module cannot apply (with the reason).
type Status string

const (
	Pass Status = "PASS"
	Warn Status = "WARN"
	Fail Status = "FAIL"
	Skip Status = "SKIP"
)

// Variant is a module's configuration, as the suite names it.
type Variant struct {
	ResponseType string // "code", "id_token", "code id_token", ...
	ResponseMode string // "default" or "form_post"
	ClientAuth   string // "client_secret_basic", "client_secret_post" or "private_key_jwt"
	// Dynamic says the modules register their own clients
	// (ClientRegistration dynamic_client) instead of using the
	// configured ones (static_client).
	Dynamic bool
}

func (v Variant) String() string {
	s := fmt.Sprintf("%s/%s/%s", strings.ReplaceAll(v.ResponseType, " ", "+"), v.ClientAuth, v.ResponseMode)
	if v.Dynamic {
		s += "/dynamic_client"
	}
	return s
}

// Result is one module variant's outcome.
type Result struct {
	Plan    string
	Module  string
	Variant Variant
	Status  Status
	// Notes are the failed and warned conditions, or the skip reason.
	Notes []string
}

func (r Result) String() string {
	s := fmt.Sprintf("%-4s %s %s [%s]", r.Status, r.Plan, r.Module, r.Variant)
	if len(r.Notes) > 0 {
		s += " — " + strings.Join(r.Notes, "; ")
	}
	return s
}

// stopModule ends a module early; the runner recovers it.
type stopModule struct{}

// T is one running module variant: the conditions it checked and the
// browser it drives.
type T struct {
	ctx    context.Context
	r      *Runner
	module string
	v      Variant
	// role is the run's client when not the variant's (run.client).
	role string
	// ua is the tester's browser: modules of one run share it, so a
	// module finds the session an earlier one left, as in the suite.
	ua   *useragent.Agent
	user *useragent.User

	// dyn is the client the module registered (dynamic variants).
	dyn *Client
	// cleanups run when the module ends (deleting registered clients).
	cleanups []func()
	// unsignedIDTokens accepts ID tokens with alg none (the client
	// registered it); signedUserinfo expects userinfo as a JWT.
	unsignedIDTokens, signedUserinfo bool

	failures []string
	warnings []string
	skipped  string
}

// Fail records a failed FAILURE condition and goes on.
func (t *T) Fail(condition, format string, args ...any) {
	t.failures = append(t.failures, condition+": "+fmt.Sprintf(format, args...))
}

// Fatal records a failed condition that ends the module.
func (t *T) Fatal(condition, format string, args ...any) {
	t.Fail(condition, format, args...)
	panic(stopModule{})
}

// Warn records a failed WARNING condition.
func (t *T) Warn(condition, format string, args ...any) {
	t.warnings = append(t.warnings, condition+": "+fmt.Sprintf(format, args...))
}

// Skip ends the module as skipped.
func (t *T) Skip(format string, args ...any) {
	t.skipped = fmt.Sprintf(format, args...)
	panic(stopModule{})
}

// Check records a FAILURE unless ok.
func (t *T) Check(ok bool, condition, format string, args ...any) bool {
	if !ok {
		t.Fail(condition, format, args...)
	}
	return ok
}

func (t *T) result(plan string) Result {
	res := Result{Plan: plan, Module: t.module, Variant: t.v, Status: Pass}
	switch {
	case len(t.failures) > 0:
		res.Status, res.Notes = Fail, append(t.failures, t.warnings...)
	case t.skipped != "":
		res.Status, res.Notes = Skip, []string{t.skipped}
	case len(t.warnings) > 0:
		res.Status, res.Notes = Warn, t.warnings
	}
	return res
}

// client returns the run's client: in a dynamic variant the one the module
// registered (the suite's standard registration unless the module made its
// own first), else the back- or front-channel logout client for those
// plans, else the client of the variant's authentication method.
func (t *T) client() Client {
	if t.v.Dynamic {
		if t.dyn == nil {
			t.useRegistered(t.newRegistration())
		}
		return *t.dyn
	}
	var c *Client
	switch t.role {
	case "backchannel":
		c = t.r.cfg.BackchannelClient
	case "frontchannel":
		c = t.r.cfg.FrontchannelClient
	default:
		if t.v.ClientAuth == "client_secret_post" {
			return t.r.cfg.ClientSecretPost
		}
		return t.r.cfg.Client
	}
	if c == nil {
		t.Skip("the configuration has no %s_client", t.role)
	}
	return *c
}

// client2 returns a second client like the first (AbstractOIDCCMultipleClient):
// the configured client2, or in a dynamic variant a second registration
// made by reg.
func (t *T) client2(reg func() *registration) Client {
	if t.v.Dynamic {
		return t.register(reg())
	}
	return t.r.cfg.Client2
}
