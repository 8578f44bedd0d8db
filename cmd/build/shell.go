package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
)

// ShellCmd opens an interactive shell in a step's container.
type ShellCmd struct {
	SourceFlags   `embed:""`
	RevisionFlags `embed:""`
	Step          string `help:"Step whose container to open: deps (requirements installed in /opt/venv, source in /src; when pip fails, the shell opens where it failed), lint or test (the same, after flake8/pytest ran; pytest's report in /tmp/reports), image (the runtime image)." enum:"deps,lint,test,image" default:"test"`
	Shell         string `help:"Program to run inside (default: ${default})." default:"/bin/bash" placeholder:"PATH"`
}

// Run rebuilds the step's container (cached: instant when the step already
// ran) and attaches a terminal to it with Dagger's Container.terminal. That
// needs the Dagger CLI to own the session and the TTY, so outside one the
// command re-runs itself as `dagger run -i build shell ...`; -i also opens the
// shell at the point of failure when a command on the way fails (a broken
// requirements pin drops you where pip failed).
func (c *ShellCmd) Run(ctx context.Context, g *Globals, log *slog.Logger, rep *report) error {
	if os.Getenv("DAGGER_SESSION_PORT") == "" {
		return c.underDaggerRun(ctx)
	}
	p, err := connect(ctx, g, log, c.SourceFlags, rep)
	if err != nil {
		return err
	}
	defer p.close()

	var ctr *dagger.Container
	var what string
	switch c.Step {
	case "deps", "lint", "test":
		deps, err := ci.Deps(p.c, c.BaseImage, p.src).Sync(ctx)
		if err != nil {
			return fmt.Errorf("install requirements: %w (the shell opened where it failed)", explain(err))
		}
		ctr, what = deps, "source in /src, venv in /opt/venv; the step runs: "
		switch c.Step {
		case "deps":
			what += "pip install -r requirements.txt -r requirements-dev.txt"
		case "lint":
			ctr, what = ci.Lint(deps), what+lintCmd
		case "test":
			ctr, what = ci.Test(deps), what+testCmd+" (report in "+ci.PytestReport+")"
		}
	case "image":
		if err := c.resolve(ctx, c.Source); err != nil {
			return err
		}
		img, err := p.image(ctx, c.Revision)
		if err != nil {
			return fmt.Errorf("%w (the shell opened where it failed)", err)
		}
		ctr, what = img, "the runtime image: app in "+ci.AppDir+", venv in "+ci.VenvDir
	}
	fmt.Fprintf(os.Stderr, "build: shell in the %s container (%s); exit to leave\n", c.Step, what)
	if _, err := ctr.Terminal(dagger.ContainerTerminalOpts{Cmd: []string{c.Shell}}).Sync(ctx); err != nil {
		return fmt.Errorf("terminal in the %s container: %w", c.Step, explain(err))
	}
	return nil
}

// underDaggerRun re-runs this command inside `dagger run -i`, on the same
// terminal.
func (c *ShellCmd) underDaggerRun(ctx context.Context) error {
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
	args := append([]string{"run", "-i", "--interactive-command", c.Shell, self}, os.Args[1:]...)
	cmd := exec.CommandContext(ctx, cli, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("shell --step %s: exited %d (the reason is above)", c.Step, ee.ExitCode())
		}
		return fmt.Errorf("%s run: %w", cli, err)
	}
	return nil
}
