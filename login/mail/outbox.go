package mail

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Outbox is the development Sender: it appends each message as one JSON line
// to the file at Path, where a developer (or a test, or the dev UI) reads the
// code instead of waiting for real mail. Use it by pointer; the zero value
// with Path set is ready.
type Outbox struct {
	Path string
	Log  *slog.Logger // optional; told who was mailed, never the text

	mu sync.Mutex // serialises appends so concurrent sends never interleave
}

// OutboxMessage is one line of the outbox file.
type OutboxMessage struct {
	Time    time.Time `json:"time"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	Text    string    `json:"text"`
}

// Send appends m to the outbox file, creating it readable only by its owner:
// the lines hold live sign-in codes.
func (o *Outbox) Send(ctx context.Context, m Message) error {
	if _, err := m.check(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	line, err := json.Marshal(OutboxMessage{Time: time.Now().UTC(), To: m.To, Subject: m.Subject, Text: m.Text})
	if err != nil {
		return fmt.Errorf("outbox: encode message: %w", err)
	}
	line = append(line, '\n')

	o.mu.Lock()
	err = appendFile(o.Path, line)
	o.mu.Unlock()
	if err != nil {
		return err
	}
	if o.Log != nil {
		o.Log.InfoContext(ctx, "mail written to outbox", "to", m.To, "subject", m.Subject, "path", o.Path)
	}
	return nil
}

func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("outbox: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outbox: close %s: %w", path, err)
	}
	return nil
}

// ReadOutbox returns the messages in the outbox file at path, oldest first.
// A file that does not exist yet holds no messages.
func ReadOutbox(path string) ([]OutboxMessage, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	var msgs []OutboxMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var m OutboxMessage
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return msgs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("outbox: read %s: message %d: %w", path, len(msgs)+1, err)
		}
		msgs = append(msgs, m)
	}
}

// Last returns the newest message in the outbox sent to the address to
// (compared without regard to case), and false if there is none.
func (o *Outbox) Last(to string) (OutboxMessage, bool, error) {
	o.mu.Lock()
	msgs, err := ReadOutbox(o.Path)
	o.mu.Unlock()
	if err != nil {
		return OutboxMessage{}, false, err
	}
	want := addressOf(to)
	for i := len(msgs) - 1; i >= 0; i-- {
		if strings.EqualFold(addressOf(msgs[i].To), want) {
			return msgs[i], true, nil
		}
	}
	return OutboxMessage{}, false, nil
}

// addressOf returns the bare address of "Name <addr>", or s itself when it
// does not parse, so Last matches however the recipient was written.
func addressOf(s string) string {
	if a, err := parseAddress("To", s); err == nil {
		return a.Address
	}
	return strings.TrimSpace(s)
}
