// Command bench measures the Dagger build (cmd/build all) against two
// shell baselines on the same app, the same machine, in one invocation, and
// writes a markdown table:
//
//	plain   bench/baseline.sh: the seed's build (pip, flake8, pytest, docker
//	        build, docker push)
//	equal   the same script doing the same work as the Dagger build
//	        (BASELINE_EQUAL=1): also a smoke run of the container, syft's
//	        SBOM, a cosign signature with the dev environment's KMS key
//
//	source /run/webapp-dev/env && go run ./bench -runs 3
//	go run ./bench -image-build dockerfile -scenarios code   # the app's own Dockerfile, both sides
//
// The source is a git repository and every change is a real commit with its
// own commit time, as CodeBuild builds them: the Dagger build takes its
// revision and times from the commit (no SOURCE_DATE_EPOCH), so a code
// change is a new commit, not the same one with other bytes.
//
// Scenarios (each run times the whole command, process start to exit; the
// three tools take turns run by run, so a change in the shared machine's
// load falls on all of them):
//
//	cold      empty caches: the engine's local cache pruned (base image,
//	          pip cache volume, every layer) and the build's memo emptied;
//	          for the baselines the venv, pip cache, built images and the
//	          pulled base image removed. It prunes the SHARED dev engine and
//	          dockerd's images: only with -prune-shared-caches (nobody else
//	          building), never by default
//	fresh     cold caches on a base image held locally: before each run a new
//	          tag of the mirror's base image with an env variable of its own (a new
//	          image id, the same layer) becomes the base image of the tool
//	          (BUILD_BASE_IMAGE, BASELINE_BASE), so every cached step keyed on
//	          it misses: the engine's execs, the pip cache volume (named by the
//	          base), dockerd's layer cache; the build's memo, the baselines'
//	          venv and pip cache are emptied as for cold. Both sides hold the
//	          base's layer already (the engine's content store, dockerd's
//	          images): like for like, and nothing shared is pruned (each run
//	          leaves its tag on the mirror: a manifest and a config, ~2 KB)
//	nochange  rebuild with nothing changed (after one untimed warm-up build):
//	          cmd/build finds its out dir up to date and contacts nothing
//	nochange-force
//	          the same with --force: every step asked of the warm engine
//	code      one app source file changed and committed before each run
//	reqs      requirements.txt changed (a comment) and committed: pip runs again
//
// What crosses the wire, per run: bytes pushed (the blobs of the pushed
// image its repository did not hold yet: what a push uploads, the registry
// having the rest) and bytes pulled by an instance (dev dockerd) that runs
// the previous run's image and deploys this one: `docker pull` of both, the
// layers the second pull downloads, sized from the manifest.
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
	"regexp"
	"runtime"
	"sort"
	"strings"
	"time"

	"dagger.io/dagger"
)

var (
	imageBuild    string
	platforms     string // -platforms: the Dagger build's BUILD_PLATFORMS
	onlyScenarios = map[string]bool{}
	pruneShared   bool
)

type scenario struct {
	name, what string
	runs       int
	prepare    func(run int) error // before each timed run (untimed)
	daggerArgs []string            // extra flags for cmd/build all
}

// tools, in the table's order.
var toolNames = []string{"dagger", "plain", "equal"}

func main() {
	runs := flag.Int("runs", 3, "timed runs per warm scenario")
	coldRuns := flag.Int("cold-runs", 2, "timed runs of the cold scenario")
	out := flag.String("out", filepath.Join("bench", "results", time.Now().UTC().Format("2006-01-02T150405Z")+".md"), "table file")
	flag.StringVar(&platforms, "platforms", "", "the Dagger build's platforms (BUILD_PLATFORMS, e.g. linux/amd64,linux/arm64: an image index, the foreign one built and smoke-tested under emulation); the baselines build the host's only. \"\": the contract's default, the host's")
	flag.StringVar(&imageBuild, "image-build", "native", "how the Dagger build makes the image: native, or dockerfile (bench/Dockerfile.app in app/; the baselines docker-build the same file)")
	only := flag.String("scenarios", "", "comma-separated scenarios to run (default: all; cold only with -prune-shared-caches)")
	flag.BoolVar(&pruneShared, "prune-shared-caches", false, "cold: prune the dev engine's whole cache and dockerd's bench images (no one else may be building)")
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

// sh runs name in dir; its stdout is returned, stderr goes in the error.
func sh(dir string, env []string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("%s %s: %w\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// wire is what one run moved: bytes pushed, bytes the instance pulled.
type wire struct{ pushed, pulled, dockerPulled int64 }

func run(runs, coldRuns int, outFile string) error {
	repo, _ := os.Getwd()
	for _, k := range []string{"_EXPERIMENTAL_DAGGER_RUNNER_HOST", "BUILD_IMAGE_REPO", "WEBAPP_DEV_REGISTRY_PASSWORD_FILE",
		"WEBAPP_DEV_SYFT", "WEBAPP_DEV_COSIGN", "BUILD_SIGNING_KEY", "WEBAPP_DEV_CRANE"} {
		if os.Getenv(k) == "" {
			return fmt.Errorf("%s is not set: source /run/webapp-dev/env", k)
		}
	}
	work, err := os.MkdirTemp("", "webapp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	// One git repository for all the builds (edits never touch the repo):
	// HEAD's tree, committed now, as the pipeline's source action delivers it.
	src := filepath.Join(work, "src")
	if _, err := sh(repo, nil, "sh", "-c", "mkdir -p "+src+" && git archive HEAD | tar -x -C "+src); err != nil {
		return err
	}
	if imageBuild == "dockerfile" {
		if _, err := sh(repo, nil, "cp", filepath.Join("bench", "Dockerfile.app"), filepath.Join(src, "app", "Dockerfile")); err != nil {
			return err
		}
	}
	git := func(args ...string) error {
		_, err := sh(src, []string{"GIT_AUTHOR_NAME=bench", "GIT_AUTHOR_EMAIL=bench@example.com",
			"GIT_COMMITTER_NAME=bench", "GIT_COMMITTER_EMAIL=bench@example.com"}, "git", args...)
		return err
	}
	if err := git("init", "-q", "-b", "main"); err != nil {
		return err
	}
	if err := git("add", "-A"); err != nil {
		return err
	}
	if err := git("commit", "-q", "-m", "bench: the source"); err != nil {
		return err
	}
	var daggerEnv, baselineEnv []string
	if platforms != "" {
		daggerEnv = append(daggerEnv, "BUILD_PLATFORMS="+platforms)
	}
	if imageBuild == "dockerfile" {
		daggerEnv = append(daggerEnv, "BUILD_IMAGE_BUILD=dockerfile")
		baselineEnv = []string{"BASELINE_DOCKERFILE=" + filepath.Join(repo, "bench", "Dockerfile.app")}
	}
	bin := filepath.Join(work, "build")
	if _, err := sh(repo, nil, "go", "build", "-o", bin, "./cmd/build"); err != nil {
		return err
	}
	// Repositories of this invocation only: what a push uploads is counted
	// against what this run pushed before, not against earlier benches.
	stamp := time.Now().Unix()
	registry := strings.Split(os.Getenv("BUILD_IMAGE_REPO"), "/")[0]
	repos := map[string]string{}
	for _, t := range toolNames {
		repos[t] = fmt.Sprintf("%s/webapp-bench-%s-%d", registry, t, stamp)
	}
	pw, err := os.ReadFile(os.Getenv("WEBAPP_DEV_REGISTRY_PASSWORD_FILE"))
	if err != nil {
		return err
	}
	login := exec.Command("docker", "login", "-u", "ci-pusher", "--password-stdin", registry)
	login.Stdin = bytes.NewReader(pw)
	if b, err := login.CombinedOutput(); err != nil {
		return fmt.Errorf("docker login: %v\n%s", err, b)
	}
	// The build's own memo (a passed smoke test, SBOMs by image and layer: internal/build/memo.go),
	// here so that cold can empty it too.
	memoDir := filepath.Join(work, "build-memo")
	n := 0
	bases := map[string]string{} // a tool's base image for its next build (fresh), "" = the default
	daggerBuild := func(extra ...string) (string, error) {
		args := append([]string{"all", "--out", filepath.Join(work, "dist")}, extra...)
		// As CodeBuild: the revision and the times come from the checkout's HEAD.
		env := append([]string{"BUILD_IMAGE_REPO=" + repos["dagger"], "SOURCE_DATE_EPOCH=", "CODEBUILD_RESOLVED_SOURCE_VERSION=",
			"BUILD_CACHE_DIR=" + memoDir}, daggerEnv...)
		if b := bases["dagger"]; b != "" {
			env = append(env, "BUILD_BASE_IMAGE="+b)
		}
		out, err := sh(src, env, bin, args...)
		return strings.TrimSpace(out), err
	}
	baseline := func(name string, env ...string) func(...string) (string, error) {
		return func(...string) (string, error) {
			n++
			env := append(append([]string{"BASELINE_CACHE=" + filepath.Join(work, name+"-cache")}, env...), baselineEnv...)
			if b := bases[name]; b != "" {
				env = append(env, "BASELINE_BASE="+b)
			}
			out, err := sh(src, env, filepath.Join(repo, "bench", "baseline.sh"), src, fmt.Sprintf("%s:bench-%d", repos[name], n))
			return strings.TrimSpace(out), err
		}
	}
	edit := func(file string) func(int) error {
		return func(run int) error {
			f, err := os.OpenFile(filepath.Join(src, file), os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(f, "# bench edit %d %d\n", time.Now().UnixNano(), run)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
			// A commit of its own, its time now (a second apart from the last one at least).
			time.Sleep(time.Second)
			return git("commit", "-q", "-am", fmt.Sprintf("bench: edit %s (%d)", file, run))
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
	pruneBaseline := func(name string) func() error {
		return func() error {
			os.RemoveAll(filepath.Join(work, name+"-cache"))
			out, _ := sh("", nil, "docker", "images", "-q", "--filter", "reference="+repos[name])
			if ids := strings.Fields(out); len(ids) > 0 {
				_, _ = sh("", nil, "docker", append([]string{"rmi", "-f"}, ids...)...)
			}
			_, _ = sh("", nil, "docker", "rmi", "-f", "127.0.0.1:5000/library/python:3.13-slim")
			_, _ = sh("", nil, "docker", "image", "prune", "-f")
			return nil
		}
	}

	type tool struct {
		name    string
		build   func(extra ...string) (string, error)
		coldify func() error
		fresh   func(base string) // the next build's base image ("": the default)
	}
	tools := []tool{
		{"dagger", daggerBuild, pruneEngine, nil},
		{"plain", baseline("plain"), pruneBaseline("plain"), nil},
		{"equal", baseline("equal", "BASELINE_EQUAL=1"), pruneBaseline("equal"), nil},
	}
	for i := range tools {
		name := tools[i].name
		tools[i].fresh = func(base string) { bases[name] = base }
	}
	scenarios := []scenario{
		{name: "cold", what: "empty caches", runs: coldRuns},
		{name: "fresh", what: "cold caches on a base image both sides hold: a new tag of it", runs: coldRuns},
		{name: "nochange", what: "nothing changed", runs: runs, prepare: func(int) error { return nil }},
		// The same, with the up-to-date check off: every step asked of the warm engine.
		{name: "nochange-force", what: "nothing changed, Dagger with --force", runs: runs, prepare: func(int) error { return nil },
			daggerArgs: []string{"--force"}},
		{name: "code", what: "app code changed, a new commit", runs: runs, prepare: edit("app/webapp/__init__.py")},
		{name: "reqs", what: "requirements.txt changed, a new commit", runs: runs, prepare: edit("app/requirements.txt")},
	}
	var kept []scenario
	for _, sc := range scenarios {
		if len(onlyScenarios) > 0 && !onlyScenarios[sc.name] {
			continue
		}
		if sc.name == "cold" && !pruneShared {
			log.Printf("cold skipped: it prunes the shared engine's cache and dockerd's images (-prune-shared-caches, when no one else builds)")
			continue
		}
		kept = append(kept, sc)
	}
	scenarios = kept
	results := map[string]map[string][]float64{}
	wires := map[string]map[string][]wire{}
	known := map[string]map[string]bool{} // blobs each repository holds
	for _, t := range toolNames {
		known[t] = map[string]bool{}
	}
	last := map[string]string{} // the image each tool last pushed: the instance's running one
	loadStart := loadavg()
	for _, sc := range scenarios {
		results[sc.name] = map[string][]float64{}
		wires[sc.name] = map[string][]wire{}
		for _, tl := range tools {
			if sc.name != "cold" && sc.name != "fresh" { // warm-up, untimed
				ref, err := tl.build()
				if err != nil {
					return fmt.Errorf("%s warm-up: %w", tl.name, err)
				}
				if _, err := pushed(ref, known[tl.name]); err != nil {
					return err
				}
				last[tl.name] = ref
			}
		}
		// The tools take turns, run by run (each run its own change and
		// commit): a change in the shared machine's load during a scenario
		// falls on all three alike, not on whichever ran then.
		for r := 0; r < sc.runs; r++ {
			for _, tl := range tools {
				if sc.name == "cold" || sc.name == "fresh" {
					if err := git("commit", "-q", "--allow-empty", "-m", "bench: "+sc.name); err != nil {
						return err
					}
				}
				if sc.name == "fresh" {
					var plats []string // the Dagger build's platforms need an index of them
					if tl.name == "dagger" && strings.Contains(platforms, ",") {
						plats = strings.Split(platforms, ",")
					}
					base, err := freshBase(fmt.Sprintf("%d-%s-%d", stamp, tl.name, r+1), plats)
					if err != nil {
						return err
					}
					tl.fresh(base)
					os.RemoveAll(memoDir)
					os.RemoveAll(filepath.Join(work, tl.name+"-cache"))
				}
				switch sc.name {
				case "cold":
					if err := tl.coldify(); err != nil {
						return fmt.Errorf("%s: empty the caches: %w", tl.name, err)
					}
				case "fresh": // made above
				default:
					if err := sc.prepare(r); err != nil {
						return err
					}
				}
				var extra []string
				if tl.name == "dagger" {
					extra = sc.daggerArgs
				}
				start := time.Now()
				ref, err := tl.build(extra...)
				tl.fresh("")
				if err != nil {
					return fmt.Errorf("%s %s run %d: %w", tl.name, sc.name, r+1, err)
				}
				d := time.Since(start).Seconds()
				results[sc.name][tl.name] = append(results[sc.name][tl.name], d)
				var w wire
				if w.pushed, err = pushed(ref, known[tl.name]); err != nil {
					return err
				}
				if w.pulled, w.dockerPulled, err = pulled(last[tl.name], ref); err != nil {
					return err
				}
				last[tl.name] = ref
				wires[sc.name][tl.name] = append(wires[sc.name][tl.name], w)
				log.Printf("%-14s %-6s run %d: %6.2f s, pushed %s, pulled %s (docker pull on the dev dockerd: %s) (load %s)", sc.name, tl.name, r+1, d,
					human(w.pushed), human(w.pulled), human(w.dockerPulled), loadavg())
			}
		}
	}
	floor, err := execFloor(ctx, 5)
	if err != nil {
		return fmt.Errorf("exec floor: %w", err)
	}
	loadEnd := loadavg()
	return write(outFile, scenarios, results, wires, loadStart, loadEnd, last, floor)
}

// freshBase tags the mirror's base image anew with an environment variable
// of its own (a new config, so a new image id; the same layer) and returns
// the tag: a base image no cache has built on, whose layer both the engine
// and dockerd hold. (A label would not do: the engine keys an image by its
// layers, and every exec by its environment too.)
//
// With more than one platform, each platform's image is made anew so and
// the tag is an index of them (crane mutate of an index gives one image).
func freshBase(label string, platforms []string) (string, error) {
	mirror := os.Getenv("WEBAPP_DEV_MIRROR")
	if mirror == "" {
		return "", fmt.Errorf("fresh: WEBAPP_DEV_MIRROR is not set: source /run/webapp-dev/env")
	}
	crane := os.Getenv("WEBAPP_DEV_CRANE")
	tag := mirror + "/library/python:bench-fresh-" + label
	mutate := func(to string, platform ...string) error {
		args := []string{"mutate", "--insecure", "--env", "BENCH_FRESH=" + label, mirror + "/library/python:3.13-slim", "-t", to}
		if len(platform) > 0 {
			args = append(args, "--platform", platform[0])
		}
		if _, err := sh("", nil, crane, args...); err != nil {
			return fmt.Errorf("fresh: tag the base image anew: %w", err)
		}
		return nil
	}
	if len(platforms) < 2 {
		return tag, mutate(tag)
	}
	args := []string{"index", "append", "--insecure", "--docker-empty-base", "-t", tag}
	for _, p := range platforms {
		one := tag + "-" + strings.ReplaceAll(p, "/", "-")
		if err := mutate(one, p); err != nil {
			return "", err
		}
		args = append(args, "-m", one)
	}
	if _, err := sh("", nil, crane, args...); err != nil {
		return "", fmt.Errorf("fresh: an index of the platforms' new images: %w", err)
	}
	return tag, nil
}

// manifest is an image manifest as the registry serves it.
type manifest struct {
	Config struct {
		Digest string
		Size   int64
	}
	Layers []struct {
		Digest string
		Size   int64
	}
}

func getManifest(ref string) (manifest, int64, error) {
	out, err := sh("", nil, os.Getenv("WEBAPP_DEV_CRANE"), "manifest", "--insecure", ref)
	var m manifest
	if err != nil {
		return m, 0, err
	}
	return m, int64(len(strings.TrimSpace(out))), json.Unmarshal([]byte(out), &m)
}

// platformRefs is ref's images: ref itself, or each image of an index (by digest).
func platformRefs(ref string) ([]string, int64, error) {
	out, err := sh("", nil, os.Getenv("WEBAPP_DEV_CRANE"), "manifest", "--insecure", ref)
	if err != nil {
		return nil, 0, err
	}
	var idx struct {
		Manifests []struct {
			Digest   string
			Platform struct{ OS, Architecture string }
		}
	}
	if err := json.Unmarshal([]byte(out), &idx); err != nil || len(idx.Manifests) == 0 {
		return []string{ref}, 0, err
	}
	repo := ref[:strings.LastIndex(ref, "@")]
	var refs []string
	for _, d := range idx.Manifests {
		refs = append(refs, repo+"@"+d.Digest)
	}
	return refs, int64(len(strings.TrimSpace(out))), nil
}

// hostImage is what an instance of this machine's platform pulls of ref:
// ref, or its image for linux/GOARCH when it is an index.
func hostImage(ref string) (string, error) {
	if ref == "" {
		return "", nil
	}
	out, err := sh("", nil, os.Getenv("WEBAPP_DEV_CRANE"), "digest", "--insecure", "--platform", "linux/"+runtime.GOARCH, ref)
	if err != nil {
		return "", err
	}
	return ref[:strings.LastIndex(ref, "@")] + "@" + strings.TrimSpace(out), nil
}

// pushed is what a push of ref uploaded: its manifest and the blobs the
// repository did not hold (known, updated). A push asks the registry for
// each blob first and sends only the missing ones (docker and
// go-containerregistry alike).
func pushed(ref string, known map[string]bool) (int64, error) {
	dig := ref[strings.LastIndex(ref, "@")+1:]
	if known[dig] {
		return 0, nil // the same image again (up to date): nothing sent
	}
	refs, indexSize, err := platformRefs(ref)
	if err != nil {
		return 0, err
	}
	if len(refs) > 1 || refs[0] != ref { // an index: itself, and what each of its images sent
		known[dig] = true
		total := indexSize
		for _, r := range refs {
			n, err := pushed(r, known)
			if err != nil {
				return 0, err
			}
			total += n
		}
		return total, nil
	}
	m, size, err := getManifest(ref)
	if err != nil {
		return 0, err
	}
	known[dig] = true
	total := size
	blobs := []struct {
		d string
		n int64
	}{{m.Config.Digest, m.Config.Size}}
	for _, l := range m.Layers {
		blobs = append(blobs, struct {
			d string
			n int64
		}{l.Digest, l.Size})
	}
	for _, b := range blobs {
		if !known[b.d] {
			known[b.d] = true
			total += b.n
		}
	}
	return total, nil
}

var pullDone = regexp.MustCompile(`(?m)^([0-9a-f]{12}): Pull complete`)

// pulled is what an instance running prev downloads to deploy ref: the
// config and the layers of ref that prev does not have (the registry's
// manifests; docker pulls by layer digest). dockerPulled is the same
// measured: dockerd pulls prev (the running deployment), then ref; the
// layers `docker pull` reports as downloaded, sized from the manifest. The
// dev dockerd is also where the baselines build, so it holds their layers
// already: only the Dagger image's figure is an instance's there.
func pulled(prev, ref string) (manifestDiff, dockerPulled int64, err error) {
	if ref, err = hostImage(ref); err != nil {
		return 0, 0, err
	}
	if prev, err = hostImage(prev); err != nil {
		return 0, 0, err
	}
	m, _, err := getManifest(ref)
	if err != nil {
		return 0, 0, err
	}
	had := map[string]bool{}
	if prev != "" {
		pm, _, err := getManifest(prev)
		if err != nil {
			return 0, 0, err
		}
		had[pm.Config.Digest] = true
		for _, l := range pm.Layers {
			had[l.Digest] = true
		}
		if _, err := sh("", nil, "docker", "pull", "-q", prev); err != nil {
			return 0, 0, err
		}
	}
	if !had[m.Config.Digest] {
		manifestDiff += m.Config.Size
		dockerPulled += m.Config.Size
	}
	for _, l := range m.Layers {
		if !had[l.Digest] {
			manifestDiff += l.Size
		}
	}
	out, err := sh("", nil, "docker", "pull", ref)
	if err != nil {
		return 0, 0, err
	}
	done := map[string]bool{}
	for _, g := range pullDone.FindAllStringSubmatch(out, -1) {
		done[g[1]] = true
	}
	for _, l := range m.Layers {
		if done[strings.TrimPrefix(l.Digest, "sha256:")[:12]] {
			dockerPulled += l.Size
		}
	}
	return manifestDiff, dockerPulled, nil
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

// sizes: compressed from the registry manifest, unpacked from dockerd after a pull.
func sizes(ref string) (imageSize, error) {
	var s imageSize
	ref, err := hostImage(ref)
	if err != nil {
		return s, err
	}
	m, _, err := getManifest(ref)
	if err != nil {
		return s, err
	}
	s.compressed = m.Config.Size
	for _, l := range m.Layers {
		s.compressed += l.Size
	}
	if _, err := sh("", nil, "docker", "pull", "-q", ref); err != nil {
		return s, err
	}
	out, err := sh("", nil, "docker", "image", "inspect", "-f", "{{.Size}}", ref)
	if err != nil {
		return s, err
	}
	fmt.Sscan(out, &s.unpacked)
	return s, nil
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/1e6) }

// human is a byte count as B, KB or MB.
func human(b int64) string {
	switch {
	case b < 1000:
		return fmt.Sprintf("%d B", b)
	case b < 1e6:
		return fmt.Sprintf("%.1f KB", float64(b)/1e3)
	}
	return mb(b)
}

func medianBytes(ws []wire, f func(wire) int64) int64 {
	var xs []float64
	for _, w := range ws {
		xs = append(xs, float64(f(w)))
	}
	return int64(median(xs))
}

func write(outFile string, scenarios []scenario, results map[string]map[string][]float64, wires map[string]map[string][]wire,
	loadStart, loadEnd string, last map[string]string, floor float64) error {
	var b strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&b, "# Dagger build vs the plain and the equal-work shell baselines — %s\n\n", time.Now().UTC().Format(time.RFC3339))
	fmt.Fprintf(&b, "Machine: %s, %d CPUs, %s/%s; load average %s at start, %s at end (shared with other test runs).\n",
		host, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, loadStart, loadEnd)
	fmt.Fprintf(&b, "Command: `source /run/webapp-dev/env && go run ./bench %s`; image built the %s way. Every change is a new commit (its own commit time, no SOURCE_DATE_EPOCH). "+
		"plain = bench/baseline.sh (the seed's pip, flake8, pytest, docker build, push); equal = the same plus a smoke run, syft's SBOM and a cosign signature with the KMS key (BASELINE_EQUAL=1).\n\n",
		strings.Join(os.Args[1:], " "), imageBuild)
	b.WriteString("| scenario | runs | Dagger median (s) | plain median (s) | equal median (s) | Dagger/plain | Dagger/equal | Dagger runs | plain runs | equal runs |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, sc := range scenarios {
		r := results[sc.name]
		d, p, e := r["dagger"], r["plain"], r["equal"]
		fmt.Fprintf(&b, "| %s (%s) | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", sc.name, sc.what, len(d), num(median(d)), num(median(p)), num(median(e)),
			num(median(d)/median(p)), num(median(d)/median(e)), fmtRuns(d), fmtRuns(p), fmtRuns(e))
	}
	fmt.Fprintf(&b, "\nEngine floor: one uncached exec of `true` on the base image takes %s s (median of 5): "+
		"every step that runs a command pays it (lint, test and the image each run one).\n", num(floor))
	sz := map[string]imageSize{}
	for _, t := range toolNames {
		if last[t] == "" {
			continue
		}
		s, err := sizes(last[t])
		if err != nil {
			return err
		}
		sz[t] = s
	}
	b.WriteString("\nWhat crosses the wire (medians per run): pushed = manifest + the blobs the repository did not hold yet; " +
		"pulled = what an instance running the previous run's image downloads to deploy this one (config + the layers the previous manifest lacks); " +
		"Dagger docker pull = the same measured: the dev dockerd pulls the previous image, then this one (layers `docker pull` reports as pulled + config; the baselines build on that dockerd, so it holds their layers already); " +
		"% = of the image's compressed size. Image only: signatures and attestations aside.\n\n")
	b.WriteString("| scenario | Dagger pushed | Dagger pulled | Dagger docker pull | plain pushed | plain pulled | equal pushed | equal pulled |\n|---|---|---|---|---|---|---|---|\n")
	pct := func(x int64, t string) string {
		if sz[t].compressed == 0 {
			return human(x)
		}
		return fmt.Sprintf("%s (%.2f %%)", human(x), 100*float64(x)/float64(sz[t].compressed))
	}
	for _, sc := range scenarios {
		fmt.Fprintf(&b, "| %s", sc.name)
		for _, t := range toolNames {
			ws := wires[sc.name][t]
			fmt.Fprintf(&b, " | %s | %s", pct(medianBytes(ws, func(w wire) int64 { return w.pushed }), t),
				pct(medianBytes(ws, func(w wire) int64 { return w.pulled }), t))
			if t == "dagger" {
				fmt.Fprintf(&b, " | %s", pct(medianBytes(ws, func(w wire) int64 { return w.dockerPulled }), t))
			}
		}
		b.WriteString(" |\n")
	}
	b.WriteString("\n| image | compressed (registry manifest: config + layers) | unpacked (`docker image inspect` Size) |\n|---|---|---|\n")
	for _, t := range toolNames {
		fmt.Fprintf(&b, "| %s (%s) | %s | %s |\n", t, last[t], mb(sz[t].compressed), mb(sz[t].unpacked))
	}
	fmt.Print(b.String())
	if err := os.MkdirAll(filepath.Dir(outFile), 0o755); err != nil {
		return err
	}
	return os.WriteFile(outFile, []byte(b.String()), 0o644)
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
