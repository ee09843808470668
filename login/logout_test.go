package login_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestLogoutPageLanguage sends ui_locales with RP-initiated logout: the
// provider hands them to the login app with the logout challenge, and the
// confirmation page declares the first preferred language it is written
// in. The pages exist in English only, so that is English in the region
// asked for, or plain English.
func TestLogoutPageLanguage(t *testing.T) {
	e := newEnv(t)
	c := e.createClient(map[string]any{"post_logout_redirect_uris": []string{loggedOut}})
	tests := []struct {
		uiLocales, lang string
	}{
		{"", "en"},
		{"fr-CA en-GB en", "en-GB"},
		{"de not-a-tag!", "en"},
		{"EN-us", "en-US"},
	}
	for _, tc := range tests {
		t.Run("ui_locales="+tc.uiLocales, func(t *testing.T) {
			params := url.Values{"client_id": {c.ID}, "post_logout_redirect_uri": {loggedOut}}
			if tc.uiLocales != "" {
				params.Set("ui_locales", tc.uiLocales)
			}
			b := newBrowser(t)
			b.get(logoutURL(e, params))
			if b.code != http.StatusOK || !strings.HasPrefix(b.url, e.app.PublicURL()+"/logout?") {
				t.Fatalf("expected the login app's confirmation, got %d at %s:\n%s", b.code, b.url, b.body)
			}
			if want := `<html lang="` + tc.lang + `">`; !strings.Contains(b.body, want) {
				t.Errorf("the page does not start with %s:\n%.200s", want, b.body)
			}
		})
	}
}
