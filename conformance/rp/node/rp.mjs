// rp.mjs is a relying party — an application that signs people in with
// Latchkey — written with openid-client or, for its stricter checks, with
// oauth4webapi directly. The Go test conformance/rp/node_test.go starts it
// and plays the person's browser; this process plays the application.
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on
// stdout, in order. A request is {"op": NAME, ...arguments}; a failed
// operation answers {"error": MESSAGE, ...} with the library's message and,
// when the library says, its code and the OAuth error. Nothing else is ever
// written to stdout.
//
// One process is one relying party: "discover" chooses the library, the
// client and its response type; the other operations use them. What a
// real application keeps in the person's session between the redirect to
// the provider and the callback (state, nonce, PKCE verifier) is kept here
// between "authorize" and "callback".
import { createInterface } from 'node:readline'
import * as client from 'openid-client'
import * as oauth from 'oauth4webapi'

const OPENID_CLIENT = 'openid-client'
const OAUTH4WEBAPI = 'oauth4webapi'

// The relying party "discover" configured.
let rp = null
// The authorization request in flight: state, nonce, PKCE verifier,
// max_age. Unlike a real application's session it outlives the callback,
// so that the test can replay a response and see the provider refuse it.
let pending = null
// The device authorization response "device_start" got.
let device = null

const ops = {
  discover,
  authorize,
  callback,
  userinfo,
  refresh,
  device_start: deviceStart,
  device_poll: devicePoll,
  client_credentials: clientCredentials,
  introspect,
  revoke,
  end_session: endSession,
}

// discover {issuer, client_id, client_secret?, redirect_uri?, lib?,
// response_type?} reads the provider's discovery document and configures
// the client: lib is "openid-client" (the default) or "oauth4webapi";
// response_type is "code" (the default), "code id_token" or "id_token"; a
// client without client_secret is public.
async function discover(req) {
  const lib = req.lib ?? OPENID_CLIENT
  const responseType = req.response_type ?? 'code'
  const issuer = new URL(req.issuer)
  // Latchkey runs on plain http on 127.0.0.1 in the tests; both libraries
  // refuse http unless told otherwise. This is the only reason the
  // insecure-request switches below are set, and only for an http issuer.
  const plainHTTP = issuer.protocol === 'http:'
  const next = { lib, responseType, redirectURI: req.redirect_uri, plainHTTP }

  if (lib === OPENID_CLIENT) {
    const auth = req.client_secret ? client.ClientSecretBasic(req.client_secret) : client.None()
    const execute = []
    if (plainHTTP) {
      execute.push(client.allowInsecureRequests)
    }
    // Check the signature of ID tokens from the token endpoint too, not
    // only of those in authorization responses.
    execute.push(client.enableNonRepudiationChecks)
    if (responseType === 'code id_token') {
      execute.push(client.useCodeIdTokenResponseType)
    } else if (responseType === 'id_token') {
      execute.push(client.useIdTokenResponseType)
    } else if (responseType !== 'code') {
      throw new Error(`openid-client has no response_type ${responseType}`)
    }
    next.config = await client.discovery(issuer, req.client_id, undefined, auth, { execute })
    next.as = next.config.serverMetadata()
  } else if (lib === OAUTH4WEBAPI) {
    if (responseType !== 'code') {
      throw new Error(`this relying party uses oauth4webapi for response_type=code only, not ${responseType}`)
    }
    const response = await oauth.discoveryRequest(issuer, {
      algorithm: 'oidc',
      [oauth.allowInsecureRequests]: plainHTTP,
    })
    next.as = await oauth.processDiscoveryResponse(issuer, response)
    next.client = { client_id: req.client_id }
    next.auth = req.client_secret ? oauth.ClientSecretBasic(req.client_secret) : oauth.None()
  } else {
    throw new Error(`unknown library ${lib}`)
  }
  rp = next
  pending = null
  device = null
  return {
    issuer: rp.as.issuer,
    authorization_endpoint: rp.as.authorization_endpoint,
    token_endpoint: rp.as.token_endpoint,
    authorization_response_iss_parameter_supported: rp.as.authorization_response_iss_parameter_supported ?? false,
  }
}

// authorize {scope, response_mode?, prompt?, max_age?} builds the
// authorization request the browser is sent to, with a fresh state and
// nonce and, for the response types with a code, PKCE S256.
async function authorize(req) {
  const r = need()
  const state = oauth.generateRandomState()
  const nonce = oauth.generateRandomNonce()
  const params = {
    redirect_uri: r.redirectURI,
    scope: req.scope ?? 'openid',
    state,
    nonce,
  }
  let verifier
  if (r.responseType.includes('code')) {
    verifier = oauth.generateRandomCodeVerifier()
    params.code_challenge = await oauth.calculatePKCECodeChallenge(verifier)
    params.code_challenge_method = 'S256'
  }
  for (const name of ['response_mode', 'prompt', 'max_age']) {
    if (req[name] !== undefined) {
      params[name] = String(req[name])
    }
  }
  let url
  if (r.lib === OPENID_CLIENT) {
    // openid-client sets client_id and the response_type it was
    // configured for.
    url = client.buildAuthorizationUrl(r.config, params)
  } else {
    url = new URL(r.as.authorization_endpoint)
    url.searchParams.set('client_id', r.client.client_id)
    url.searchParams.set('response_type', 'code')
    for (const [k, v] of Object.entries(params)) {
      url.searchParams.set(k, v)
    }
  }
  pending = { state, nonce, verifier, maxAge: req.max_age }
  return { url: url.href }
}

// callback {url, form?} is the browser arriving at the redirect URI: url is
// where it was redirected to (query or fragment), or, for form_post, the
// form's action with form holding the posted fields. It validates the
// authorization response, redeems the code and validates the ID tokens;
// the answer is the token response with the validated ID token claims.
async function callback(req) {
  const r = need()
  if (!pending) {
    throw new Error('no authorization request in flight')
  }
  if (r.lib === OPENID_CLIENT) {
    // openid-client reads a form_post response from the POST request the
    // browser made, as an application's web framework hands it over.
    const input = req.form
      ? new Request(req.url, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams(req.form),
        })
      : new URL(req.url)
    if (r.responseType === 'id_token') {
      const claims = await client.implicitAuthentication(r.config, input, pending.nonce, {
        expectedState: pending.state,
        maxAge: pending.maxAge,
      })
      return { claims }
    }
    const tokens = await client.authorizationCodeGrant(r.config, input, {
      pkceCodeVerifier: pending.verifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      maxAge: pending.maxAge,
    })
    return tokenAnswer(tokens)
  }

  // oauth4webapi, response_type=code.
  const params = req.form ? new URLSearchParams(req.form) : new URL(req.url).searchParams
  // Checks state and, because discovery says the provider supports it,
  // that the RFC 9207 iss parameter is there and names the issuer.
  const callbackParams = oauth.validateAuthResponse(r.as, r.client, params, pending.state)
  const response = await oauth.authorizationCodeGrantRequest(
    r.as, r.client, r.auth, callbackParams, r.redirectURI, pending.verifier, requestOptions(),
  )
  const tokens = await oauth.processAuthorizationCodeResponse(r.as, r.client, response, {
    expectedNonce: pending.nonce,
    maxAge: pending.maxAge,
    requireIdToken: true,
  })
  await oauth.validateApplicationLevelSignature(r.as, response, requestOptions())
  return tokenAnswer(tokens, oauth.getValidatedIdTokenClaims(tokens))
}

// userinfo {access_token, sub} calls the userinfo endpoint; the library
// checks the answer's sub is the expected one.
async function userinfo(req) {
  const r = need()
  if (r.lib === OPENID_CLIENT) {
    return client.fetchUserInfo(r.config, req.access_token, req.sub)
  }
  const response = await oauth.userInfoRequest(r.as, r.client, req.access_token, requestOptions())
  return oauth.processUserInfoResponse(r.as, r.client, req.sub, response)
}

// refresh {refresh_token} redeems a refresh token.
async function refresh(req) {
  const r = need()
  if (r.lib === OPENID_CLIENT) {
    return tokenAnswer(await client.refreshTokenGrant(r.config, req.refresh_token))
  }
  const response = await oauth.refreshTokenGrantRequest(r.as, r.client, r.auth, req.refresh_token, requestOptions())
  const tokens = await oauth.processRefreshTokenResponse(r.as, r.client, response)
  return tokenAnswer(tokens, oauth.getValidatedIdTokenClaims(tokens))
}

// device_start {scope} starts a device authorization (RFC 8628) and
// answers with what the device shows the person.
async function deviceStart(req) {
  const r = needOpenIDClient('the device grant')
  device = await client.initiateDeviceAuthorization(r.config, { scope: req.scope ?? 'openid' })
  return {
    user_code: device.user_code,
    verification_uri: device.verification_uri,
    verification_uri_complete: device.verification_uri_complete,
    expires_in: device.expires_in,
    interval: device.interval,
  }
}

// device_poll {} polls the token endpoint at the interval the provider
// asked for until the person has approved (or refused) the device, and
// answers with the tokens. The Go test sends it and then plays the person.
async function devicePoll() {
  const r = needOpenIDClient('the device grant')
  if (!device) {
    throw new Error('no device authorization in flight')
  }
  return tokenAnswer(await client.pollDeviceAuthorizationGrant(r.config, device))
}

// client_credentials {scope?} gets a token for the client itself.
async function clientCredentials(req) {
  const r = needOpenIDClient('the client credentials grant')
  const params = req.scope ? { scope: req.scope } : {}
  return tokenAnswer(await client.clientCredentialsGrant(r.config, params))
}

// introspect {token, token_type_hint?} asks the introspection endpoint
// (RFC 7662) about a token.
async function introspect(req) {
  const r = need()
  const params = hint(req)
  if (r.lib === OPENID_CLIENT) {
    return client.tokenIntrospection(r.config, req.token, params)
  }
  const response = await oauth.introspectionRequest(r.as, r.client, r.auth, req.token, {
    ...requestOptions(),
    additionalParameters: params,
  })
  return oauth.processIntrospectionResponse(r.as, r.client, response)
}

// revoke {token, token_type_hint?} revokes a token (RFC 7009).
async function revoke(req) {
  const r = need()
  const params = hint(req)
  if (r.lib === OPENID_CLIENT) {
    await client.tokenRevocation(r.config, req.token, params)
    return {}
  }
  const response = await oauth.revocationRequest(r.as, r.client, r.auth, req.token, {
    ...requestOptions(),
    additionalParameters: params,
  })
  await oauth.processRevocationResponse(response)
  return {}
}

// end_session {id_token_hint?, post_logout_redirect_uri?, state?} builds
// the RP-initiated logout URL the browser is sent to.
async function endSession(req) {
  const r = needOpenIDClient('RP-initiated logout')
  const params = {}
  for (const name of ['id_token_hint', 'post_logout_redirect_uri', 'state']) {
    if (req[name] !== undefined) {
      params[name] = req[name]
    }
  }
  return { url: client.buildEndSessionUrl(r.config, params).href }
}

function need() {
  if (!rp) {
    throw new Error('no relying party: send "discover" first')
  }
  return rp
}

function needOpenIDClient(what) {
  const r = need()
  if (r.lib !== OPENID_CLIENT) {
    throw new Error(`this relying party does ${what} with openid-client only`)
  }
  return r
}

function requestOptions() {
  return { [oauth.allowInsecureRequests]: rp.plainHTTP }
}

function hint(req) {
  return req.token_type_hint ? { token_type_hint: req.token_type_hint } : {}
}

// tokenAnswer is a token endpoint response with the ID token's validated
// claims.
function tokenAnswer(tokens, claims = tokens.claims?.()) {
  const out = {}
  for (const name of ['access_token', 'token_type', 'expires_in', 'refresh_token', 'id_token', 'scope']) {
    if (tokens[name] !== undefined) {
      out[name] = tokens[name]
    }
  }
  if (claims) {
    out.claims = claims
  }
  return out
}

// errorAnswer reports a failure with the library's words: its message and
// those of the errors it wraps, its code, and the OAuth error the provider
// sent when there was one.
function errorAnswer(err) {
  const messages = []
  for (let e = err; e instanceof Error && messages.length < 5; e = e.cause) {
    messages.push(e.message)
  }
  const out = { error: messages.join(': ') || String(err) }
  if (typeof err?.code === 'string') {
    out.code = err.code
  }
  if (typeof err?.error === 'string') {
    out.oauth_error = err.error
  }
  if (typeof err?.error_description === 'string') {
    out.oauth_error_description = err.error_description
  }
  if (typeof err?.status === 'number') {
    out.status = err.status
  }
  return out
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (line.trim() === '') {
    continue
  }
  let answer
  try {
    const req = JSON.parse(line)
    const op = ops[req.op]
    if (!op) {
      throw new Error(`unknown op ${JSON.stringify(req.op)}`)
    }
    answer = await op(req)
  } catch (err) {
    answer = errorAnswer(err)
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}
