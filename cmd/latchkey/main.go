// Command latchkey runs and administers the Latchkey OpenID Provider. main
// only parses flags and wires packages together; the work happens in them.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `Usage: latchkey <command> [flags]

Commands:
  migrate   apply database migrations (--status lists them)
  janitor   delete expired tokens, codes, sessions and counters
  version   print the version

Every command takes --database-url (LATCHKEY_DATABASE_URL) or --data-dir
(LATCHKEY_DATA_DIR, default ./data, holding the SQLite file latchkey.db).
Run "latchkey <command> -h" for the command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "latchkey:", err)
		}
		os.Exit(2)
	}
}

var errUsage = errors.New("usage")

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "migrate":
		return runMigrate(ctx, args[1:], stdout, stderr)
	case "janitor":
		return runJanitor(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "latchkey", version)
		return nil
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "latchkey: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}
