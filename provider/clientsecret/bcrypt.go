package clientsecret

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

const (
	// bcryptLen is the length of every bcrypt hash: "$2a$NN$", a 22-character
	// salt and a 31-character hash.
	bcryptLen = 60
	// maxBcryptCost bounds the cost read from an imported hash. Hydra's
	// default is 10 and fosite's 12; at 14 one compare already takes about a
	// second, so anything higher is a broken client or a hostile hash.
	maxBcryptCost = 14
)

// isBcrypt reports whether hash claims to be bcrypt ("$2a$", "$2b$", "$2y$").
func isBcrypt(hash []byte) bool {
	return len(hash) >= 4 && hash[0] == '$' && hash[1] == '2' &&
		(hash[2] == 'a' || hash[2] == 'b' || hash[2] == 'y') && hash[3] == '$'
}

// checkBcrypt checks the shape of a bcrypt hash more strictly than
// x/crypto/bcrypt does, and bounds its cost.
func checkBcrypt(hash []byte) error {
	if len(hash) != bcryptLen {
		return fmt.Errorf("malformed bcrypt hash: %d characters, want %d", len(hash), bcryptLen)
	}
	if !isDigit(hash[4]) || !isDigit(hash[5]) || hash[6] != '$' {
		return errors.New("malformed bcrypt hash: no cost")
	}
	cost := int(hash[4]-'0')*10 + int(hash[5]-'0')
	if cost < bcrypt.MinCost || cost > maxBcryptCost {
		return fmt.Errorf("bcrypt hash: cost %d outside [%d, %d]", cost, bcrypt.MinCost, maxBcryptCost)
	}
	for _, c := range hash[7:] {
		if !isDigit(c) && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && c != '.' && c != '/' {
			return errors.New("malformed bcrypt hash: not bcrypt base64")
		}
	}
	return nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// compareBcrypt verifies hashes imported from Hydra. Like every bcrypt, it
// looks only at the first 72 bytes of the secret, as when the hash was made.
func (h *Hasher) compareBcrypt(ctx context.Context, hash, secret []byte) error {
	if err := checkBcrypt(hash); err != nil {
		return err
	}
	if err := h.acquire(ctx); err != nil {
		return err
	}
	err := bcrypt.CompareHashAndPassword(hash, secret)
	h.release()
	switch {
	case err == nil:
		return nil
	case errors.Is(err, bcrypt.ErrMismatchedHashAndPassword):
		return fmt.Errorf("bcrypt hash: %w", ErrMismatch)
	default:
		return fmt.Errorf("bcrypt hash: %w", err)
	}
}
