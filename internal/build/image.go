package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// image builds the image the contract's way (the app's Dockerfile, or the
// native layout), and returns it both as a container (to run) and as an OCI
// layout (to inspect and push): a Dockerfile image's layout is exported into
// layoutDir. A Dockerfile image without a contract port takes the port it
// EXPOSEs.
//
// One platform (the default: the build host's) is one image, exactly as
// before platforms existed. More than one: each platform's image is built at
// once (the engine's own natively, the others under its emulation), each in
// its own directory under layoutDir/platforms; the index over them is written
// into layoutDir once their layouts are exported (see layouts).
func (p *session) image(ctx context.Context, revision, layoutDir string) (*builtImage, error) {
	var engine dagger.Platform
	if len(p.app.Platforms) > 1 || (len(p.app.Platforms) == 1 && p.app.Platforms[0] != contract.HostPlatform()) {
		var err error
		if engine, err = p.c.DefaultPlatform(ctx); err != nil {
			return nil, newFailure("image", "ask the engine for its platform", err)
		}
	}
	opt := func(platform string) dagger.Platform {
		if engine == "" || dagger.Platform(platform) == engine {
			return "" // the engine's own: exactly the single-platform graph
		}
		return dagger.Platform(platform)
	}
	if !p.app.MultiPlatform() {
		plat := contract.HostPlatform()
		if len(p.app.Platforms) == 1 {
			plat = p.app.Platforms[0]
		}
		var img *builtImage
		err := p.timed(ctx, "image", func() error {
			var err error
			img, err = p.imageFor(ctx, revision, layoutDir, plat, opt(plat))
			return err
		})
		return img, err
	}
	index := &builtImage{port: p.app.Port, platforms: make([]*builtImage, len(p.app.Platforms))}
	steps := make([]func(context.Context) error, len(p.app.Platforms))
	for i, plat := range p.app.Platforms {
		dir := platformDir(layoutDir, plat)
		steps[i] = func(ctx context.Context) error {
			var err error
			index.platforms[i], err = p.imageFor(ctx, revision, dir, plat, opt(plat))
			if err != nil && errors.Is(context.Cause(ctx), errOtherFailed) {
				return errOtherFailed // stopped: another platform's build failed, and says why
			}
			return err
		}
	}
	err := p.timed(ctx, "image", func() error { return concurrently(ctx, steps...) })
	if err != nil {
		return nil, err
	}
	index.ctr = index.platforms[0].ctr
	if index.port == 0 {
		index.port = index.platforms[0].port
	}
	for _, img := range index.platforms[1:] {
		if img.port != index.platforms[0].port {
			return nil, &stepFailure{Step: "image", Exit: -1, Err: fmt.Errorf("the %s image EXPOSEs port %d, the %s image %d: one container-port for every platform (set container-port in pipeline.yml)",
				index.platforms[0].platform, index.platforms[0].port, img.platform, img.port)}
		}
	}
	return index, nil
}

// imageFor builds the image of one platform (plat, the contract's name;
// engine "" when it is the engine's own platform) into dir.
func (p *session) imageFor(ctx context.Context, revision, layoutDir, plat string, engine dagger.Platform) (*builtImage, error) {
	opts := ci.ImageOpts{App: p.app, Revision: revision, SourceDateEpoch: p.b.Checkout.Epoch,
		DepsEpoch: depsEpoch(ctx, p.b.appDir(), p.b.Checkout.Epoch, p.app), Platform: engine}
	img := &builtImage{port: p.app.Port, platform: plat, emulated: engine != ""}
	var what, baseKey string
	switch p.app.Build {
	case contract.BuildDockerfile:
		// The build context is the app directory as `docker build` sees it:
		// only .git left out, the app's .dockerignore decides the rest.
		ctxDir := p.c.Host().Directory(p.b.appDir(), dagger.HostDirectoryOpts{Exclude: []string{".git"}})
		img.ctr = ci.DockerfileImage(ctxDir, opts)
		what = "build " + p.app.Dir + "/" + p.app.Dockerfile
		if p.app.Target != "" {
			what += " (target " + p.app.Target + ")"
		}
	default:
		if w := ignoredDockerfile(p.app, p.b.appDir()); w != "" && !img.emulated {
			p.log.Warn(w)
		}
		var tarball *dagger.File
		baseKey = p.baseLayerKey(ctx, plat, engine)
		if opts.BaseLayer = p.keptBaseLayer(baseKey); opts.BaseLayer != nil {
			p.log.Info("runtime base layer from the memo", "platform", plat)
		}
		img.layout, tarball = ci.NativeImage(p.c, p.src, opts)
		// The container view of the layout is imported only when something
		// runs or exports it (the smoke test, shell).
		img.ctr = p.c.Container(dagger.ContainerOpts{Platform: engine}).Import(tarball)
		what = "build the native image on " + p.app.BaseImage
	}
	if p.app.MultiPlatform() || img.emulated {
		what += " for " + platformSays(img)
	}
	err := func() error {
		if p.app.Build == contract.BuildDockerfile {
			// The build itself first: its failure is the Dockerfile's, with
			// the failing instruction (not the export's "failed to stat").
			if _, err := img.ctr.Sync(ctx); err != nil {
				return p.dockerfileFailure(err, img)
			}
			img.host = layoutDir
			if err := exportLayout(ctx, img.ctr, layoutDir); err != nil {
				return err
			}
			if p.app.MultiPlatform() || img.emulated {
				if err := samePlatform(ctx, img); err != nil {
					return err
				}
			}
		} else if _, err := img.layout.Sync(ctx); err != nil {
			return err
		} else if opts.BaseLayer == nil {
			p.keepBaseLayer(ctx, img, baseKey)
		}
		if img.port != 0 {
			return nil
		}
		port, err := exposedPort(ctx, img.ctr)
		if err != nil {
			return err
		}
		// A fact of the image, not of the contract (which stays as resolved).
		img.port = port
		p.log.Info("container port from the image's EXPOSE", "port", port)
		return nil
	}()
	if err != nil {
		var sf *stepFailure
		if errors.As(err, &sf) {
			return nil, err
		}
		said := err.Error()
		var ee *dagger.ExecError
		if errors.As(err, &ee) {
			said += "\n" + ee.Stderr
		}
		if m := ci.WrongMachine.FindStringSubmatch(said); m != nil {
			return nil, &stepFailure{Step: "image", Cmd: what, Exit: 3,
				Err: fmt.Errorf("base image %s has no %s image: what its registry serves for %s runs %s binaries (one image manifest, not an index of platforms): remove %s from platforms, or pick a base-image published for it (nothing was pushed)",
					p.baseOf(), plat, plat, m[1], plat)}
		}
		if noPlatformRe.MatchString(err.Error()) {
			return nil, &stepFailure{Step: "image", Cmd: what, Exit: -1,
				Err: fmt.Errorf("base image %s has no %s image (its index lists no manifest for it): remove %s from platforms, or pick a base-image published for it (nothing was pushed)",
					p.baseOf(), plat, plat)}
		}
		return nil, newFailure("image", what, err)
	}
	return img, nil
}

// noPlatformRe is how the engine says a base image has no manifest for the platform asked.
var noPlatformRe = regexp.MustCompile(`no match for platform in manifest|no matching manifest for`)

// baseOf is the image the failing platform's build starts from, as a message names it.
func (p *session) baseOf() string {
	if p.app.Build == contract.BuildDockerfile {
		return "(the FROM of " + p.app.Dir + "/" + p.app.Dockerfile + ")"
	}
	return p.app.BaseImage
}

// platformSays names an image's platform in messages: "linux/arm64 (under emulation)".
func platformSays(img *builtImage) string {
	if img.emulated {
		return img.platform + " (under emulation)"
	}
	return img.platform
}

// exposedPort is the first TCP port the image exposes.
func exposedPort(ctx context.Context, img *dagger.Container) (int, error) {
	ports, err := img.ExposedPorts(ctx)
	if err != nil {
		return 0, err
	}
	for _, port := range ports {
		proto, err := port.Protocol(ctx)
		if err != nil {
			return 0, err
		}
		if proto == dagger.NetworkProtocolTcp {
			return port.Port(ctx)
		}
	}
	return 0, &stepFailure{Step: "image", Exit: -1,
		Err: errors.New("the image exposes no TCP port and the contract sets none: add EXPOSE to the Dockerfile or set container-port in pipeline.yml")}
}

var runFailedRe = regexp.MustCompile(`process "/bin/sh -c (.*?)" did not complete successfully: exit code: (\d+)`)

// dockerfileFailure names the Dockerfile instruction that failed and shows
// what it printed (from the engine's progress output): a RUN reaches the
// engine as `/bin/sh -c CMD`.
func (p *session) dockerfileFailure(err error, img *builtImage) error {
	file, docker := p.app.Dir+"/"+p.app.Dockerfile, "docker build "+p.app.Dir
	if p.app.MultiPlatform() || img.emulated {
		file += " for " + platformSays(img)
		docker = "docker build --platform " + img.platform + " " + p.app.Dir
	}
	m := runFailedRe.FindStringSubmatch(err.Error())
	if m == nil {
		f := newFailure("image", "build "+file, err).(*stepFailure)
		f.Err = fmt.Errorf("docker build of %s failed: %s", file, oneLine(err.Error()))
		return f
	}
	run := strings.ReplaceAll(m[1], `\"`, `"`) // the engine's message quotes the command's quotes
	exit, _ := strconv.Atoi(m[2])
	out := p.events.dockerSteps.wait("RUN "+run, 10*time.Second).of("RUN "+run, 15) // the engine's progress trails the result
	if len(out) == 0 && run != m[1] {
		out = p.events.dockerSteps.of("RUN "+m[1], 15)
	}
	if len(out) == 0 {
		out = []string{"(the instruction printed nothing)"}
	}
	return &stepFailure{Step: "image", Cmd: "RUN " + run + "   (" + file + ")", Exit: exit, Output: out,
		Err: fmt.Errorf("the Dockerfile's RUN %s exited %d (%s; its output above): fix the instruction (%s gives the same)",
			clipOne(run, 80), exit, file, docker)}
}

// smokeFacts is what the smoke test found.
type smokeFacts struct {
	Answer string // the probe's line: what answered, after how long
	User   string // the user the image runs as ("" = root)
	Root   bool
}

// smokeMemo is a passed smoke test as the memo keeps it.
type smokeMemo struct {
	Answer string `json:"answer"`
	User   string `json:"user"`
}

var exitedRe = regexp.MustCompile(`exited: exit code: (\d+)`)

// smoke runs the image as a service in the engine and asks its health path,
// within the contract's bound. A container that exits, never listens or
// never answers 2xx fails the step with its exit code (when it exited) and
// its last log lines; nothing is pushed.
//
// The image is imported into the engine (the container view of its layout,
// read back from the tarball its exec wrote: ~0.5 s) as soon as smoke is
// called; the service starts only once quiet is closed (nil: at once): the
// caller's signal that nothing else it started streams through the engine's
// progress output, which carries the service's log lines.
//
// An index's images are smoke-tested one after the other (each service's log
// lines come through the one progress output), in the contract's order; a
// platform not the engine's runs under emulation, within the contract's
// health timeout times EmulationFactor. A failure names the platform.
func (p *session) smoke(ctx context.Context, img *builtImage, quiet <-chan struct{}) (*smokeFacts, error) {
	var facts smokeFacts
	err := p.timed(ctx, "smoke", func() error {
		if img.platforms == nil && !img.emulated {
			var err error
			facts, err = p.smokeMemo(ctx, img, func() (smokeFacts, error) { return p.serve(ctx, img, quiet) })
			return err
		}
		each := img.platforms
		if each == nil {
			each = []*builtImage{img} // one platform, not the engine's
		}
		var answers []string
		for _, one := range each {
			f, err := p.smokeMemo(ctx, one, func() (smokeFacts, error) { return p.serve(ctx, one, quiet) })
			if err != nil {
				var sf *stepFailure
				if errors.As(err, &sf) {
					sf.Err = fmt.Errorf("%s: %w", platformSays(one), sf.Err)
				}
				return err
			}
			if facts.Answer == "" {
				facts = f
			}
			how := ""
			if one.emulated {
				how = fmt.Sprintf(" (under emulation, health timeout %s: %d× %s)", p.healthTimeout(one), EmulationFactor, p.app.HealthTimeout)
			}
			answers = append(answers, one.platform+how+": "+f.Answer)
		}
		facts.Answer = strings.Join(answers, "; ")
		return nil
	})
	if err != nil {
		return nil, err
	}
	if facts.Root {
		p.log.Warn("the image runs as root: add USER to the Dockerfile (require-non-root makes this fail the build)", "user", facts.User)
	}
	return &facts, nil
}

// smokeMemo wraps a smoke test with the memo: the same image (digest), port
// and path passed before give the same answer, and run as the same user.
// Looked up first: reading the user from the image imports it into the
// engine (~0.5 s), which a memo hit does not need.
func (p *session) smokeMemo(ctx context.Context, img *builtImage, run func() (smokeFacts, error)) (smokeFacts, error) {
	digest, derr := img.file(ctx, "digest")
	key := memoKey("smoke/2", strings.TrimSpace(digest), strconv.Itoa(img.port), p.app.HealthPath)
	var passed smokeMemo
	if b, ok := p.memo.get("smoke", key); ok && derr == nil && json.Unmarshal(b, &passed) == nil && passed.Answer != "" {
		p.log.Info("smoke test passed before for this image", "digest", strings.TrimSpace(digest), "memo", p.memo.dir)
		facts := smokeFacts{Answer: passed.Answer + " (this image, in an earlier build: not run again)", User: passed.User, Root: isRoot(passed.User)}
		return facts, p.nonRoot(facts)
	}
	facts, err := run()
	if err == nil && derr == nil {
		if b, err := json.Marshal(smokeMemo{Answer: facts.Answer, User: facts.User}); err == nil {
			p.memo.put("smoke", key, b)
		}
	}
	return facts, err
}

// nonRoot fails an image that runs as root when the contract requires otherwise.
func (p *session) nonRoot(facts smokeFacts) error {
	if facts.Root && p.app.RequireNonRoot {
		return &stepFailure{Step: "smoke", Exit: -1,
			Err: fmt.Errorf("the image runs as root (user %q) and the contract sets require-non-root: add USER to the Dockerfile", facts.User)}
	}
	return nil
}

// serve runs the smoke test itself: the image as a service, once quiet is
// closed, and its health path asked through a tunnel.
func (p *session) serve(ctx context.Context, img *builtImage, quiet <-chan struct{}) (smokeFacts, error) {
	var facts smokeFacts
	url := fmt.Sprintf("http://%s:%d%s", ci.SmokeHost, img.port, p.app.HealthPath)
	user, err := img.ctr.User(ctx)
	if err != nil {
		return facts, newFailure("smoke", "read the image's user", err)
	}
	facts.User, facts.Root = user, isRoot(user)
	if err := p.nonRoot(facts); err != nil {
		return facts, err
	}
	if quiet != nil {
		select {
		case <-quiet:
		case <-ctx.Done():
			return facts, context.Cause(ctx)
		}
	}
	// The engine waits for the port before the probe starts (with a
	// backoff of up to 10 s between its tries), then the probe has the
	// contract's timeout: the outer bound covers both, so that reaching
	// it means the port never opened.
	listen := 2*p.healthTimeout(img) + 10*time.Second
	sctx, cancel := context.WithTimeout(ctx, listen)
	defer cancel()
	p.events.service.reset()
	run := img.ctr // what runs: the image, with the emulator's setting when it is emulated (ci.Emulated)
	if img.emulated {
		run = ci.Emulated(img.ctr, dagger.Platform(img.platform))
	}
	tun, err := ci.Smoke(p.c, run, img.port).Start(sctx)
	if err != nil && ctx.Err() == nil {
		p.events.service.wait(10 * time.Second) // the engine's progress trails the result
	}
	from := commandFrom(p.app, p.b.appDir())
	cmd := imageCommand(ctx, img.ctr) + "   (from " + from + "); then GET " + url + " (the image as a service in the engine)"
	switch {
	case err != nil && ctx.Err() != nil:
		return facts, err // stopped: another step failed, or the run's own limit
	case err != nil && sctx.Err() != nil:
		return facts, &stepFailure{Step: "smoke", Cmd: cmd, Exit: -1, Output: p.events.service.last(15),
			Err: fmt.Errorf("smoke test: the container did not listen on port %d (waited %s; its last log lines above): check container-port (%d) and the address the server binds (0.0.0.0, not 127.0.0.1) in %s",
				img.port, listen, img.port, from)}
	case err != nil:
		exit := -1
		if m := exitedRe.FindStringSubmatch(err.Error()); m != nil {
			exit, _ = strconv.Atoi(m[1])
		} else if strings.Contains(err.Error(), "exited before healthcheck") {
			exit = 0
		} else {
			return facts, newFailure("smoke", "run the image", err)
		}
		// Read once, after the wait: a line that came since is kept,
		// and none at all is what the rerun is for.
		logs := p.events.service.tail(15)
		if len(logs) == 0 {
			logs = rerun(ctx, run)
		}
		return facts, &stepFailure{Step: "smoke", Cmd: cmd, Exit: exit, Output: logs,
			Err: fmt.Errorf("smoke test: the container exited %d before it listened on port %d (its last log lines above): the image cannot start; its command is %s", exit, img.port, from)}
	}
	// Stopped (killed: its work is done) when the smoke test ends, pass or fail.
	defer func() { _, _ = tun.Stop(context.WithoutCancel(ctx), dagger.ServiceStopOpts{Kill: true}) }()
	endpoint, err := tun.Endpoint(sctx, dagger.ServiceEndpointOpts{Scheme: "http"})
	if err != nil {
		return facts, newFailure("smoke", "reach the image's port through the tunnel", err)
	}
	answer, ok := probe(sctx, endpoint+p.app.HealthPath, url, p.healthTimeout(img))
	facts.Answer = answer
	if !ok {
		logs := p.events.service.wait(2 * time.Second).last(15)
		return facts, &stepFailure{Step: "smoke", Cmd: cmd, Exit: 1, Output: append([]string{answer}, logs...),
			Err: fmt.Errorf("smoke test: %s: fix the app, or health-path in pipeline.yml", answer)}
	}
	return facts, nil
}

// EmulationFactor scales the contract's health timeout for an image smoke-
// tested under emulation (another platform than the engine's: qemu user
// mode, through the host's binfmt handlers). qemu translates every
// instruction: an interpreter's start-up (CPython importing and unmarshalling
// its modules, a server forking its workers) runs several times slower than
// natively, and on a shared 2-core host the slowest starts take longer still.
// 10 keeps an app that answers in 3 s natively (the bench's) well inside its
// bound while a service that never answers still fails in minutes, not
// hours. On a host of the image's own platform (an arm64 CodeBuild) nothing
// is emulated and the contract's timeout applies as it is.
const EmulationFactor = 10

// healthTimeout is the smoke test's bound for img: the contract's, scaled
// under emulation.
func (p *session) healthTimeout(img *builtImage) time.Duration {
	if img.emulated {
		return EmulationFactor * p.app.HealthTimeout
	}
	return p.app.HealthTimeout
}

// rerun runs the image's command once more as a plain command (not a
// service), for what it prints: the engine's progress output may not have
// carried a crashed service's last lines yet. Bounded: a container that
// does not exit this time says nothing.
func rerun(ctx context.Context, img *dagger.Container) []string {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	args, err := img.DefaultArgs(rctx)
	if err != nil {
		return []string{"(the container printed nothing)"}
	}
	ctr := img.WithExec(args, dagger.ContainerWithExecOpts{UseEntrypoint: true, Expect: dagger.ReturnTypeAny})
	stdout, err1 := ctr.Stdout(rctx)
	stderr, err2 := ctr.Stderr(rctx)
	if err1 != nil || err2 != nil {
		var ee *dagger.ExecError
		if errors.As(errors.Join(err1, err2), &ee) {
			stdout, stderr = ee.Stdout, ee.Stderr
		} else if rctx.Err() != nil {
			return []string{"(the container printed nothing, and did not exit when run once more)"}
		} else {
			// It did not start (the engine says why: a missing executable, ...).
			return strings.Split(lastLines(errors.Join(err1, err2).Error(), 5), "\n")
		}
	}
	lines := strings.Split(strings.TrimRight(stdout+stderr, "\n"), "\n")
	if strings.TrimSpace(stdout+stderr) == "" {
		return []string{"(the container printed nothing)"}
	}
	return lastN(lines, 15)
}

// imageCommand is what the image runs: its entrypoint and default args.
func imageCommand(ctx context.Context, img *dagger.Container) string {
	ep, _ := img.Entrypoint(ctx)
	args, _ := img.DefaultArgs(ctx)
	if all := append(ep, args...); len(all) > 0 {
		return shellJoin(all)
	}
	return "(no command)"
}

func isRoot(user string) bool {
	u, _, _ := strings.Cut(user, ":")
	return u == "" || u == "root" || u == "0"
}

func clipOne(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// shellJoin writes a command the way a shell reads it back.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}
