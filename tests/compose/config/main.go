// Command compose-config loads compose files as `docker compose config` does, with
// compose-go (the Compose Specification's reference loader, which Docker Compose is
// built on): the schema, interpolation from the environment and a .env beside the first
// file (${VAR:?...} included), the merge of override files with their !reset and
// !override tags, path resolution, normalisation and the consistency checks. It prints
// the resulting project as JSON, or the loader's errors and exits 1.
//
// Usage: compose-config COMPOSE_FILE [OVERRIDE_FILE]...
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: compose-config COMPOSE_FILE [OVERRIDE_FILE]...")
		os.Exit(2)
	}
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(files []string) error {
	options, err := cli.NewProjectOptions(files,
		cli.WithOsEnv,
		cli.WithEnvFiles(),
		cli.WithDotEnv,
		cli.WithInterpolation(true),
		cli.WithResolvedPaths(true),
		cli.WithNormalization(true),
		cli.WithConsistency(true),
	)
	if err != nil {
		return err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return err
	}
	out, err := project.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}
