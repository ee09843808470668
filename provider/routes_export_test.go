package provider

import "github.com/gorilla/mux"

// Routers returns the routers of the public endpoints and of the admin
// API, without the middleware around them, so that tests can walk the
// route tables (badinput_test.go checks every route has its cases).
func (p *Provider) Routers() (public, admin *mux.Router) {
	return p.publicRouter(), p.adminRouter()
}
