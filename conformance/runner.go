package conformance

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
)

// Runner runs test plans against one provider.
type Runner struct {
	cfg    *Config
	http   *http.Client
	people []*useragent.User
	// Out receives a line per module variant as it finishes.
	Out io.Writer
	// Modules, when set, limits a run to the modules with these names.
	Modules []string
	// RPListener, when set, serves the runner's relying-party endpoints
	// (otherwise Config.RPListen is listened on, if set).
	RPListener net.Listener
	rp         *rpServer
	// rpServed says the relying-party endpoints are served: on
	// RPListener, or by whoever asked for RPHandler.
	rpServed bool

	meta    *metadata
	rawMeta map[string]any

	keysMu sync.Mutex
	keys   *jose.JSONWebKeySet
}

// metadata is the part of the discovery document the modules use.
type metadata struct {
	Issuer                string   `json:"issuer"`
	AuthorizationEndpoint string   `json:"authorization_endpoint"`
	TokenEndpoint         string   `json:"token_endpoint"`
	UserinfoEndpoint      string   `json:"userinfo_endpoint"`
	JWKSURI               string   `json:"jwks_uri"`
	EndSessionEndpoint    string   `json:"end_session_endpoint"`
	ScopesSupported       []string `json:"scopes_supported"`
	ResponseTypes         []string `json:"response_types_supported"`
	PromptValues          []string `json:"prompt_values_supported"`
	AcrValues             []string `json:"acr_values_supported"`
	RequestObjectAlgs     []string `json:"request_object_signing_alg_values_supported"`
	TokenAuthMethods      []string `json:"token_endpoint_auth_methods_supported"`
	GrantTypes            []string `json:"grant_types_supported"`
}

// New prepares a runner; it reads the provider's discovery document.
// client makes every request, the relying party's and the browser's (nil:
// a default client with a 30-second timeout).
func New(ctx context.Context, cfg *Config, client *http.Client, out io.Writer) (*Runner, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = 8
	}
	if client == nil {
		client = &http.Client{Timeout: 30 * time.Second}
	}
	r := &Runner{cfg: cfg, http: client, people: cfg.people(), Out: out, rp: newRPServer()}
	discovery := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	status, _, body, err := r.get(ctx, discovery)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("discovery %s: status %d", discovery, status)
	}
	if err := json.Unmarshal(body, &r.meta); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", discovery, err)
	}
	if err := json.Unmarshal(body, &r.rawMeta); err != nil {
		return nil, fmt.Errorf("discovery %s: %w", discovery, err)
	}
	if r.meta.AuthorizationEndpoint == "" || r.meta.TokenEndpoint == "" || r.meta.JWKSURI == "" {
		return nil, fmt.Errorf("discovery %s lacks the authorization, token or JWKS endpoint", discovery)
	}
	return r, nil
}

// RPHandler serves the runner's relying-party endpoints, for a caller
// that runs the server itself (a test's TLS server) instead of setting
// RPListener.
func (r *Runner) RPHandler() http.Handler {
	r.rpServed = true
	return r.rp.mux
}

// get fetches a URL as the relying party does.
func (r *Runner) get(ctx context.Context, u string) (int, http.Header, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, nil, nil, err
	}
	return r.do(req)
}

func (r *Runner) do(req *http.Request) (int, http.Header, []byte, error) {
	resp, err := r.http.Do(req)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
	}
	return resp.StatusCode, resp.Header, body, nil
}

// jwks fetches the provider's keys (again when refresh is set).
func (r *Runner) jwks(ctx context.Context, refresh bool) (*jose.JSONWebKeySet, error) {
	r.keysMu.Lock()
	defer r.keysMu.Unlock()
	if r.keys != nil && !refresh {
		return r.keys, nil
	}
	status, _, body, err := r.get(ctx, r.meta.JWKSURI)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("JWKS %s: status %d", r.meta.JWKSURI, status)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", r.meta.JWKSURI, err)
	}
	r.keys = &set
	return r.keys, nil
}

// key finds the public key for a kid and alg, fetching the JWKS again
// once when the kid is unknown (the provider may have rotated).
func (r *Runner) key(ctx context.Context, kid, alg string) (any, bool) {
	for _, refresh := range []bool{false, true} {
		set, err := r.jwks(ctx, refresh)
		if err != nil {
			return nil, false
		}
		for _, k := range set.Keys {
			if (kid == "" || k.KeyID == kid) && (k.Algorithm == "" || k.Algorithm == alg) && k.Use != "enc" {
				return k.Public().Key, true
			}
		}
	}
	return nil, false
}

// run is a sequence of module variants sharing one browser, as a tester
// runs a plan's modules one after the other in one browser.
type run struct {
	plan    string
	variant Variant
	modules []string
	// client names the configured client the modules use when it is not
	// the variant's: "backchannel" or "frontchannel".
	client string
}

// Run runs the named plans (all when none are named) and returns every
// module variant's result in plan order.
func (r *Runner) Run(ctx context.Context, plans ...string) ([]Result, error) {
	var runs []run
	for _, name := range planNames(plans) {
		p, ok := testPlans[name]
		if !ok {
			return nil, fmt.Errorf("unknown test plan %q", name)
		}
		for _, rn := range p {
			if len(r.Modules) > 0 {
				rn.modules = slices.DeleteFunc(slices.Clone(rn.modules), func(m string) bool { return !slices.Contains(r.Modules, m) })
				if len(rn.modules) == 0 {
					continue
				}
			}
			runs = append(runs, rn)
		}
	}
	if r.RPListener == nil && r.cfg.RPListen != "" {
		ln, err := net.Listen("tcp", r.cfg.RPListen)
		if err != nil {
			return nil, fmt.Errorf("relying-party listener: %w", err)
		}
		r.RPListener = ln
	}
	if r.RPListener != nil && !r.rpServed {
		r.rp.serve(ctx, r.RPListener)
		r.rpServed = true
	}
	results := make([][]Result, len(runs))
	sem := make(chan struct{}, r.cfg.Parallel)
	// Runs going at once sign in as different people: the login app
	// takes each TOTP time step of a person once, so two runs signing in
	// as one person at the same moment would refuse each other's codes.
	free := make(chan *useragent.User, len(r.people))
	for _, p := range r.people {
		free <- p
	}
	var wg sync.WaitGroup
	var outMu sync.Mutex
	for i, rn := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			user := <-free
			defer func() { free <- user }()
			ua := useragent.New(r.http, r.cfg.stopPrefixes()...)
			for _, m := range rn.modules {
				res := r.runModule(ctx, rn, m, ua, user)
				results[i] = append(results[i], res)
				if r.Out != nil {
					outMu.Lock()
					fmt.Fprintln(r.Out, res)
					outMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	var out []Result
	for _, rs := range results {
		out = append(out, rs...)
	}
	return out, ctx.Err()
}

// runModule runs one module variant and turns a panic other than a
// module's own stop into a failure, so one broken module cannot end the
// whole run.
func (r *Runner) runModule(ctx context.Context, rn run, module string, ua *useragent.Agent, user *useragent.User) (res Result) {
	t := &T{ctx: ctx, r: r, module: module, v: rn.variant, role: rn.client, ua: ua, user: user}
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(stopModule); !ok {
				t.Fail("Runner", "the module panicked: %v", p)
			}
		}
		for _, f := range t.cleanups {
			f()
		}
		res = t.result(rn.plan)
	}()
	f, ok := moduleFuncs[module]
	if !ok {
		t.Fatal("Runner", "no implementation of %s", module)
	}
	t.configure()
	f(t)
	return
}

// Summary counts results: failures are FAIL; WARN, PASS and SKIP pass.
func Summary(results []Result) (passed, failed int) {
	for _, r := range results {
		if r.Status == Fail {
			failed++
		} else {
			passed++
		}
	}
	return passed, failed
}

// planNames returns the plans to run in a stable order.
func planNames(names []string) []string {
	if len(names) > 0 {
		return names
	}
	for name := range testPlans {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}
