package login

import "github.com/gorilla/mux"

// Router returns the app's router, without the middleware around it, so
// that tests can walk the route table (badinput_test.go checks every
// route has its cases).
func (a *App) Router() *mux.Router { return a.routes().(*mux.Router) }
