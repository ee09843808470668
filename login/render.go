package login

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"

	"golang.org/x/text/language"
)

// pages renders the login app's HTML. Every page is a template in
// templates/ that fills the "content" block of templates/layout.html.
type pages struct {
	product string
	base    string // absolute URL of the app, for links and assets
	byName  map[string]*template.Template
}

func loadPages(product, base string) (*pages, error) {
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, fmt.Errorf("login templates: %w", err)
	}
	p := &pages{product: product, base: base, byName: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"url":   func(s string) string { return base + s },
		"scope": scopeDescription,
		"json":  jsonData,
	}
	for _, n := range names {
		name := strings.TrimSuffix(path.Base(n), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("login template %s: %w", name, err)
		}
		p.byName[name] = t
	}
	return p, nil
}

// view is what every page gets: its own data plus the layout's.
type view struct {
	Title   string
	Product string
	// Lang is the page's lang attribute; "en" when empty (see pageLang).
	Lang   string
	CSRF   string
	Error  string
	Notice string
	// Scripts are extra scripts under static/ the page needs.
	Scripts []string
	Data    any
}

// render writes page name with status.
func (p *pages) render(w http.ResponseWriter, status int, name string, v view) {
	t, ok := p.byName[name]
	if !ok {
		http.Error(w, "unknown page", http.StatusInternalServerError)
		return
	}
	v.Product = p.product
	if v.Lang == "" {
		v.Lang = defaultLang
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, v); err != nil {
		http.Error(w, "page failed to render", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
}

// fail shows an error page.
func (p *pages) fail(w http.ResponseWriter, _ *http.Request, status int, message string) {
	p.render(w, status, "error", view{Title: "Something went wrong", Error: message})
}

// The pages are written in English only: there are no translations yet.
// defaultLang is their lang attribute.
const defaultLang = "en"

// pageLang is the lang attribute of a page answering a request with
// ui_locales (OpenID Connect Core §3.1.2.1, RP-Initiated Logout §2): the
// first of the preferred tags in a language the pages are written in, as
// the relying party wrote it (en-GB stays en-GB), else defaultLang. With
// translations this is where the page's language would be chosen.
func pageLang(uiLocales []string) string {
	for _, l := range uiLocales {
		tag, err := language.Parse(l)
		if err != nil {
			continue
		}
		if base, _ := tag.Base(); base.String() == defaultLang {
			return tag.String()
		}
	}
	return defaultLang
}

// scopeDescription says in plain words what a scope lets an application do.
func scopeDescription(scope string) string {
	switch scope {
	case "openid":
		return "Know who you are when you sign in"
	case "profile":
		return "See your name and profile details"
	case "email":
		return "See your email address"
	case "address":
		return "See your postal address"
	case "phone":
		return "See your phone number"
	case "offline_access":
		return "Stay connected while you are away (keeps access until you revoke it)"
	}
	return "Access “" + scope + "”"
}

// jsonData puts JSON into a <script type="application/json"> element.
// The JSON is escaped so that no "</script>" or HTML comment can end the
// element early, whatever user-provided text it carries.
func jsonData(s string) template.JS {
	var buf bytes.Buffer
	json.HTMLEscape(&buf, []byte(s))
	return template.JS(buf.String())
}
