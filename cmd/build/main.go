// Command build is the build phase of the webapp pipeline: lint, test, build
// and publish the image, and write the CodeDeploy bundle (see docs/design.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kong"

	"github.com/acme/webapp-pipeline/internal/build"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// Globals are the flags every command takes.
type Globals struct {
	Timeout time.Duration `help:"Time limit for the whole run (default: ${default})." default:"30m" env:"BUILD_TIMEOUT"`
	Verbose bool          `help:"Show the Dagger engine's progress output on stderr." env:"BUILD_VERBOSE"`
	// Origins: where each contract setting came from (contract.App.Origin), filled after parsing.
	Origins map[string]string `kong:"-"`
}

// CLI is the command line.
type CLI struct {
	Globals
	config configResolver // pipeline.yml, and where each setting came from

	Lint      LintCmd      `cmd:"" help:"Run the app's lint command (flake8 by default)."`
	Test      TestCmd      `cmd:"" help:"Run the app's test command (pytest by default)."`
	Checks    ChecksCmd    `cmd:"" help:"Lint and test at once, JUnit reports in --out/reports: what a pull request gets (no image, no push)."`
	Image     ImageCmd     `cmd:"" help:"Build the image and smoke-test it (optionally export it as an OCI tarball)."`
	Publish   PublishCmd   `cmd:"" help:"Lint, test, build, smoke-test and push the image; write the artifacts directory."`
	Check     CheckCmd     `cmd:"" help:"Validate a CodeDeploy bundle directory (and optionally a buildspec)."`
	All       AllCmd       `cmd:"" help:"What CodeBuild runs: lint, test, image, smoke test, check bundle, publish, write artifacts."`
	Shell     ShellCmd     `cmd:"" help:"Open an interactive shell in a step's container (deps, lint, test, image), as the step saw it."`
	Reproduce ReproduceCmd `cmd:"" help:"Rebuild a commit (what CodeBuild built) from git, without touching the working tree; print the image digest."`
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "build: error: %s\n", build.OneLine(err.Error()))
		os.Exit(1)
	}
}

// newParser builds the kong parser writing help to w; exit is called by kong
// after --help.
func newParser(cli *CLI, w io.Writer, exit func(int)) (*kong.Kong, error) {
	return kong.New(cli,
		kong.Name("build"),
		kong.Description("Build phase of the webapp pipeline (Dagger). Flags fall back to the environment variables shown, "+
			"the app contract's flags then to the keys of the same name in the repository's pipeline.yml."),
		kong.Resolvers(&cli.config),
		kong.Vars{"default_base_image": contract.DefaultBaseImage,
			"image_builds": strings.Join(contract.ImageBuilds, ","), "deps_kinds": strings.Join(contract.DepsKinds, ","),
			"platform_kinds": strings.Join(contract.PlatformKinds, ", ")},
		kong.ExplicitGroups([]kong.Group{{Key: "contract", Title: "App contract (each flag is also a key of pipeline.yml; flag > env > file > default):"}}),
		kong.Writers(w, w),
		kong.Exit(exit),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
}

func run(args []string, stdout, stderr io.Writer) error {
	var cli CLI
	parser, err := newParser(&cli, stdout, os.Exit)
	if err != nil {
		return err
	}
	kctx, err := parser.Parse(args)
	var cfgErr *configError
	if errors.As(err, &cfgErr) {
		return cfgErr // kong prefixes it with the flag being resolved: the file's problem is the point
	}
	if err != nil {
		return err
	}
	cli.Origins = cli.config.origins()

	// The report prints last (the failure report, or the step summary); log
	// lines and tool output go through it so a terminal's live line stays
	// tidy. Plain text has no clock times: CodeBuild stamps its own lines.
	rep := build.NewReport(stderr)
	opts := &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey && len(groups) == 0 {
			return slog.Attr{}
		}
		return a
	}}
	if rep.Live() && !cli.Verbose {
		opts.Level = slog.LevelWarn // the live step lines say the same
	}
	log := slog.New(slog.NewTextHandler(rep, opts))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, cli.Timeout)
	defer cancel()

	kctx.BindTo(ctx, (*context.Context)(nil))
	err = kctx.Run(&cli.Globals, log, stdoutW{stdout}, stderrW{stderr}, rep)
	rep.Finish(err)
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s (raise --timeout or BUILD_TIMEOUT): %w", cli.Timeout, err)
	}
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted: %w", err)
	}
	return err
}

// stdoutW and stderrW let commands receive the two writers by type.
type (
	stdoutW struct{ io.Writer }
	stderrW struct{ io.Writer }
)
