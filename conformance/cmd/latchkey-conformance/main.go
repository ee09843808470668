// Command latchkey-conformance runs Latchkey's implementation of the
// OpenID Foundation OP test plans against a deployment:
//
//	latchkey-conformance -config conformance.json [-module name ...] [plan ...]
//
// It prints a line per module variant and "N passed, N failed", and exits
// with status 1 when a module failed. conformance/README.md describes the
// configuration file.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"

	"github.com/latchkey-oidc/latchkey/conformance"
)

func main() {
	configPath := flag.String("config", "conformance.json", "configuration `file` (issuer, clients, users)")
	list := flag.Bool("list", false, "list the test plans and exit")
	var modules []string
	flag.Func("module", "run only this `module` (repeatable)", func(m string) error { modules = append(modules, m); return nil })
	flag.Parse()
	if *list {
		for _, p := range conformance.Plans() {
			fmt.Println(p)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *configPath, flag.Args(), modules); err != nil {
		fmt.Fprintln(os.Stderr, "latchkey-conformance:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, configPath string, plans, modules []string) error {
	cfg, err := conformance.ReadConfig(configPath)
	if err != nil {
		return err
	}
	if cfg.RPURL != "" && cfg.RPListen == "" {
		return fmt.Errorf("%s: rp_url needs rp_listen, the address the runner's server listens on behind it", configPath)
	}
	r, err := conformance.New(ctx, cfg, nil, os.Stdout)
	if err != nil {
		return err
	}
	r.Modules = modules
	results, err := r.Run(ctx, plans...)
	if err != nil {
		return err
	}
	passed, failed := conformance.Summary(results)
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		return fmt.Errorf("%d module variants failed", failed)
	}
	return nil
}
