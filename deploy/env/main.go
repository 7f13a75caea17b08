// Command env prints the environment, one NAME=value a line, as env(1) does
// when run without arguments.
//
// The web image is distroless: no shell and no coreutils, so nothing answers
// `docker compose exec web env` there. The Dockerfile puts this program at
// /usr/bin/env instead of copying in a busybox, whose other applets (a shell
// among them) would come along with it. It only prints: given arguments it
// refuses, since the image has no other program it could run.
package main

import (
	"fmt"
	"io"
	"os"
)

func main() {
	os.Exit(run(os.Args[1:], os.Environ(), os.Stdout, os.Stderr))
}

func run(args, environ []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "env: this image's env only prints the environment, so it takes no arguments (got %q)\n", args)
		return 2
	}
	for _, kv := range environ {
		if _, err := fmt.Fprintln(stdout, kv); err != nil {
			fmt.Fprintf(stderr, "env: %v\n", err)
			return 1
		}
	}
	return 0
}
