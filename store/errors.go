package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

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
	// ErrUnavailable reports that the database could not serve the request
	// for now: it is down or restarting, refused the connection, ran out of
	// connections, or the request's time ran out waiting for it. Trying
	// again later may succeed; callers answer 503, not 500.
	ErrUnavailable = errors.New("database unavailable")
)

// mapErr turns driver errors into the store's sentinels.
func (s *Store) mapErr(err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return errors.Join(ErrUnavailable, err)
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

// unavailable tells a database that could not be reached, or that refused
// service for a while, from one that answered: the connection failed or
// broke, PostgreSQL is shutting down, starting or out of connections, or the
// request's deadline passed.
func unavailable(err error) bool {
	for _, target := range []error{driver.ErrBadConn, context.DeadlineExceeded, io.EOF, io.ErrUnexpectedEOF,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.EPIPE} {
		if errors.Is(err, target) {
			return true
		}
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pqErr *pq.Error
	if errors.As(err, &pqErr) {
		// Class 08 is connection exceptions, 57 operator intervention
		// (shutdown, cannot connect now, query cancelled); 53300 is
		// too_many_connections.
		class := pqErr.Code.Class()
		return class == "08" || class == "57" || pqErr.Code == "53300"
	}
	// SQLite's busy timeout ran out behind another writer.
	return strings.Contains(err.Error(), "database is locked")
}
