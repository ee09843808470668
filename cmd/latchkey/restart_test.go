package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/latchkey-oidc/latchkey/conformance/latchkeytest"
	"github.com/latchkey-oidc/latchkey/store/storetest"
)

// TestRestartUnderLoad restarts "latchkey serve" with SIGTERM while
// clients ask for tokens without pause, as a rolling update does. No
// request the server accepted is dropped: every request it logged got its
// whole answer, and the only failures the clients see are requests the
// server never read (a refused connection, or an idle one closed under
// them). Every token issued before and after the restart is still valid.
//
// It runs on PostgreSQL when LATCHKEY_TEST_DATABASE_URL is set, else on the
// embedded SQLite file.
func TestRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	cleanEnv(t)
	bin := buildLatchkey(t)
	dir := t.TempDir()
	args := []string{"serve", "--data-dir", dir, "--log-format", "json",
		"--public-addr", latchkeytest.FreeAddr(t), "--admin-addr", latchkeytest.FreeAddr(t), "--metrics-addr", latchkeytest.FreeAddr(t)}
	if os.Getenv("LATCHKEY_TEST_DATABASE_URL") != "" {
		args = append(args, "--database-url", storetest.FreshPostgres(t), "--system-secret", rand.Text()+rand.Text())
	}
	start := func(name string) *latchkeyProcess {
		p := launchProcess(t, bin, name, args)
		p.waitListening(publicLine, adminLine, metricsLine)
		if p.startErr != "" {
			t.Fatal(p.startErr)
		}
		p.waitHTTP(t)
		return p
	}
	first := start("latchkey serve (first)")
	l := newOutageLoad(first, readAdminToken(t, first))
	client := l.createClient(t, map[string]any{
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_basic",
	})

	var (
		mu       sync.Mutex
		answers  []restartAnswer
		stop     atomic.Bool
		sigtermd atomic.Bool
		workers  sync.WaitGroup
	)
	for range 8 {
		workers.Go(func() {
			for !stop.Load() {
				a := l.tokenWithID(t.Context(), client)
				a.afterSIGTERM = sigtermd.Load()
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
				if a.err != nil {
					time.Sleep(10 * time.Millisecond) // as a client backs off
				}
			}
		})
	}
	issued := func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, a := range answers {
			if a.token != "" {
				n++
			}
		}
		return n
	}
	waitUntil(10*time.Second, func() bool { return issued() >= 200 })

	sigtermd.Store(true)
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-first.exited:
		if first.waitErr != nil {
			t.Fatalf("latchkey serve after SIGTERM under load: %v, want exit status 0\n%s", first.waitErr, first.stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("latchkey serve still runs 20s after SIGTERM\n%s", first.stderr.String())
	}
	before := issued()
	second := start("latchkey serve (second)")
	waitUntil(10*time.Second, func() bool { return issued() >= before+200 })
	stop.Store(true)
	workers.Wait()

	// What each process says it answered, by request ID.
	logged := map[string]int{}
	for _, p := range []*latchkeyProcess{first, second} {
		for _, m := range accessLogLine.FindAllStringSubmatch(p.stderr.String(), -1) {
			var line struct {
				Route     string `json:"route"`
				Status    int    `json:"status"`
				RequestID string `json:"request_id"`
			}
			if err := json.Unmarshal([]byte(m[0]), &line); err == nil && line.Route == "/oauth2/token" {
				logged[line.RequestID] = line.Status
			}
		}
		if strings.Contains(p.stderr.String(), "cut off") {
			t.Errorf("%s cut requests off:\n%s", p.name, p.stderr.String())
		}
	}

	var ok, unread int
	for _, a := range answers {
		status, wasLogged := logged[a.id]
		switch {
		case a.err != nil && wasLogged:
			t.Errorf("request %s was answered %d by the server, but the client got: %v", a.id, status, a.err)
		case a.err != nil:
			unread++
		case a.status != http.StatusOK:
			t.Errorf("request %s (after SIGTERM: %v) answered %d: %s", a.id, a.afterSIGTERM, a.status, a.body)
		case !wasLogged:
			t.Errorf("request %s was answered 200 but no process logged it", a.id)
		default:
			ok++
		}
	}
	t.Logf("%d tokens issued, %d requests never read by a server (refused or closed while idle) around the restart", ok, unread)
	if ok < 400 {
		t.Errorf("only %d tokens were issued; the load did not run on both sides of the restart", ok)
	}

	// The tokens of both processes are valid on the second.
	l.srv = second
	for _, a := range answers {
		if a.token == "" {
			continue
		}
		status, body, err := l.post(t.Context(), "/oauth2/introspect", client, url.Values{"token": {a.token}})
		if err != nil || status != http.StatusOK || !strings.Contains(string(body), `"active":true`) {
			t.Fatalf("a token issued around the restart, introspected after it: %d %s %v", status, body, err)
		}
	}
}

// accessLogLine is one JSON access-log line.
var accessLogLine = regexp.MustCompile(`(?m)^\{.*"msg":"request".*\}$`)

// restartAnswer is what a client saw of one token request.
type restartAnswer struct {
	id           string
	status       int
	body         string
	token        string
	err          error
	afterSIGTERM bool
}

// tokenWithID asks for a client_credentials token under a request ID of
// its own, which the server's access log repeats.
func (l *outageLoad) tokenWithID(ctx context.Context, c oauthClient) restartAnswer {
	a := restartAnswer{id: strings.ToLower(rand.Text())}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.srv.public+"/oauth2/token",
		strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	if err != nil {
		a.err = err
		return a
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Request-Id", a.id)
	req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	resp, err := l.http.Do(req)
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Body.Close()
	var tok tokenAnswer
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil {
		a.err = err
		return a
	}
	a.status, a.token = resp.StatusCode, tok.AccessToken
	if resp.StatusCode != http.StatusOK {
		a.body = tok.Error + ": " + tok.Description
	}
	return a
}
