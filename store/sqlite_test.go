package store_test

import (
	"testing"

	"github.com/latchkey-oidc/latchkey/store/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, storetest.FreshSQLite)
}
