package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/internal/contract"
)

// image builds the image the contract's way (the app's Dockerfile, or the
// native layout), and keeps it both as a container (to run) and as an OCI
// layout (to inspect and push). A Dockerfile image without a contract port
// takes the port it EXPOSEs.
func (p *pipeline) image(ctx context.Context, revision string) error {
	opts := ci.ImageOpts{App: p.app, Revision: revision, SourceDateEpoch: sourceDateEpoch(ctx, p.b.Source),
		DepsEpoch: depsEpoch(ctx, p.b.Source, p.app)}
	p.port = p.app.Port
	var what string
	switch p.app.Build {
	case contract.BuildDockerfile:
		// The build context is the app directory as `docker build` sees it:
		// only .git left out, the app's .dockerignore decides the rest.
		ctxDir := p.c.Host().Directory(filepath.Join(p.b.Source, p.app.Dir), dagger.HostDirectoryOpts{Exclude: []string{".git"}})
		p.img = ci.DockerfileImage(ctxDir, opts)
		what = "build " + p.app.Dir + "/" + p.app.Dockerfile
		if p.app.Target != "" {
			what += " (target " + p.app.Target + ")"
		}
	default:
		if w := ignoredDockerfile(p.app, filepath.Join(p.b.Source, p.app.Dir)); w != "" {
			p.log.Warn(w)
		}
		var tarball *dagger.File
		p.layout, tarball = ci.NativeImage(p.c, p.src, opts)
		// The container view of the layout is imported only when something
		// runs or exports it (the smoke test, shell).
		p.img = p.c.Container().Import(tarball)
		what = "build the native image on " + p.app.BaseImage
	}
	err := p.timed(ctx, "image", func() error {
		if p.app.Build == contract.BuildDockerfile {
			// The build itself first: its failure is the Dockerfile's, with
			// the failing instruction (not the export's "failed to stat").
			if _, err := p.img.Sync(ctx); err != nil {
				return p.dockerfileFailure(err)
			}
			dir := p.layoutDir
			if dir == "" {
				var err error
				if dir, err = os.MkdirTemp("", "build-layout-"); err != nil {
					return err
				}
			}
			p.hostLayout = dir
			if err := exportLayout(ctx, p.img, dir); err != nil {
				return err
			}
		} else if _, err := p.layout.Sync(ctx); err != nil {
			return err
		}
		if p.port != 0 {
			return nil
		}
		port, err := exposedPort(ctx, p.img)
		if err != nil {
			return err
		}
		// Its own field: lint and test read p.app meanwhile (the contract
		// stays one value; the port the image says is a fact of the build).
		p.port = port
		p.log.Info("container port from the image's EXPOSE", "port", port)
		return nil
	})
	if err != nil {
		var sf *stepFailure
		if errors.As(err, &sf) {
			return err
		}
		return newFailure("image", what, err)
	}
	return nil
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
func (p *pipeline) dockerfileFailure(err error) error {
	file := p.app.Dir + "/" + p.app.Dockerfile
	m := runFailedRe.FindStringSubmatch(err.Error())
	if m == nil {
		f := newFailure("image", "build "+file, err).(*stepFailure)
		f.Err = fmt.Errorf("docker build of %s failed: %s", file, oneLine(err.Error()))
		return f
	}
	run := m[1]
	exit, _ := strconv.Atoi(m[2])
	out := p.rep.buildLogs.wait("RUN "+run, 10*time.Second).of("RUN "+run, 15) // the engine's progress trails the result
	if len(out) == 0 {
		out = []string{"(the instruction printed nothing)"}
	}
	return &stepFailure{Step: "image", Cmd: "RUN " + run + "   (" + file + ")", Exit: exit, Output: out,
		Err: fmt.Errorf("the Dockerfile's RUN %s exited %d (%s; its output above): fix the instruction (docker build %s gives the same)",
			clipOne(run, 80), exit, file, p.app.Dir)}
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
func (p *pipeline) smoke(ctx context.Context) (*smokeFacts, error) {
	var facts smokeFacts
	url := fmt.Sprintf("http://%s:%d%s", ci.SmokeHost, p.port, p.app.HealthPath)
	err := p.timed(ctx, "smoke", func() error {
		nonRoot := func(user string) error {
			facts.User, facts.Root = user, isRoot(user)
			if facts.Root && p.app.RequireNonRoot {
				return &stepFailure{Step: "smoke", Exit: -1,
					Err: fmt.Errorf("the image runs as root (user %q) and the contract sets require-non-root: add USER to the Dockerfile", user)}
			}
			return nil
		}
		// The same image (digest), port and path passed before: the same
		// bytes give the same answer, and run as the same user. Looked up
		// first: reading the user from p.img imports the image into the
		// engine (~0.2 s), which a memo hit does not need.
		digest, derr := p.layoutFile(ctx, "digest")
		key := memoKey("smoke/2", strings.TrimSpace(digest), strconv.Itoa(p.port), p.app.HealthPath)
		var passed smokeMemo
		if b, ok := p.memo.get("smoke", key); ok && derr == nil && json.Unmarshal(b, &passed) == nil && passed.Answer != "" {
			facts.Answer = passed.Answer + " (this image, in an earlier build: not run again)"
			p.log.Info("smoke test passed before for this image", "digest", strings.TrimSpace(digest), "memo", p.memo.dir)
			return nonRoot(passed.User)
		}
		user, err := p.img.User(ctx)
		if err != nil {
			return newFailure("smoke", "read the image's user", err)
		}
		if err := nonRoot(user); err != nil {
			return err
		}
		// The engine waits for the port before the probe starts (with a
		// backoff of up to 10 s between its tries), then the probe has the
		// contract's timeout: the outer bound covers both, so that reaching
		// it means the port never opened.
		listen := 2*p.app.HealthTimeout + 10*time.Second
		sctx, cancel := context.WithTimeout(ctx, listen)
		defer cancel()
		p.rep.serviceLogs.reset()
		tun, err := ci.Smoke(p.c, p.img, p.port).Start(sctx)
		if err != nil && ctx.Err() == nil {
			p.rep.serviceLogs.wait(10 * time.Second) // the engine's progress trails the result
		}
		from := commandFrom(p.app, filepath.Join(p.b.Source, p.app.Dir))
		cmd := imageCommand(ctx, p.img) + "   (from " + from + "); then GET " + url + " (the image as a service in the engine)"
		switch {
		case err != nil && ctx.Err() != nil:
			return err // stopped: another step failed, or the run's own limit
		case err != nil && sctx.Err() != nil:
			return &stepFailure{Step: "smoke", Cmd: cmd, Exit: -1, Output: p.rep.serviceLogs.last(15),
				Err: fmt.Errorf("smoke test: the container did not listen on port %d (waited %s; its last log lines above): check container-port (%d) and the address the server binds (0.0.0.0, not 127.0.0.1) in %s",
					p.port, listen, p.port, from)}
		case err != nil:
			exit := -1
			if m := exitedRe.FindStringSubmatch(err.Error()); m != nil {
				exit, _ = strconv.Atoi(m[1])
			} else if strings.Contains(err.Error(), "exited before healthcheck") {
				exit = 0
			} else {
				return newFailure("smoke", "run the image", err)
			}
			// Read once, after the wait: a line that came since is kept,
			// and none at all is what the rerun is for.
			logs := p.rep.serviceLogs.tail(15)
			if len(logs) == 0 {
				logs = p.rerun(ctx)
			}
			return &stepFailure{Step: "smoke", Cmd: cmd, Exit: exit, Output: logs,
				Err: fmt.Errorf("smoke test: the container exited %d before it listened on port %d (its last log lines above): the image cannot start; its command is %s", exit, p.port, from)}
		}
		// Stopped (killed: its work is done) when the smoke test ends, pass or fail.
		defer func() { _, _ = tun.Stop(context.WithoutCancel(ctx), dagger.ServiceStopOpts{Kill: true}) }()
		endpoint, err := tun.Endpoint(sctx, dagger.ServiceEndpointOpts{Scheme: "http"})
		if err != nil {
			return newFailure("smoke", "reach the image's port through the tunnel", err)
		}
		answer, ok := probe(sctx, endpoint+p.app.HealthPath, url, p.app.HealthTimeout)
		facts.Answer = answer
		if ok && derr == nil {
			if b, err := json.Marshal(smokeMemo{Answer: answer, User: user}); err == nil {
				p.memo.put("smoke", key, b)
			}
		}
		if !ok {
			logs := p.rep.serviceLogs.wait(2 * time.Second).last(15)
			return &stepFailure{Step: "smoke", Cmd: cmd, Exit: 1, Output: append([]string{answer}, logs...),
				Err: fmt.Errorf("smoke test: %s: fix the app, or health-path in pipeline.yml", answer)}
		}
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

// rerun runs the image's command once more as a plain command (not a
// service), for what it prints: the engine's progress output may not have
// carried a crashed service's last lines yet. Bounded: a container that
// does not exit this time says nothing.
func (p *pipeline) rerun(ctx context.Context) []string {
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	args, err := p.img.DefaultArgs(rctx)
	if err != nil {
		return []string{"(the container printed nothing)"}
	}
	ctr := p.img.WithExec(args, dagger.ContainerWithExecOpts{UseEntrypoint: true, Expect: dagger.ReturnTypeAny})
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
