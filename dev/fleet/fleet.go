// Package fleet simulates a CodeDeploy deployment group of N EC2 instances behind a load
// balancer, on one machine: each instance is a dockerd of its own (own data root, socket and
// bridge; its containers published on a loopback address of its own, 127.X.Y.N, so container
// names and host ports never collide), in front of them a real HAProxy (Debian's package) on
// 127.0.0.1. A deployment goes instance by instance as CodeDeploy's in-place deployment with
// traffic control does (OneAtATime, HalfAtATime, AllAtOnce with their minimum healthy hosts):
// BlockTraffic drains the instance out of the load balancer, the revision is deployed by the
// real agent (codedeploy-local), AllowTraffic puts it back once HAProxy sees it healthy. A failed
// instance stops the deployment (when the minimum healthy hosts says so) and never gets traffic.
//
// An instance may be of another platform than this machine (Options.Platforms, issue 21: a
// Graviton instance beside amd64 ones): its dockerd runs that platform's containers under
// emulation (qemu-user-static in binfmt_misc, dev/env.sh install_qemu).
//
// Why hand-written: nothing packaged simulates CodeDeploy's fleet scheduling; the pieces it
// drives (dockerd, HAProxy, the agent) are the real ones.
package fleet

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/acme/webapp-pipeline/dev/codedeploy"
	"github.com/acme/webapp-pipeline/dev/devenv"
)

// Config is a deployment configuration (CodeDeployDefault.*).
type Config struct {
	Name string
	// batch and minHealthy for n instances; oneAtATime: the deployment fails at the first
	// failed instance but the last (CodeDeploy's MOST_CONCURRENCY 1 rule).
	batch, minHealthy func(n int) int
	oneAtATime        bool
}

// Configs are CodeDeploy's predefined EC2 deployment configurations.
var Configs = map[string]Config{
	"OneAtATime": {Name: "CodeDeployDefault.OneAtATime", oneAtATime: true,
		batch: func(int) int { return 1 }, minHealthy: func(n int) int { return n - 1 }},
	// FLEET_PERCENT 50: up to half the instances at a time (rounded down, at least one)
	"HalfAtATime": {Name: "CodeDeployDefault.HalfAtATime",
		batch:      func(n int) int { return max(1, n/2) },
		minHealthy: func(n int) int { return int(math.Ceil(float64(n) / 2)) }},
	// HOST_COUNT 0: all at once; succeeds if one instance does
	"AllAtOnce": {Name: "CodeDeployDefault.AllAtOnce",
		batch: func(n int) int { return n }, minHealthy: func(int) int { return 1 }},
}

// Instance is one simulated EC2 instance.
type Instance struct {
	Name   string // i1, i2 ...
	Addr   string // 127.X.Y.N: where its containers are published
	Dir    string // the agent's instance dir (deployment-root) and the dockerd's state
	Socket string // its dockerd
	// Platform is what the instance is ("linux/arm64"; "": this machine's). Its docker client is
	// set to that platform (DOCKER_DEFAULT_PLATFORM in the environment its hooks run in, as an
	// instance's /etc/environment would hold it): a `docker pull` of an image index then takes
	// that platform's image and `docker run` runs it, as on a Graviton instance, where dockerd's
	// own platform is arm64 and nothing needs setting. Here dockerd is this machine's (amd64)
	// and runs the arm64 container under qemu.
	Platform string
	bridge   string
	subnet   string
	dockerd  *exec.Cmd
}

// Fleet is N instances behind HAProxy.
type Fleet struct {
	Dir      string
	Port     int // the load balancer's port on 127.0.0.1
	HostPort int // HOST_PORT on every instance
	Env      devenv.Env
	Agent    codedeploy.Agent
	Log      io.Writer

	Instances []*Instance
	haproxy   *exec.Cmd
	adminSock string
	check     *HTTPCheck
	settings  []string
}

// HTTPCheck is a target group's health check for HAProxy: GET Path must answer a status in
// Matcher ("200-399", "200,302") Rise times in a row; Fall failures take the instance out.
type HTTPCheck struct {
	Path       string
	Matcher    string
	Interval   time.Duration
	Timeout    time.Duration
	Rise, Fall int
}

// Options are what a fleet may differ in: the instances' HOST_PORT (8080 when 0) and the
// load balancer's health check (HAProxy's TCP check when nil).
type Options struct {
	HostPort int
	Check    *HTTPCheck
	// Settings are instance settings every instance's hooks get (deploy.env lines, e.g.
	// WATCH_SECONDS=15), after the fleet's own.
	Settings []string
	// Platforms: instance i (from 1) is of Platforms[i-1] ("linux/arm64"); "" or past the end:
	// this machine's platform.
	Platforms []string
}

// emulatedHealthTimeout: an instance of a foreign platform runs its containers under qemu; the
// python stand-in's server takes seconds longer to answer there (every module compiled at start
// under emulation), so its hooks wait longer for health (HEALTH_TIMEOUT) than the native ones.
const emulatedHealthTimeout = 90

// machineArch: the platform this machine's dockerd runs natively.
func machineArch() string { return "linux/" + runtime.GOARCH }

// canRun says why this machine cannot run platform's programs, or nil: a foreign arm64 or amd64
// needs its qemu registered in binfmt_misc (dev/env.sh install_qemu).
func canRun(platform string) error {
	if platform == machineArch() {
		return nil
	}
	q := map[string]string{"linux/arm64": "qemu-aarch64", "linux/amd64": "qemu-x86_64"}[platform]
	if q == "" {
		return fmt.Errorf("platform %q: want linux/amd64 or linux/arm64", platform)
	}
	b, err := os.ReadFile("/proc/sys/fs/binfmt_misc/" + q)
	if err != nil || !strings.HasPrefix(string(b), "enabled") {
		return fmt.Errorf("this machine cannot run %s programs (no %s in binfmt_misc): run dev/env.sh up (install_qemu)", platform, q)
	}
	return nil
}

// Start brings up n instances (dockerd each) and HAProxy. Stop undoes it.
func Start(ctx context.Context, dir string, n, lbPort int, env devenv.Env, agent codedeploy.Agent, log io.Writer) (*Fleet, error) {
	return StartWith(ctx, dir, n, lbPort, env, agent, log, Options{})
}

// StartWith is Start with Options.
func StartWith(ctx context.Context, dir string, n, lbPort int, env devenv.Env, agent codedeploy.Agent, log io.Writer, o Options) (*Fleet, error) {
	if n < 1 || n > 9 {
		return nil, fmt.Errorf("fleet: %d instances: want 1..9", n)
	}
	if log == nil {
		log = io.Discard
	}
	f := &Fleet{Dir: dir, Port: lbPort, HostPort: cmp.Or(o.HostPort, 8080), Env: env, Agent: agent, Log: log,
		adminSock: filepath.Join(dir, "haproxy.sock"), check: o.Check, settings: o.Settings}
	// Addresses, bridges and subnets derive from the load balancer's port, so two fleets (e.g. a
	// test and `make fleet`) can run at once.
	hi, lo := 1+(lbPort>>8)%254, lbPort&255
	for i := 1; i <= n; i++ {
		in := &Instance{Name: fmt.Sprintf("i%d", i), Addr: fmt.Sprintf("127.%d.%d.%d", hi, lo, i),
			Dir: filepath.Join(dir, fmt.Sprintf("i%d", i)), bridge: fmt.Sprintf("wf%d-%d", lbPort, i),
			subnet: fmt.Sprintf("10.%d.%d.1/24", 100+lbPort%100, i)}
		in.Socket = filepath.Join(in.Dir, "docker.sock")
		if i <= len(o.Platforms) && o.Platforms[i-1] != "" && o.Platforms[i-1] != machineArch() {
			in.Platform = o.Platforms[i-1]
			if err := canRun(in.Platform); err != nil {
				return nil, fmt.Errorf("instance %s: %w", in.Name, err)
			}
		}
		f.Instances = append(f.Instances, in)
	}
	// the ports the fleet needs, free before anything starts: a port held elsewhere (e.g. a
	// container published on 0.0.0.0 by another tool) would fail every first deployment at
	// "bind: address already in use", deep in a hook's log
	addrs := []string{fmt.Sprintf("127.0.0.1:%d", lbPort)}
	for _, in := range f.Instances {
		addrs = append(addrs, fmt.Sprintf("%s:%d", in.Addr, f.HostPort))
	}
	for _, a := range addrs {
		if err := PortFree(a); err != nil {
			return nil, err
		}
	}
	for _, in := range f.Instances {
		if err := f.startInstance(ctx, in); err != nil {
			f.Stop()
			return nil, fmt.Errorf("instance %s: %w", in.Name, err)
		}
	}
	if err := f.startHAProxy(ctx); err != nil {
		f.Stop()
		return nil, err
	}
	return f, nil
}

// PortFree checks that addr (host:port) can be listened on; if not, the error names the process
// holding the port (from ss) and how to free it.
func PortFree(addr string) error {
	l, err := net.Listen("tcp", addr)
	if err == nil {
		return l.Close()
	}
	_, port, _ := net.SplitHostPort(addr)
	holder := "another process"
	if out, serr := exec.Command("ss", "-Hltnp", "sport = :"+port).Output(); serr == nil {
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			f := strings.Fields(line)
			if len(f) >= 6 {
				holder = f[3] + " " + strings.Join(f[5:], " ")
				break
			}
		}
	}
	return fmt.Errorf("%s is taken, held by %s (a container published on 0.0.0.0:%s holds the port on every address): stop it or choose another port", addr, holder, port)
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// startInstance: a bridge of its own (no iptables: containers are reached through docker's
// userland proxy on the instance's loopback address), a dockerd on its own socket and roots.
func (f *Fleet) startInstance(ctx context.Context, in *Instance) error {
	for _, d := range []string{in.Dir, filepath.Join(in.Dir, "exec"), filepath.Join(in.Dir, "docker-config")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	_ = run(ctx, "ip", "link", "delete", in.bridge) // left by a killed run
	if err := run(ctx, "ip", "link", "add", in.bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := run(ctx, "ip", "addr", "add", in.subnet, "dev", in.bridge); err != nil {
		return err
	}
	if err := run(ctx, "ip", "link", "set", in.bridge, "up"); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(in.Dir, "dockerd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	in.dockerd = exec.Command("dockerd", "--data-root", filepath.Join(f.Dir, "data-"+in.Name),
		"--exec-root", filepath.Join(in.Dir, "exec"), "--host", "unix://"+in.Socket,
		"--pidfile", filepath.Join(in.Dir, "dockerd.pid"), "--bridge", in.bridge,
		"--iptables=false", "--ip-masq=false", "--ip-forward=false",
		"--insecure-registry", f.Env.Registry)
	in.dockerd.Stdout, in.dockerd.Stderr = logf, logf
	in.dockerd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := in.dockerd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if err := exec.CommandContext(ctx, "docker", "-H", "unix://"+in.Socket, "version").Run(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("its dockerd did not come up in 60 s: %s", filepath.Join(in.Dir, "dockerd.log"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// startHAProxy: round robin over the instances with TCP health checks (the app's health path is
// the hooks' business; CodeDeploy's Block/AllowTraffic decide membership) and no retries on
// another server (an ALB does not retry either: what fails, the prober sees).
func (f *Fleet) startHAProxy(ctx context.Context) error {
	var servers strings.Builder
	check, checkOpts := "check inter 500ms fall 2 rise 1", ""
	if c := f.check; c != nil {
		check = fmt.Sprintf("check inter %dms fall %d rise %d", c.Interval.Milliseconds(), c.Fall, c.Rise)
		checkOpts = fmt.Sprintf("  option httpchk GET %s\n  http-check expect rstatus %s\n  timeout check %dms\n",
			c.Path, statusRegexp(c.Matcher), c.Timeout.Milliseconds())
	}
	for _, in := range f.Instances {
		// every instance starts out of the load balancer: AllowTraffic of its first deployment
		// puts it in
		fmt.Fprintf(&servers, "  server %s %s:%d %s disabled\n", in.Name, in.Addr, f.HostPort, check)
	}
	cfg := fmt.Sprintf(`global
  stats socket %s mode 600 level admin
  pidfile %s
defaults
  mode http
  timeout connect 1s
  timeout client 10s
  timeout server 10s
  retries 0
frontend web
  bind 127.0.0.1:%d
  default_backend app
backend app
  balance roundrobin
  http-response set-header X-Instance %%s
%s%s`, f.adminSock, filepath.Join(f.Dir, "haproxy.pid"), f.Port, checkOpts, servers.String())
	path := filepath.Join(f.Dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		return err
	}
	if err := run(ctx, "haproxy", "-c", "-q", "-f", path); err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(f.Dir, "haproxy.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	f.haproxy = exec.Command("haproxy", "-db", "-f", path)
	f.haproxy.Stdout, f.haproxy.Stderr = logf, logf
	f.haproxy.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := f.haproxy.Start(); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if _, err := f.admin("show info"); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("haproxy did not come up: %s", filepath.Join(f.Dir, "haproxy.log"))
}

// statusRegexp turns a target group matcher ("200-399", "200,302") into an anchored regexp of
// the status codes (a range of whole hundreds as a character class).
func statusRegexp(matcher string) string {
	var alts []string
	for _, part := range strings.Split(matcher, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		a, _ := strconv.Atoi(lo)
		b := a
		if isRange {
			b, _ = strconv.Atoi(hi)
		}
		if a%100 == 0 && b%100 == 99 {
			alts = append(alts, fmt.Sprintf("[%d-%d][0-9][0-9]", a/100, b/100))
			continue
		}
		for code := a; code <= b; code++ {
			alts = append(alts, strconv.Itoa(code))
		}
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}

// Stop ends HAProxy and the dockerds (their containers stop with them) and removes the bridges.
func (f *Fleet) Stop() {
	stop := func(c *exec.Cmd) {
		if c == nil || c.Process == nil {
			return
		}
		_ = c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			_ = c.Process.Kill()
			<-done
		}
	}
	stop(f.haproxy)
	var wg sync.WaitGroup
	for _, in := range f.Instances {
		wg.Add(1)
		go func(in *Instance) {
			defer wg.Done()
			if in.dockerd != nil { // its containers would start again with the next run's dockerd
				if ids, err := exec.Command("docker", "-H", "unix://"+in.Socket, "ps", "-aq").Output(); err == nil && len(ids) > 0 {
					_ = exec.Command("docker", append([]string{"-H", "unix://" + in.Socket, "rm", "--force"}, strings.Fields(string(ids))...)...).Run()
				}
			}
			stop(in.dockerd)
			devenv.StopProxies(in.StateDir())
			_ = exec.Command("ip", "link", "delete", in.bridge).Run()
		}(in)
	}
	wg.Wait()
}

// platformEnv: what makes a foreign platform's instance pull and run its platform's image.
func (in *Instance) platformEnv() []string {
	if in.Platform == "" {
		return nil
	}
	return []string{"DOCKER_DEFAULT_PLATFORM=" + in.Platform, fmt.Sprintf("HEALTH_TIMEOUT=%d", emulatedHealthTimeout)}
}

// StateDir is an instance's STATE_DIR (scripts/proxy.sh): its proxies' files and the journal.
func (in *Instance) StateDir() string { return filepath.Join(in.Dir, "state") }

// admin sends one command to HAProxy's runtime API and returns its answer.
func (f *Fleet) admin(cmd string) (string, error) {
	c, err := net.DialTimeout("unix", f.adminSock, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, cmd+"\n"); err != nil {
		return "", err
	}
	b, err := io.ReadAll(c)
	return strings.TrimSpace(string(b)), err
}

// serverStatus: HAProxy's view of one instance (UP, DOWN, MAINT, DRAIN ...) and its current
// sessions, from "show stat".
func (f *Fleet) serverStatus(name string) (status string, sessions int, err error) {
	out, err := f.admin("show stat")
	if err != nil {
		return "", 0, err
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		cols := strings.Split(sc.Text(), ",")
		if len(cols) > 17 && cols[0] == "app" && cols[1] == name {
			n, _ := strconv.Atoi(cols[4])
			return cols[17], n, nil
		}
	}
	return "", 0, fmt.Errorf("haproxy has no server %s", name)
}

// BlockTraffic takes an instance out of the load balancer as CodeDeploy does with a target
// group: no new requests (drain), then wait until its in-flight requests ended (at most the
// deregistration delay), then maintenance.
func (f *Fleet) BlockTraffic(in *Instance, delay time.Duration) error {
	if _, err := f.admin("set server app/" + in.Name + " state drain"); err != nil {
		return err
	}
	for end := time.Now().Add(delay); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if _, n, err := f.serverStatus(in.Name); err != nil || n == 0 {
			break
		}
	}
	_, err := f.admin("set server app/" + in.Name + " state maint")
	return err
}

// AllowTraffic puts the instance back and waits until HAProxy's health check finds it UP.
func (f *Fleet) AllowTraffic(in *Instance, timeout time.Duration) error {
	if _, err := f.admin("set server app/" + in.Name + " state ready"); err != nil {
		return err
	}
	for end := time.Now().Add(timeout); ; time.Sleep(100 * time.Millisecond) {
		st, _, err := f.serverStatus(in.Name)
		if err == nil && strings.HasPrefix(st, "UP") {
			return nil
		}
		if time.Now().After(end) {
			return fmt.Errorf("AllowTraffic: %s is %s in the load balancer after %s", in.Name, st, timeout)
		}
	}
}

// InstanceResult is one instance's part of a fleet deployment.
type InstanceResult struct {
	Instance string
	Status   string // Succeeded, Failed, Skipped
	Err      error
	Took     time.Duration
}

// Result of a fleet deployment.
type Result struct {
	Config    string
	Instances []InstanceResult
	Err       error
	Took      time.Duration
}

// Deploy deploys bundle to the fleet under cfg. Each instance: BlockTraffic, the agent's
// deployment, AllowTraffic if it succeeded (a failed instance stays out of the load balancer).
// instanceEnv, if not nil, adds instance settings of one instance (e.g. a broken app env file).
func (f *Fleet) Deploy(ctx context.Context, bundle string, cfg Config, instanceEnv func(*Instance) []string) Result {
	began := time.Now()
	n := len(f.Instances)
	res := Result{Config: cfg.Name}
	batch, minHealthy := cfg.batch(n), cfg.minHealthy(n)
	failed, succeeded := 0, 0
	for start := 0; start < n; start += batch {
		end := min(start+batch, n)
		results := make([]InstanceResult, end-start)
		var wg sync.WaitGroup
		for i := start; i < end; i++ {
			wg.Add(1)
			go func(k int, in *Instance) {
				defer wg.Done()
				var extra []string
				if instanceEnv != nil {
					extra = instanceEnv(in)
				}
				results[k] = f.deployOne(ctx, in, bundle, extra)
			}(i-start, f.Instances[i])
		}
		wg.Wait()
		for _, r := range results {
			res.Instances = append(res.Instances, r)
			if r.Status == codedeploy.Succeeded {
				succeeded++
			} else {
				failed++
			}
		}
		last := end == n
		stop := false
		switch {
		case cfg.oneAtATime:
			stop = failed > 0 && !last
		default:
			stop = n-failed < minHealthy
		}
		if stop {
			for _, in := range f.Instances[end:] {
				res.Instances = append(res.Instances, InstanceResult{Instance: in.Name, Status: codedeploy.Skipped})
			}
			break
		}
	}
	res.Took = time.Since(began)
	switch {
	case succeeded == 0: // CodeDeploy: whatever the configuration, at least one instance must succeed
		res.Err = fmt.Errorf("%s: no instance succeeded (%d failed)", cfg.Name, failed)
	case cfg.oneAtATime && failed > 0 && !(failed == 1 && res.Instances[n-1].Status == codedeploy.Failed):
		res.Err = fmt.Errorf("%s: stopped after a failed instance (%d succeeded, %d failed)", cfg.Name, succeeded, failed)
	case !cfg.oneAtATime && succeeded < minHealthy:
		res.Err = fmt.Errorf("%s: %d of %d instances succeeded, fewer than the minimum healthy hosts (%d)", cfg.Name, succeeded, n, minHealthy)
	}
	if res.Err != nil {
		// what failed, as the build's report says it: the instance, the failing hook and its
		// last lines (the agent's error carries them)
		for _, r := range res.Instances {
			if r.Status == codedeploy.Failed && r.Err != nil {
				res.Err = fmt.Errorf("%w\nfirst failed instance %s: %v", res.Err, r.Instance, r.Err)
				break
			}
		}
	}
	return res
}

func (f *Fleet) deployOne(ctx context.Context, in *Instance, bundle string, extraEnv []string) InstanceResult {
	began := time.Now()
	r := InstanceResult{Instance: in.Name, Status: codedeploy.Failed}
	fmt.Fprintf(f.Log, "fleet: %s: BlockTraffic\n", in.Name)
	if err := f.BlockTraffic(in, 5*time.Second); err != nil {
		r.Err = err
		return r
	}
	env := f.Env.HookEnv(f.HostPort, filepath.Join(in.Dir, "docker-config"),
		append(append([]string{"DOCKER_HOST=unix://" + in.Socket, "HOST_IP=" + in.Addr, "AWS_REGION=" + f.Env.Region,
			"HEALTH_TIMEOUT=10", "STOP_TIMEOUT=5",
			// the instance's proxy (scripts/proxy.sh): its files, and its containers on the
			// instance's own loopback address
			"STATE_DIR=" + in.StateDir(), "BACKEND_IP=" + in.Addr,
			"WATCH_SECONDS=5"}, append(in.platformEnv(), f.settings...)...), extraEnv...)...) // Options.Settings may watch longer
	_, err := f.Agent.Deploy(ctx, codedeploy.Options{Bundle: bundle, InstanceDir: in.Dir, Application: "webapp",
		Group: "fleet", Env: env, Log: prefixLog(f.Log, "fleet: "+in.Name+": ")})
	if err != nil {
		r.Err = err
		r.Took = time.Since(began)
		fmt.Fprintf(f.Log, "fleet: %s: deployment failed; it stays out of the load balancer: %v\n", in.Name, firstLine(err))
		return r
	}
	fmt.Fprintf(f.Log, "fleet: %s: AllowTraffic\n", in.Name)
	if err := f.AllowTraffic(in, 30*time.Second); err != nil {
		r.Err = err
		return r
	}
	r.Status, r.Took = codedeploy.Succeeded, time.Since(began)
	return r
}

func firstLine(err error) string {
	s, _, _ := strings.Cut(err.Error(), "\n")
	return s
}

type lineWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func prefixLog(w io.Writer, prefix string) io.Writer { return &lineWriter{w: w, prefix: prefix} }

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			return len(p), nil
		}
		fmt.Fprintf(l.w, "%s%s\n", l.prefix, l.buf[:i])
		l.buf = l.buf[i+1:]
	}
}
