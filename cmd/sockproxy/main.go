// Command sockproxy is a policy-enforcing proxy for the Docker Engine API.
package main

import (
	"fmt"
	"os"
	"sort"
)

// command is one subcommand; each lives in its own file and registers itself
// in init, so that subcommands can be added without touching this file.
type command struct {
	summary string
	run     func(args []string) int // returns the process exit code
}

var commands = map[string]command{}

func register(name, summary string, run func(args []string) int) {
	if _, dup := commands[name]; dup {
		panic("sockproxy: subcommand registered twice: " + name)
	}
	commands[name] = command{summary: summary, run: run}
}

func main() {
	os.Exit(dispatch(os.Args[1:]))
}

func dispatch(args []string) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(os.Stderr, "sockproxy: unknown command %q; run 'sockproxy help' for the list\n", args[0])
		return 2
	}
	return cmd.run(args[1:])
}

func usage() {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintln(os.Stderr, "usage: sockproxy <command> [flags]\n\ncommands:")
	for _, name := range names {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", name, commands[name].summary)
	}
}
