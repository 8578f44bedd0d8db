// Command bench measures the Dagger build (cmd/build all) against the plain
// shell baseline (bench/baseline.sh) on the same app, the same machine, in
// one invocation, through five scenarios, and writes a markdown table:
//
//	source /run/webapp-dev/env && go run ./bench -runs 3 -cold-runs 2
//	go run ./bench -image-build dockerfile -scenarios code   # the app's own Dockerfile, both sides
//
// Scenarios (each run times the whole command, process start to exit):
//
//	cold      empty caches: the engine's local cache pruned (base image,
//	          pip cache volume, every layer) and the build's memo
//	          (BUILD_CACHE_DIR) emptied; for the baseline the venv, pip
//	          cache, built images and the pulled base image removed
//	nochange  rebuild with nothing changed (after one untimed warm-up build):
//	          cmd/build finds its out dir up to date and contacts nothing
//	nochange-force
//	          the same with --force: every step asked of the warm engine
//	code      one app source file changed before each run
//	reqs      requirements.txt changed (a comment) before each run: pip runs again
//
// Sizes: compressed = config + layers in the pushed manifest (what a pull
// downloads); unpacked = `docker image inspect .Size` after a pull.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"dagger.io/dagger"
)

var (
	imageBuild    string
	onlyScenarios = map[string]bool{}
)

type scenario struct {
	name, what string
	runs       int
	prepare    func(run int) error // before each timed run (untimed)
	daggerArgs []string            // extra flags for cmd/build all
}

func main() {
	runs := flag.Int("runs", 3, "timed runs per warm scenario")
	coldRuns := flag.Int("cold-runs", 2, "timed runs of the cold scenario")
	out := flag.String("out", filepath.Join("bench", "results", time.Now().UTC().Format("2006-01-02T150405Z")+".md"), "table file")
	flag.StringVar(&imageBuild, "image-build", "native", "how the Dagger build makes the image: native, or dockerfile (bench/Dockerfile.app in app/; the baseline docker-builds the same file)")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (default: all)")
	flag.Parse()
	if *only != "" {
		for _, s := range strings.Split(*only, ",") {
			onlyScenarios[strings.TrimSpace(s)] = true
		}
	}
	if err := run(*runs, *coldRuns, *out); err != nil {
		log.Fatalf("bench: %v", err)
	}
}

func sh(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if err != nil {
		return b.String(), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, b.String())
	}
	return b.String(), nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func run(runs, coldRuns int, outFile string) error {
	repo, _ := os.Getwd()
	for _, k := range []string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST", "BUILD_IMAGE_REPO", "WEBAPP_DEV_REGISTRY_PASSWORD_FILE"} {
		if os.Getenv(k) == "" {
			return fmt.Errorf("%s is not set: source /run/webapp-dev/env", k)
		}
	}
	work, err := os.MkdirTemp("", "webapp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// One copy of the repository for both builds (edits never touch the repo).
	src := filepath.Join(work, "src")
	if _, err := sh(repo, nil, "sh", "-c", "mkdir -p "+src+" && git archive HEAD | tar -x -C "+src); err != nil {
		return err
	}
	var daggerEnv, baselineEnv []string
	if imageBuild == "dockerfile" {
		if _, err := sh(repo, nil, "cp", filepath.Join("bench", "Dockerfile.app"), filepath.Join(src, "app", "Dockerfile")); err != nil {
			return err
		}
		daggerEnv = []string{"BUILD_IMAGE_BUILD=dockerfile"}
		baselineEnv = []string{"BASELINE_DOCKERFILE=" + filepath.Join(repo, "bench", "Dockerfile.app")}
	}
	bin := filepath.Join(work, "build")
	if _, err := sh(repo, nil, "go", "build", "-o", bin, "./cmd/build"); err != nil {
		return err
	}
	stamp := time.Now().Unix()
	registry := strings.Split(os.Getenv("BUILD_IMAGE_REPO"), "/")[0]
	daggerRepo := registry + "/webapp-bench-dagger"
	baseRepo := registry + "/webapp-bench-baseline"
	pw, err := os.ReadFile(os.Getenv("WEBAPP_DEV_REGISTRY_PASSWORD_FILE"))
	if err != nil {
		return err
	}
	login := exec.Command("docker", "login", "-u", "ci-pusher", "--password-stdin", registry)
	login.Stdin = bytes.NewReader(pw)
	if b, err := login.CombinedOutput(); err != nil {
		return fmt.Errorf("docker login: %v\n%s", err, b)
	}
	baselineCache := filepath.Join(work, "baseline-cache")
	// The build's own memo (a passed smoke test, SBOMs by image and layer: internal/build/memo.go),
	// here so that cold can empty it too.
	memoDir := filepath.Join(work, "build-memo")
	// The revision the Dagger build stamps into the image: a rebuild of the
	// same commit keeps it (nochange), a change is a new commit (code, reqs,
	// and each cold run). The baseline's naive image stamps no revision.
	n, commit := 0, 0
	daggerBuild := func(extra ...string) error {
		n++
		args := append([]string{"all", "--out", filepath.Join(work, "dist"), "--revision", fmt.Sprintf("bench-%d-%d", stamp, commit)}, extra...)
		_, err := sh(src, append([]string{"BUILD_IMAGE_REPO=" + daggerRepo, "SOURCE_DATE_EPOCH=1764158400", "BUILD_CACHE_DIR=" + memoDir}, daggerEnv...), bin, args...)
		return err
	}
	baselineBuild := func(...string) error {
		n++
		_, err := sh(src, append([]string{"BASELINE_CACHE=" + baselineCache}, baselineEnv...), filepath.Join(repo, "bench", "baseline.sh"), src,
			fmt.Sprintf("%s:bench-%d-%d", baseRepo, stamp, n))
		return err
	}
	edit := func(file string) func(int) error {
		return func(run int) error {
			commit++
			f, err := os.OpenFile(filepath.Join(src, file), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = fmt.Fprintf(f, "# bench edit %d %d\n", time.Now().UnixNano(), run)
			return err
		}
	}
	ctx := context.Background()
	pruneEngine := func() error {
		c, err := dagger.Connect(ctx)
		if err != nil {
			return err
		}
		defer c.Close()
		os.RemoveAll(memoDir)
		return c.Engine().LocalCache().Prune(ctx)
	}
	pruneBaseline := func() error {
		os.RemoveAll(baselineCache)
		out, _ := sh("", nil, "docker", "images", "-q", "--filter", "reference="+baseRepo)
		ids := strings.Fields(out)
		if len(ids) > 0 {
			sh("", nil, "docker", append([]string{"rmi", "-f"}, ids...)...)
		}
		sh("", nil, "docker", "rmi", "-f", "127.0.0.1:5000/library/python:3.13-slim")
		sh("", nil, "docker", "image", "prune", "-f")
		return nil
	}

	type tool struct {
		name    string
		build   func(extra ...string) error
		coldify func() error
	}
	tools := []tool{{"dagger", daggerBuild, pruneEngine}, {"baseline", baselineBuild, pruneBaseline}}
	scenarios := []scenario{
		{name: "cold", what: "empty caches", runs: coldRuns},
		{name: "nochange", what: "nothing changed", runs: runs, prepare: func(int) error { return nil }},
		// The same, with the up-to-date check off: every step asked of the warm engine.
		{name: "nochange-force", what: "nothing changed, Dagger with --force", runs: runs, prepare: func(int) error { return nil },
			daggerArgs: []string{"--force"}},
		{name: "code", what: "app code changed", runs: runs, prepare: edit("app/webapp/__init__.py")},
		{name: "reqs", what: "requirements.txt changed", runs: runs, prepare: edit("app/requirements.txt")},
	}
	if len(onlyScenarios) > 0 {
		var kept []scenario
		for _, sc := range scenarios {
			if onlyScenarios[sc.name] {
				kept = append(kept, sc)
			}
		}
		scenarios = kept
	}
	results := map[string]map[string][]float64{}
	loadStart := loadavg()
	for _, sc := range scenarios {
		results[sc.name] = map[string][]float64{}
		for _, tl := range tools {
			if sc.name != "cold" { // warm-up, untimed
				if err := tl.build(); err != nil {
					return fmt.Errorf("%s warm-up: %w", tl.name, err)
				}
			}
			for r := 0; r < sc.runs; r++ {
				if sc.name == "cold" {
					commit++
					if err := tl.coldify(); err != nil {
						return fmt.Errorf("%s: empty the caches: %w", tl.name, err)
					}
				} else if err := sc.prepare(r); err != nil {
					return err
				}
				var extra []string
				if tl.name == "dagger" {
					extra = sc.daggerArgs
				}
				start := time.Now()
				if err := tl.build(extra...); err != nil {
					return fmt.Errorf("%s %s run %d: %w", tl.name, sc.name, r+1, err)
				}
				d := time.Since(start).Seconds()
				results[sc.name][tl.name] = append(results[sc.name][tl.name], d)
				log.Printf("%-8s %-8s run %d: %6.2f s (load %s)", sc.name, tl.name, r+1, d, loadavg())
			}
		}
	}
	floor, err := execFloor(ctx, 5)
	if err != nil {
		return fmt.Errorf("exec floor: %w", err)
	}
	loadEnd := loadavg()

	return write(outFile, scenarios, results, loadStart, loadEnd, daggerRepo, baseRepo, floor)
}

// execFloor is the engine's price of one uncached container exec: the median
// time of runs of `true` on the base image, each made new by an env variable.
// No build step can cost less; it bounds what a code change can cost.
func execFloor(ctx context.Context, runs int) (float64, error) {
	c, err := dagger.Connect(ctx)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	base := c.Container().From("python:3.13-slim")
	if _, err := base.Sync(ctx); err != nil {
		return 0, err
	}
	var ds []float64
	for range runs {
		ctr := base.WithEnvVariable("BENCH_NONCE", fmt.Sprint(time.Now().UnixNano())).WithExec([]string{"true"})
		start := time.Now()
		if _, err := ctr.Sync(ctx); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start).Seconds())
	}
	return median(ds), nil
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

type imageSize struct{ compressed, unpacked int64 }

// sizes: compressed from the registry manifest (crane), unpacked from dockerd after a pull.
func sizes(ref string) (imageSize, error) {
	var s imageSize
	crane := os.Getenv("WEBAPP_DEV_CRANE")
	out, err := sh("", nil, crane, "manifest", "--insecure", ref)
	if err != nil {
		return s, err
	}
	var m struct {
		Config struct{ Size int64 }
		Layers []struct{ Size int64 }
	}
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		return s, err
	}
	s.compressed = m.Config.Size
	for _, l := range m.Layers {
		s.compressed += l.Size
	}
	if _, err := sh("", nil, "docker", "pull", "-q", ref); err != nil {
		return s, err
	}
	out, err = sh("", nil, "docker", "image", "inspect", "-f", "{{.Size}}", ref)
	if err != nil {
		return s, err
	}
	fmt.Sscan(out, &s.unpacked)
	return s, nil
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

func write(outFile string, scenarios []scenario, results map[string]map[string][]float64,
	loadStart, loadEnd, daggerRepo, baseRepo string, floor float64) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Dagger build vs plain shell baseline — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s/%s; load average %s at start, %s at end (shared with other test runs).\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadStart, loadEnd)
	fmt.Fprintf(&b, "Command: `source /run/webapp-dev/env && go run ./bench %s`; image built the %s way (baseline: docker build of the same kind of Dockerfile).\n\n",
		strings.Join(os.Args[1:], " "), imageBuild)
	b.WriteString("| scenario | runs | Dagger median (s) | baseline median (s) | Dagger/baseline | Dagger runs | baseline runs |\n|---|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		d, bl := results[sc.name]["dagger"], results[sc.name]["baseline"]
		fmt.Fprintf(&b, "| %s (%s) | %d | %s | %s | %s | %s | %s |\n", sc.name, sc.what, len(d), num(median(d)), num(median(bl)),
			num(median(d)/median(bl)), fmtRuns(d), fmtRuns(bl))
	}
	fmt.Fprintf(&b, "\nEngine floor: one uncached exec of `true` on the base image takes %s s (median of 5): "+
		"every step that runs a command pays it (lint, test and the image each run one).\n", num(floor))
	ds, err := latestSize(daggerRepo)
	if err != nil {
		return err
	}
	bs, err := latestSize(baseRepo)
	if err != nil {
		return err
	}
	fmt.Fprintf(&b, "\n| image | compressed (registry manifest: config + layers) | unpacked (`docker image inspect` Size) |\n|---|---|---|\n")
	fmt.Fprintf(&b, "| Dagger image (%s) | %s | %s |\n", imageBuild, mb(ds.compressed), mb(ds.unpacked))
	fmt.Fprintf(&b, "| baseline = naive python:3.13-slim + pip install | %s | %s |\n", mb(bs.compressed), mb(bs.unpacked))
	fmt.Fprintf(&b, "| ratio | %.0f %% | %.0f %% |\n", 100*float64(ds.compressed)/float64(bs.compressed), 100*float64(ds.unpacked)/float64(bs.unpacked))
	fmt.Print(b.String())
	if err := os.MkdirAll(filepath.Dir(outFile), 0o755); err != nil {
		return err
	}
	return os.WriteFile(outFile, []byte(b.String()), 0o644)
}

func latestSize(repo string) (imageSize, error) {
	crane := os.Getenv("WEBAPP_DEV_CRANE")
	out, err := sh("", nil, crane, "ls", "--insecure", repo)
	if err != nil {
		return imageSize{}, err
	}
	tags := strings.Fields(out)
	sort.Slice(tags, func(i, j int) bool { return tagNum(tags[i]) < tagNum(tags[j]) })
	return sizes(repo + ":" + tags[len(tags)-1])
}

func tagNum(t string) int64 {
	var a, b int64
	fmt.Sscanf(t, "bench-%d-%d", &a, &b)
	return a*100000 + b
}

func fmtRuns(xs []float64) string {
	var s []string
	for _, x := range xs {
		s = append(s, num(x))
	}
	return strings.Join(s, ", ")
}

// num prints two decimals, three below 0.1 (a 10 ms run is not "0.01").
func num(x float64) string {
	if x < 0.1 {
		return fmt.Sprintf("%.3f", x)
	}
	return fmt.Sprintf("%.2f", x)
}
