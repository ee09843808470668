package provider

import (
	"net/url"
	"testing"

	"github.com/ory/fosite"
)

// TestCheckParamsSameAnswer: a request with several bad parameters is
// always answered about the same one, the first by name, whatever order
// Go's map gives them in.
func TestCheckParamsSameAnswer(t *testing.T) {
	form := url.Values{
		"state":        {"one", "two"},
		"nonce":        {"n\xff"},
		"redirect_uri": {"https://app.example.test/cb"},
		"scope":        {"openid", "profile"},
		"audience":     {"a", "b"}, // repeatable
	}
	for range 50 {
		err := checkParams(form)
		rfc := fosite.ErrorToRFC6749Error(err)
		if rfc.ErrorField != "invalid_request" || rfc.HintField != "The nonce parameter is not valid UTF-8." {
			t.Fatalf("checkParams: %v (%q), want invalid_request about nonce", err, rfc.HintField)
		}
	}
	good := url.Values{"audience": {"a", "b"}, "scope": {"openid"}}
	if err := checkParams(good); err != nil {
		t.Fatalf("checkParams of a good form: %v", err)
	}
}
