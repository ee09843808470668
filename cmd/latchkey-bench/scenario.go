package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// scenario is one kind of load: how to set it up and what its workers do.
type scenario struct {
	name string
	// workers is the concurrency when --concurrency is not given.
	workers int
	// needsUser marks scenarios that sign in through the login app.
	needsUser bool
	// note says what the figures measure, when the name does not.
	note string
	// setUp registers what the scenario needs and returns n workers.
	setUp func(ctx context.Context, e *env, n int) ([]worker, error)
}

// scenarios are every scenario, in the order "all" runs them.
var scenarios = []scenario{
	{
		name: "client_credentials", workers: 64, setUp: setUpClientCredentials,
		note: "token endpoint, client_credentials grant, client_secret_basic, opaque access tokens",
	},
	{
		name: "client_credentials_jwt", workers: 64, setUp: setUpClientCredentialsJWT,
		note: "token endpoint, client_credentials grant, client_secret_basic, JWT access tokens (--jwt-metadata)",
	},
	{
		name: "client_credentials_jwt_rs256", workers: 64, setUp: setUpClientCredentialsJWTRS256,
		note: "token endpoint, client_credentials grant, client_secret_basic, JWT access tokens signed with RS256",
	},
	{
		name: "introspection", workers: 64, setUp: setUpIntrospection,
		note: "introspection endpoint: each worker introspects its own client's opaque access token (client_secret_basic)",
	},
	{
		name: "refresh", workers: 8, needsUser: true, setUp: setUpRefresh,
		note: "token endpoint, refresh_token grant with rotation: each worker refreshes with the token the previous answer returned",
	},
	{
		name: "authorization_code", workers: 8, needsUser: true, setUp: setUpAuthorizationCode,
		note: "one sample is a whole flow in a new browser: authorize with PKCE, the login app's sign-in (and consent) forms, " +
			"the redirect, the code exchanged at the token endpoint",
	},
	{
		name: "device", workers: 64, setUp: setUpDevice,
		note: "measures the device grant's polling path: authorization_pending and slow_down are the expected answers; " +
			"the workers ignore the poll interval on purpose, so most answers are slow_down",
	},
}

func scenarioNamed(name string) (scenario, bool) {
	for _, s := range scenarios {
		if s.name == name {
			return s, true
		}
	}
	return scenario{}, false
}

// errUnsupported marks a scenario the provider cannot serve (yet): it is
// reported, and does not fail the whole run alone.
var errUnsupported = errors.New("not supported by this provider")

// env is what the set-ups share.
type env struct {
	t *target
	// users sign in to the login app (the first alone for the refresh
	// set-up); none without --username.
	users []*useragent.User
	// override replaces the clients the set-ups would register.
	override *client
	// redirectURI is the code flows' redirect URI; nothing listens there
	// and the tool never connects to it.
	redirectURI string
	// jwtMetadata is added to the client_credentials_jwt client's metadata.
	jwtMetadata map[string]any
}

// clientFor returns the --client-id client, or registers one with meta.
func (e *env) clientFor(ctx context.Context, meta map[string]any) (client, error) {
	if e.override != nil {
		return *e.override, nil
	}
	c, err := e.t.createClient(ctx, meta)
	if err != nil {
		return client{}, err
	}
	return c, nil
}

// needUser reports a scenario that signs in without a user to sign in as.
func (e *env) needUser() error {
	if len(e.users) == 0 {
		return fmt.Errorf("needs a user of the login app: give --username and --password (create one with \"latchkey users create\")")
	}
	return nil
}
