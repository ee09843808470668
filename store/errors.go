package store

import (
	"errors"
	"strings"

	"github.com/lib/pq"
	"github.com/ory/fosite"
)

// The store's sentinel errors. Every backend returns them the same way, so
// callers test with errors.Is. ErrNotFound is fosite's, so fosite handlers
// recognise it without translation.
var (
	ErrNotFound      = fosite.ErrNotFound
	ErrAlreadyExists = errors.New("already exists")
	// ErrConflict reports that a concurrent request changed the same row
	// first; it is fosite's serialization failure so the refresh handler
	// answers "retry".
	ErrConflict = fosite.ErrSerializationFailure
)

// mapErr turns driver errors into the store's sentinels.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		switch pqErr.Code {
		case "23505": // unique_violation
			return errors.Join(ErrAlreadyExists, err)
		case "40001", "40P01": // serialization_failure, deadlock_detected
			return errors.Join(ErrConflict, err)
		}
		return err
	}
	// modernc.org/sqlite reports constraint failures in the message and code;
	// matching the message keeps the driver's internal packages out.
	msg := err.Error()
	if strings.Contains(msg, "UNIQUE constraint failed") || strings.Contains(msg, "PRIMARY KEY constraint failed") {
		return errors.Join(ErrAlreadyExists, err)
	}
	return err
}
