package conformance

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/latchkey-oidc/latchkey/conformance/useragent"
	"github.com/latchkey-oidc/latchkey/login/totp"
)

// Config is what the runner needs to test a deployment: where it is, the
// clients an operator registered for the tests, and the people who sign
// in. It is read from JSON (see conformance/README.md).
type Config struct {
	Issuer string `json:"issuer"`
	// Client authenticates with client_secret_basic and may use every
	// response type; Client2 is a second such client (the refresh-token
	// module uses one client's token with the other); ClientSecretPost
	// authenticates with client_secret_post.
	Client           Client `json:"client"`
	Client2          Client `json:"client2"`
	ClientSecretPost Client `json:"client_secret_post"`
	// Users sign in through the login app's pages. Runs going at once
	// sign in as different users, so that users with TOTP are not held up
	// by the rule that a time step is used once: give as many as Parallel
	// (fewer make runs wait for a free user).
	Users []UserConfig `json:"users"`
	// BackchannelClient and FrontchannelClient are the clients of the
	// back- and front-channel logout plans: registered like Client, with
	// a post-logout redirect URI and, respectively, backchannel_logout_uri
	// RPURL+"/backchannel_logout" or a frontchannel_logout_uri, each with
	// *_session_required true.
	BackchannelClient  *Client `json:"backchannel_client,omitempty"`
	FrontchannelClient *Client `json:"frontchannel_client,omitempty"`
	// RPListen is the address the runner's relying-party server listens
	// on (for back-channel logout requests), e.g. "0.0.0.0:9443" behind
	// the URL registered as the back-channel client's logout URI.
	RPListen string `json:"rp_listen,omitempty"`
	// RPURL is the runner's relying-party server as the provider reaches
	// it (https; e.g. "https://rp.example.com:9443"), serving what the
	// dynamic plan's clients register by reference: jwks_uri, request_uri
	// and sector_identifier_uri documents.
	RPURL string `json:"rp_url,omitempty"`
	// RegistrationToken is the initial access token the runner presents
	// at the registration endpoint, when the provider asks for one.
	RegistrationToken string `json:"registration_token,omitempty"`
	// RotateKeys, when set, is how oidcc-server-rotate-keys has the
	// provider rotate its signing keys: a POST to URL with the bearer
	// Token (Latchkey: the admin API's /admin/keys/rotate).
	RotateKeys *RotateKeys `json:"rotate_keys,omitempty"`
	// Parallel is how many module variants run at once (default 8).
	Parallel int `json:"parallel,omitempty"`
	// Insecure allows an http issuer (a loopback test deployment).
	Insecure bool `json:"insecure,omitempty"`
}

// RotateKeys is the operator's key rotation hook.
type RotateKeys struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// Client is a registered client.
type Client struct {
	ID     string `json:"client_id"`
	Secret string `json:"client_secret"`
	// RedirectURI is registered for the client; nothing needs to listen
	// there: the runner's browser stops at the redirect.
	RedirectURI string `json:"redirect_uri"`
	// PostLogoutRedirectURI is registered in post_logout_redirect_uris.
	PostLogoutRedirectURI string `json:"post_logout_redirect_uri,omitempty"`
	// FrontchannelLogoutURI is the registered frontchannel_logout_uri.
	FrontchannelLogoutURI string `json:"frontchannel_logout_uri,omitempty"`

	// dynamic is set for a client the runner registered itself.
	dynamic *dynamicClient
}

// UserConfig is a person's credentials; TOTPSecret is the base32 seed of
// their authenticator app, if they have one.
type UserConfig struct {
	Username   string `json:"username"`
	Password   string `json:"password"`
	TOTPSecret string `json:"totp_secret,omitempty"`
}

// ReadConfig reads a configuration file.
func ReadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("read configuration %s: %w", path, err)
	}
	return &c, c.validate()
}

func (c *Config) validate() error {
	u, err := url.Parse(c.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && !(c.Insecure && u.Scheme == "http")) {
		return fmt.Errorf("issuer %q must be an https URL (or http with \"insecure\": true)", c.Issuer)
	}
	for name, cl := range map[string]Client{"client": c.Client, "client2": c.Client2, "client_secret_post": c.ClientSecretPost} {
		if cl.ID == "" || cl.Secret == "" || cl.RedirectURI == "" {
			return fmt.Errorf("%s needs client_id, client_secret and redirect_uri", name)
		}
	}
	if c.RPURL != "" {
		if u, err := url.Parse(c.RPURL); err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("rp_url %q must be an https URL", c.RPURL)
		}
	}
	if len(c.Users) == 0 {
		return errors.New("no users: the runner signs in through the login app")
	}
	for _, u := range c.Users {
		if u.Username == "" || u.Password == "" {
			return errors.New("every user needs a username and a password")
		}
		if u.TOTPSecret != "" {
			if _, err := totp.ParseSecret(u.TOTPSecret); err != nil {
				return fmt.Errorf("user %s: %w", u.Username, err)
			}
		}
	}
	return nil
}

// people turns the configured users into the browser's users, each with
// one authenticator shared by every module that signs them in.
func (c *Config) people() []*useragent.User {
	out := make([]*useragent.User, len(c.Users))
	for i, u := range c.Users {
		out[i] = &useragent.User{Username: u.Username, Password: u.Password}
		if u.TOTPSecret != "" {
			seed, _ := totp.ParseSecret(u.TOTPSecret)
			out[i].Authenticator = useragent.NewAuthenticator(seed)
		}
	}
	return out
}

// stopPrefixes are the URLs the runner's browsers stop at: every client's
// redirect and post-logout redirect URIs.
func (c *Config) stopPrefixes() []string {
	var out []string
	for _, cl := range c.clients() {
		for _, u := range []string{cl.RedirectURI, cl.PostLogoutRedirectURI} {
			if u != "" {
				out = append(out, origin(u))
			}
		}
	}
	return append(out, origin(dynamicRedirectURI))
}

// clients lists every configured client.
func (c *Config) clients() []Client {
	out := []Client{c.Client, c.Client2, c.ClientSecretPost}
	for _, cl := range []*Client{c.BackchannelClient, c.FrontchannelClient} {
		if cl != nil {
			out = append(out, *cl)
		}
	}
	return out
}

// origin returns the scheme and host of u with a slash, so that a browser
// stops at any path of a relying party, including a wrong one the
// provider should have refused to redirect to.
func origin(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return u
	}
	return strings.TrimSuffix(p.Scheme+"://"+p.Host, "/") + "/"
}
