package latchkeytest

import "github.com/gorilla/mux"

// WalkRoutes calls fn with every route of r that serves something: its
// path template and methods. (A subrouter is a route without either.) The
// bad-input batteries use it to find routes without cases.
func WalkRoutes(r *mux.Router, fn func(tmpl string, methods []string, rt *mux.Route)) error {
	return r.Walk(func(rt *mux.Route, _ *mux.Router, _ []*mux.Route) error {
		if rt.GetHandler() == nil {
			return nil
		}
		tmpl, err := rt.GetPathTemplate()
		if err != nil {
			return err
		}
		methods, err := rt.GetMethods()
		if err != nil {
			return err
		}
		fn(tmpl, methods, rt)
		return nil
	})
}
