package store_test

import (
	"testing"

	"github.com/latchkey-oidc/latchkey/store/storetest"
)

func TestPostgres(t *testing.T) {
	storetest.PostgresURL(t)
	storetest.Run(t, storetest.FreshPostgres)
}
