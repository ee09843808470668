// Package useragent is a scripted browser for OpenID Connect flows: an HTTP
// client that keeps cookies, follows redirects one at a time, reads the
// HTML forms of each page and submits them, and stops when the provider
// sends it to a relying party. It drives Latchkey's login app through the
// same pages a person sees (sign-in, second factor, consent, device code,
// logout), so the conformance runner and the relying-party tests exercise
// no back door.
package useragent

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// maxRedirects bounds a chain of redirects, as browsers do.
const maxRedirects = 20

// maxBody bounds the page bodies read into memory.
const maxBody = 4 << 20

// Page is where the agent stopped: an HTML page (or any non-redirect
// answer), or a redirect to one of the Stop prefixes, which is not followed.
type Page struct {
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
	// Redirect is set when the agent stopped at a redirect to a relying
	// party; URL is then the Location.
	Redirect bool
}

// Agent is one browser: one cookie jar and the last page it saw.
type Agent struct {
	client *http.Client
	// Stop lists URL prefixes the agent does not follow redirects into:
	// the relying parties' redirect and post-logout URIs.
	Stop []string
	// Page is the last page.
	Page *Page
}

// New returns an agent with an empty cookie jar that stops at the given
// URL prefixes. client may be nil; its Jar and CheckRedirect are replaced.
func New(client *http.Client, stop ...string) *Agent {
	c := &http.Client{Timeout: 30 * time.Second}
	if client != nil {
		copied := *client
		c = &copied
	}
	c.Jar, _ = cookiejar.New(nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Agent{client: c, Stop: stop}
}

// Get opens u.
func (a *Agent) Get(ctx context.Context, u string) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("open %q: %w", u, err)
	}
	return a.Do(req)
}

// Navigate goes to u as a page's link or refresh does: a URL under a Stop
// prefix is not loaded, the agent stops there as at a redirect.
func (a *Agent) Navigate(ctx context.Context, u string) (*Page, error) {
	if a.stopsAt(u) {
		target, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("navigate to %q: %w", u, err)
		}
		a.Page = &Page{URL: target, Status: http.StatusSeeOther, Header: http.Header{}, Redirect: true}
		return a.Page, nil
	}
	return a.Get(ctx, u)
}

// PostForm posts fields to action as a browser submits a form.
func (a *Agent) PostForm(ctx context.Context, action string, fields url.Values) (*Page, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, action, strings.NewReader(fields.Encode()))
	if err != nil {
		return nil, fmt.Errorf("post to %q: %w", action, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return a.Do(req)
}

// Do sends req and follows redirects until a page or a Stop prefix.
func (a *Agent) Do(req *http.Request) (*Page, error) {
	for range maxRedirects {
		if req.Method == http.MethodPost {
			// A browser says where a form post comes from; Latchkey's
			// cross-origin protection reads it.
			req.Header.Set("Sec-Fetch-Site", "same-origin")
		}
		resp, err := a.client.Do(req)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Redacted(), err)
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("%s %s: read body: %w", req.Method, req.URL.Redacted(), err)
		}
		loc := resp.Header.Get("Location")
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
			next, err := req.URL.Parse(loc)
			if err != nil {
				return nil, fmt.Errorf("%s %s: bad Location %q: %w", req.Method, req.URL.Redacted(), loc, err)
			}
			if a.stopsAt(next.String()) {
				a.Page = &Page{URL: next, Status: resp.StatusCode, Header: resp.Header, Redirect: true}
				return a.Page, nil
			}
			req, err = http.NewRequestWithContext(req.Context(), http.MethodGet, next.String(), nil)
			if err != nil {
				return nil, err
			}
			continue
		}
		a.Page = &Page{URL: req.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(body)}
		return a.Page, nil
	}
	return nil, errors.New("too many redirects")
}

func (a *Agent) stopsAt(u string) bool {
	for _, p := range a.Stop {
		if strings.HasPrefix(u, p) {
			return true
		}
	}
	return false
}

// Form is an HTML form of a page.
type Form struct {
	ID     string
	Method string // upper case; GET when the page does not say
	Action string // absolute
	// Fields holds every named input, select and textarea with its value
	// (checkboxes and radios only when checked).
	Fields url.Values
}

var (
	formRe     = regexp.MustCompile(`(?is)<form\b[^>]*>.*?</form>`)
	inputRe    = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	textareaRe = regexp.MustCompile(`(?is)<textarea\b([^>]*)>(.*?)</textarea>`)
	attrRe     = regexp.MustCompile(`(?is)([a-z_:-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))`)
	boolAttrRe = regexp.MustCompile(`(?is)\schecked\b`)
)

// Forms lists the forms of the page.
func (p *Page) Forms() []Form {
	var out []Form
	for _, f := range formRe.FindAllString(p.Body, -1) {
		open := f[:strings.Index(f, ">")+1]
		attrs := Attributes(open)
		method := strings.ToUpper(attrs["method"])
		if method == "" {
			method = http.MethodGet
		}
		action := p.URL.String()
		if attrs["action"] != "" {
			if u, err := p.URL.Parse(attrs["action"]); err == nil {
				action = u.String()
			}
		}
		fields := url.Values{}
		for _, in := range inputRe.FindAllString(f, -1) {
			a := Attributes(in)
			if a["name"] == "" {
				continue
			}
			switch strings.ToLower(a["type"]) {
			case "checkbox", "radio":
				if !boolAttrRe.MatchString(in) {
					continue
				}
				if _, ok := a["value"]; !ok {
					a["value"] = "on"
				}
			case "submit", "button", "image", "reset":
				continue
			}
			fields.Add(a["name"], a["value"])
		}
		for _, m := range textareaRe.FindAllStringSubmatch(f, -1) {
			if name := Attributes(m[1])["name"]; name != "" {
				fields.Add(name, html.UnescapeString(m[2]))
			}
		}
		out = append(out, Form{ID: attrs["id"], Method: method, Action: action, Fields: fields})
	}
	return out
}

// Form returns the form with the given id.
func (p *Page) Form(id string) (Form, bool) {
	for _, f := range p.Forms() {
		if f.ID == id {
			return f, true
		}
	}
	return Form{}, false
}

// Has reports whether the page's text contains s.
func (p *Page) Has(s string) bool { return strings.Contains(html.UnescapeString(p.Body), s) }

// Attributes parses the attributes of an HTML start tag.
func Attributes(tag string) map[string]string {
	out := map[string]string{}
	for _, m := range attrRe.FindAllStringSubmatch(tag, -1) {
		v := m[2] + m[3] + m[4]
		out[strings.ToLower(m[1])] = html.UnescapeString(v)
	}
	return out
}

// Submit submits the form with id on the current page with its fields and
// the given values set.
func (a *Agent) Submit(ctx context.Context, id string, values map[string]string) (*Page, error) {
	if a.Page == nil {
		return nil, errors.New("no page open")
	}
	f, ok := a.Page.Form(id)
	if !ok {
		return nil, fmt.Errorf("no form %q on %s (status %d)", id, a.Page.URL.Redacted(), a.Page.Status)
	}
	for k, v := range values {
		f.Fields.Set(k, v)
	}
	if f.Method == http.MethodGet {
		u, err := url.Parse(f.Action)
		if err != nil {
			return nil, err
		}
		u.RawQuery = f.Fields.Encode()
		return a.Get(ctx, u.String())
	}
	return a.PostForm(ctx, f.Action, f.Fields)
}

// Cookies returns the cookies the agent would send to u.
func (a *Agent) Cookies(u *url.URL) []*http.Cookie { return a.client.Jar.Cookies(u) }

// ForgetCookies empties the cookie jar, as closing a private window does.
func (a *Agent) ForgetCookies() { a.client.Jar, _ = cookiejar.New(nil) }

var (
	iframeRe = regexp.MustCompile(`(?is)<iframe\b[^>]*>`)
	metaRe   = regexp.MustCompile(`(?is)<meta\b[^>]*>`)
	anchorRe = regexp.MustCompile(`(?is)<a\b[^>]*>`)
)

// Frames returns the absolute URLs of the page's iframes, which a browser
// would load.
func (p *Page) Frames() []string { return p.urls(iframeRe, "src") }

// Links returns the absolute URLs of the page's links.
func (p *Page) Links() []string { return p.urls(anchorRe, "href") }

func (p *Page) urls(tag *regexp.Regexp, attr string) []string {
	var out []string
	for _, t := range tag.FindAllString(p.Body, -1) {
		if v := Attributes(t)[attr]; v != "" {
			if u, err := p.URL.Parse(v); err == nil {
				out = append(out, u.String())
			}
		}
	}
	return out
}

// Refresh returns the URL of the page's <meta http-equiv="refresh">, if
// it has one.
func (p *Page) Refresh() string {
	for _, t := range metaRe.FindAllString(p.Body, -1) {
		a := Attributes(t)
		if !strings.EqualFold(a["http-equiv"], "refresh") {
			continue
		}
		_, target, ok := strings.Cut(a["content"], "=")
		if !ok || !strings.Contains(strings.ToLower(a["content"]), "url") {
			continue
		}
		if u, err := p.URL.Parse(strings.Trim(strings.TrimSpace(target), `'"`)); err == nil {
			return u.String()
		}
	}
	return ""
}
