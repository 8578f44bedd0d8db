package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
)

// Shell opens an interactive shell in a step's container: deps, lint, test
// (the lint/test container, after the command ran) or image.
//
// It rebuilds the step's container (cached: instant when the step already
// ran) and attaches a terminal to it with Dagger's Container.terminal. That
// needs the Dagger CLI to own the session and the TTY, so outside one the
// command re-runs itself as `dagger run -i build shell ...`; -i also opens the
// shell at the point of failure when a command on the way fails (a broken
// requirements pin drops you where pip failed).
func Shell(ctx context.Context, b Build, step, revision, shell string) error {
	if os.Getenv("DAGGER_SESSION_PORT") == "" {
		return underDaggerRun(ctx, step, shell)
	}
	p, err := connect(ctx, b)
	if err != nil {
		return err
	}
	defer p.close()

	var ctr *dagger.Container
	var what string
	switch step {
	case "deps", "lint", "test":
		deps, err := ci.Deps(p.c, p.app, p.src).Sync(ctx)
		if err != nil {
			return fmt.Errorf("install the dependencies: %w (the shell opened where it failed)", explain(err))
		}
		ctr, what = deps, "source in /src, venv in /opt/venv; the step runs: "
		switch step {
		case "deps":
			what += "the " + p.app.Deps + " install of " + strings.Join(p.app.DepFiles(), " ")
		case "lint":
			ctr, what = ci.Lint(deps, p.app), what+shellJoin(p.app.Lint)
		case "test":
			ctr, what = ci.Test(deps, p.app), what+shellJoin(p.app.Test)+" (report in "+ci.PytestReport+")"
		}
	case "image":
		layoutDir, err := os.MkdirTemp("", "build-layout-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(layoutDir)
		img, err := p.image(ctx, revision, layoutDir)
		if err != nil {
			return fmt.Errorf("%w (the shell opened where it failed)", err)
		}
		ctr, what = img.ctr, "the "+p.app.Build+" image, as it would run"
	}
	fmt.Fprintf(os.Stderr, "build: shell in the %s container (%s); exit to leave\n", step, what)
	if _, err := ctr.Terminal(dagger.ContainerTerminalOpts{Cmd: []string{shell}}).Sync(ctx); err != nil {
		return fmt.Errorf("terminal in the %s container: %w", step, explain(err))
	}
	return nil
}

// underDaggerRun re-runs this command inside `dagger run -i`, on the same
// terminal.
func underDaggerRun(ctx context.Context, step, shell string) error {
	if !isTerminal(os.Stdin) || !isTerminal(os.Stdout) {
		return errors.New("shell needs a terminal (stdin and stdout): run it in an interactive shell, not in CI")
	}
	cli := os.Getenv("_EXPERIMENTAL_DAGGER_CLI_BIN")
	if cli == "" {
		var err error
		if cli, err = exec.LookPath("dagger"); err != nil {
			return errors.New("shell needs the Dagger CLI: set _EXPERIMENTAL_DAGGER_CLI_BIN (source /run/webapp-dev/env) or put dagger v0.18.10 on PATH")
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"run", "-i", "--interactive-command", shell, self}, os.Args[1:]...)
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("shell --step %s: exited %d (the reason is above)", step, ee.ExitCode())
		}
		return fmt.Errorf("%s run: %w", cli, err)
	}
	return nil
}
