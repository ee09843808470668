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
  serve               run the provider: public endpoints and admin API
                      ("serve provider" is the same)
  clients create      register a client from RFC 7591 JSON (--file client.json);
                      prints it, with its secret this once
  clients list        print every client as JSON
  clients get ID      print a client as JSON
  clients delete ID   delete a client
  users create        create a login user (--username, --password, …); prints it
  users list          print every user as JSON
  users get USER      print a user (by ID or username) as JSON
  users delete USER   delete a user
  users set-password USER | reset-mfa USER | disable USER | enable USER
                      set a user's password, remove their second factors,
                      stop or allow their sign-in
  sessions list SUBJECT
                      print a subject's SSO sessions as JSON
  sessions revoke SUBJECT [SID] [--revoke-tokens]
                      end one or all of a subject's SSO sessions (back-channel
                      logout included), and with --revoke-tokens their tokens
  keys list           list the signing keys
  keys rotate         rotate the signing keys (--alg RS256 for one algorithm)
  migrate             apply database migrations (--status lists them)
  janitor             delete expired tokens, codes, sessions and counters
  version             print the version

With no flags everything lives in ./latchkey-data: the SQLite database, and
the system secret and admin token serve generates once. --database-url
postgres://… (with --system-secret) runs on PostgreSQL instead.

Every flag has a LATCHKEY_* environment variable (--data-dir is
LATCHKEY_DATA_DIR) and a key in the YAML file --config names (data-dir: …);
a flag beats the environment, which beats the file.
Run "latchkey <command> -h" for the command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if errors.Is(err, errHelp) {
		return
	}
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "latchkey:", err)
		}
		os.Exit(2)
	}
}

// subcommand splits "latchkey NAME SUB args…" into SUB and its arguments.
// known maps each subcommand of NAME to the positional arguments it takes
// (the caller checks those); a missing or unknown SUB prints usage and is
// errUsage.
func subcommand(stderr io.Writer, name, usage string, args []string, known map[string]int) (string, []string, error) {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return "", nil, errUsage
	}
	if _, ok := known[args[0]]; !ok {
		fmt.Fprintf(stderr, "latchkey %s: unknown command %q\n\n%s", name, args[0], usage)
		return "", nil, errUsage
	}
	return args[0], args[1:], nil
}

// errUsage reports a command line that could not be run; the usage was
// printed. errHelp reports that help was asked for and printed.
var (
	errUsage = errors.New("usage")
	errHelp  = errors.New("help")
)

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return runServe(ctx, args[1:], stdout, stderr)
	case "clients":
		return runClients(ctx, args[1:], stdout, stderr)
	case "users":
		return runUsers(ctx, args[1:], stdout, stderr)
	case "sessions":
		return runSessions(ctx, args[1:], stdout, stderr)
	case "keys":
		return runKeys(ctx, args[1:], stdout, stderr)
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
