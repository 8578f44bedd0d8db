// Command freshhost measures a fresh CodeBuild host: the repository's
// buildspec.yml run by the local CodeBuild runner (dev/codebuild) on a
// copy of HEAD (git archive, committed as the source action delivers it),
// with every cache CodeBuild would restore EMPTY: Go's module and build
// caches, the tool downloads, the build's memo (SBOMs, smoke tests), HOME.
// The tools come from local copies, as the local runner hands them over
// (no GitHub here): the dev environment's Dagger CLI and syft are copied
// into a fresh directory and the install phase finds them there; on AWS it
// downloads the pinned, checksum-verified releases instead (seconds).
//
//	source /run/webapp-dev/env && go run ./bench/freshhost
//
// The Dagger engine is the dev environment's (warm): an empty one would mean
// pruning the shared engine (bench -prune-shared-caches measures that cold
// start); CodeBuild does not keep the engine's state either
// (docs/performance.md), so a real fresh host adds the cold scenario's
// engine work on top of what this prints.
package main

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/webapp-pipeline/dev/codebuild"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

func main() {
	if err := run(context.Background()); err != nil {
		log.Fatalf("freshhost: %v", err)
	}
}

func run(ctx context.Context) error {
	for _, k := range []string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST", "_EXPERIMENTAL_DAGGER_CLI_BIN", "WEBAPP_DEV_SYFT", "BUILD_IMAGE_REPO"} {
		if os.Getenv(k) == "" {
			return fmt.Errorf("%s is not set: source /run/webapp-dev/env", k)
		}
	}
	repo, _ := os.Getwd()
	host, err := os.MkdirTemp("", "freshhost-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(host)
	src := filepath.Join(host, "src")
	if out, err := exec.Command("sh", "-c", "mkdir -p "+src+" && git -C "+repo+" archive HEAD | tar -x -C "+src).CombinedOutput(); err != nil {
		return fmt.Errorf("git archive: %v\n%s", err, out)
	}
	// A checkout, as CodeBuild's source: the build reads the commit from it.
	gitEnv := append(os.Environ(), "GIT_AUTHOR_NAME=freshhost", "GIT_AUTHOR_EMAIL=f@example.com",
		"GIT_COMMITTER_NAME=freshhost", "GIT_COMMITTER_EMAIL=f@example.com")
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "freshhost"}} {
		cmd := exec.Command("git", append([]string{"-C", src}, args...)...)
		cmd.Env = gitEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("git %v: %v\n%s", args, err, out)
		}
	}
	// The local copies of the pinned tools, in directories of this host.
	tools := map[string]string{"dagger": os.Getenv("_EXPERIMENTAL_DAGGER_CLI_BIN"), "syft": os.Getenv("WEBAPP_DEV_SYFT")}
	dirs := map[string]string{}
	for name, from := range tools {
		dirs[name] = filepath.Join(host, "tools", name)
		if err := os.MkdirAll(dirs[name], 0o755); err != nil {
			return err
		}
		if out, err := exec.Command("cp", from, filepath.Join(dirs[name], name)).CombinedOutput(); err != nil {
			return fmt.Errorf("copy %s: %v\n%s", from, err, out)
		}
	}
	spec, err := codebuild.Load(filepath.Join(src, "buildspec.yml"))
	if err != nil {
		return err
	}
	params, err := ssmparam.New(ctx, "")
	if err != nil {
		return err
	}
	home := filepath.Join(host, "home")
	env := []string{"BUILD_OUT=dist", "HOME=" + home, "BUILD_CACHE_DIR=" + filepath.Join(home, ".cache", "webapp-pipeline"),
		"GOMODCACHE=" + filepath.Join(home, "go", "pkg", "mod"), "GOCACHE=" + filepath.Join(home, ".cache", "go-build"),
		"GOPATH=" + filepath.Join(home, "go")}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "CODEBUILD_"), k == "HOME", k == "GOMODCACHE", k == "GOCACHE", k == "GOPATH", k == "BUILD_CACHE_DIR":
		default:
			env = append(env, kv)
		}
	}
	logf, err := os.Create(filepath.Join(os.TempDir(), "freshhost.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	start := time.Now()
	res, err := codebuild.Run(ctx, codebuild.Options{
		Spec: spec, SrcDir: src, Env: env, Params: params,
		Overrides: map[string]string{
			"DAGGER_BIN_DIR":               dirs["dagger"],
			"_EXPERIMENTAL_DAGGER_CLI_BIN": filepath.Join(dirs["dagger"], "dagger"),
			"SYFT_BIN_DIR":                 dirs["syft"],
			"DAGGER_CLI_CACHE":             filepath.Join(home, ".cache", "dagger-cli"),
			"SYFT_CACHE":                   filepath.Join(home, ".cache", "syft"),
		},
		Log: io.MultiWriter(logf),
	})
	if err != nil {
		return err
	}
	total := time.Since(start)
	fmt.Printf("fresh host (empty Go, tool and memo caches; tools from local copies; the dev engine): %.1f s in all\n", total.Seconds())
	for _, p := range res.Phases {
		fmt.Printf("  %-10s %-9s %6.1f s\n", p.Name, p.Status, p.Duration.Seconds())
	}
	if f := res.Failed(); f != nil {
		return fmt.Errorf("phase %s: %q exited %d (its log: /tmp/freshhost.log)", f.Name, f.FailedCommand, f.ExitCode)
	}
	return nil
}
