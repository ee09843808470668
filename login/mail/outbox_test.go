package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestOutboxConcurrentSends(t *testing.T) {
	const n = 50
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o := &Outbox{Path: path}
	// A long text makes interleaved writes visible if appends were not serialised.
	text := strings.Repeat("Your code is 123456. ", 500)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := Message{To: fmt.Sprintf("user%d@example.test", i), Subject: "Code", Text: text}
			if err := o.Send(context.Background(), m); err != nil {
				t.Errorf("Send %d: %v", i, err)
			}
		})
	}
	wg.Wait()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("outbox has %d lines, want %d", len(lines), n)
	}
	seen := map[string]bool{}
	for i, line := range lines {
		var m OutboxMessage
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v", i+1, err)
		}
		if m.Text != text || m.Time.IsZero() {
			t.Errorf("line %d = %+v", i+1, m)
		}
		seen[m.To] = true
	}
	if len(seen) != n {
		t.Errorf("%d distinct recipients, want %d", len(seen), n)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("outbox mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	msgs, err := ReadOutbox(path)
	if err != nil || len(msgs) != n {
		t.Errorf("ReadOutbox = %d messages, %v; want %d", len(msgs), err, n)
	}
}

func TestOutboxLast(t *testing.T) {
	var logs bytes.Buffer
	o := &Outbox{
		Path: filepath.Join(t.TempDir(), "outbox.jsonl"),
		Log:  slog.New(slog.NewJSONHandler(&logs, nil)),
	}
	if _, ok, err := o.Last("ann@example.test"); ok || err != nil {
		t.Fatalf("Last on a missing outbox = %v, %v", ok, err)
	}
	ctx := context.Background()
	for _, m := range []Message{
		{To: "ann@example.test", Subject: "Code", Text: "111111"},
		{To: "Bob <bob@example.test>", Subject: "Code", Text: "222222"},
		{To: "Ann <ANN@example.test>", Subject: "Code", Text: "333333"},
	} {
		if err := o.Send(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		to, text string
		ok       bool
	}{
		{"ann@example.test", "333333", true},
		{"bob@example.test", "222222", true},
		{"Bob <bob@example.test>", "222222", true},
		{"carol@example.test", "", false},
	}
	for _, tt := range tests {
		m, ok, err := o.Last(tt.to)
		if err != nil || ok != tt.ok || m.Text != tt.text {
			t.Errorf("Last(%q) = %q, %v, %v; want %q, %v", tt.to, m.Text, ok, err, tt.text, tt.ok)
		}
	}

	if n := strings.Count(logs.String(), `"msg":"mail written to outbox"`); n != 3 {
		t.Errorf("logged %d sends, want 3:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"to":"ann@example.test"`) {
		t.Errorf("log lacks the recipient:\n%s", logs.String())
	}
	for _, code := range []string{"111111", "222222", "333333"} {
		if strings.Contains(logs.String(), code) {
			t.Errorf("log reveals the code %s:\n%s", code, logs.String())
		}
	}
}

func TestOutboxRefusesHeaderInjection(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	o := &Outbox{Path: path}
	for _, m := range []Message{
		{To: "ann@example.test\nBcc: evil@example.test", Subject: "Code"},
		{To: "ann@example.test", Subject: "Code\r\nBcc: evil@example.test"},
		{To: "ann", Subject: "Code"},
	} {
		if err := o.Send(context.Background(), m); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("Send(%q, %q) = %v, want ErrInvalidMessage", m.To, m.Subject, err)
		}
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("outbox written: %v", err)
	}
}

func TestReadOutboxCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.jsonl")
	if err := os.WriteFile(path, []byte(`{"to":"a@example.test"}`+"\n{broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadOutbox(path); err == nil {
		t.Error("ReadOutbox of a corrupt file succeeded")
	}
}
