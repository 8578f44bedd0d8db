// Command fleet deploys to a simulated fleet behind a load balancer (dev/fleet): N instances,
// each its own dockerd, behind HAProxy, deployed by the real CodeDeploy agent the way CodeDeploy
// does an in-place deployment with traffic control. A prober hits the load balancer every
// -interval through each deployment; it prints failed requests and the longest gap per
// deployment configuration, then deploys a revision that fails on instance 2 only.
//
//	make fleet          (or: bash dev/with-env.sh go run ./cmd/fleet -n 3)
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/acme/webapp-pipeline/dev/codedeploy"
	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/fleet"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func run() error {
	n := flag.Int("n", 3, "instances")
	configs := flag.String("configs", "OneAtATime,HalfAtATime,AllAtOnce", "deployment configurations to measure, in order")
	interval := flag.Duration("interval", 20*time.Millisecond, "probe interval")
	port := flag.Int("port", 18080, "the load balancer's port on 127.0.0.1")
	dir := flag.String("dir", "/var/tmp/webapp-fleet", "state: instances' dockerd roots, the agent's deployment roots, haproxy")
	failing := flag.Bool("fail-instance-2", true, "end with a deployment that fails on instance 2 (OneAtATime)")
	verbose := flag.Bool("v", false, "show the hooks' output")
	sequence := flag.Bool("sequence", false, "instead: the switch sequence (good, new good, cannot start, never healthy, fails after the switch, good) OneAtATime; with -n 1 probing the instance's own proxy, else the load balancer; then each instance's journal")
	watch := flag.Duration("watch", 15*time.Second, "with -sequence: the instances' WATCH_SECONDS")
	failAfter := flag.Duration("fail-after", 10*time.Second, "with -sequence: the failing version answers 500 this long after its start")
	platforms := flag.String("platforms", "", "instance i's platform, comma-separated in instance order (e.g. ,linux/arm64: i2 is a Graviton instance, run under emulation); empty: this machine's; the images are then indexes of linux/amd64 and linux/arm64")
	bundleDir := flag.String("bundle", "", "instead: deploy this bundle (dist/bundle of a build, e.g. BUILD_PLATFORMS=linux/amd64,linux/arm64) AllAtOnce to the fleet and show what each instance runs and answers")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()

	env, err := devenv.FromEnviron()
	if err != nil {
		return err
	}
	agent, err := codedeploy.FindAgent()
	if err != nil {
		return err
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		return err
	}
	var log io.Writer = io.Discard
	if *verbose {
		log = os.Stderr
	}
	if *sequence {
		return runSequence(ctx, env, agent, root, *n, *port, *dir, *interval, *watch, *failAfter, log)
	}
	var instancePlatforms []string
	if *platforms != "" {
		instancePlatforms = strings.Split(*platforms, ",")
	}
	if *bundleDir != "" {
		return deployBundle(ctx, env, agent, *bundleDir, *n, *port, *dir, instancePlatforms, log)
	}
	stamp := time.Now().Format("150405")
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		if len(instancePlatforms) > 0 {
			images[v], err = env.BuildImageIndex(ctx, root, "webapp-fleet", v+"-"+stamp, 200, []string{"linux/amd64", "linux/arm64"})
		} else {
			images[v], err = env.BuildImage(ctx, root, "webapp-fleet", v+"-"+stamp, 200)
		}
		if err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	fmt.Printf("starting %d instances (a dockerd each) behind HAProxy on 127.0.0.1:%d\n", *n, *port)
	fl, err := fleet.StartWith(ctx, *dir, *n, *port, env, agent, log, fleet.Options{Platforms: instancePlatforms})
	if err != nil {
		return err
	}
	defer fl.Stop()

	bundle := func(name, image string) (string, error) {
		b := filepath.Join(*dir, "bundles", name)
		if err := os.RemoveAll(b); err != nil {
			return "", err
		}
		return b, env.WriteBundle(root, b, devenv.ImageEnv{Image: image, Revision: name, ContainerName: "webapp", HealthPath: devenv.TestImageHealthPath})
	}
	first, err := bundle("v1", images["v1"])
	if err != nil {
		return err
	}
	if r := fl.Deploy(ctx, first, fleet.Configs["AllAtOnce"], nil); r.Err != nil {
		return fmt.Errorf("first deployment: %w", r.Err)
	}
	lb := fmt.Sprintf("http://127.0.0.1:%d%s", *port, devenv.TestImageHealthPath)
	fmt.Printf("probing %s every %s (%s timeout, no keep-alive)\n\n", lb, *interval, devenv.ProbeTimeout)
	fmt.Printf("%-30s %-9s %9s %7s %12s %10s  %s\n", "deployment config", "result", "requests", "failed", "longest gap", "took", "instances")
	measure := func(label string, b string, cfg fleet.Config, instanceEnv func(*fleet.Instance) []string) fleet.Result {
		p := devenv.StartProber(lb, *interval, 200000)
		time.Sleep(300 * time.Millisecond)
		r := fl.Deploy(ctx, b, cfg, instanceEnv)
		time.Sleep(1500 * time.Millisecond)
		rep := p.Stop()
		status := "ok"
		if r.Err != nil {
			status = "failed"
		}
		var parts []string
		for _, ir := range r.Instances {
			parts = append(parts, ir.Instance+":"+ir.Status)
		}
		fmt.Printf("%-30s %-9s %9d %7d %12s %9.1fs  %s\n", label, status, rep.Requests, rep.Failures,
			rep.LongestGap.Round(time.Millisecond), r.Took.Seconds(), strings.Join(parts, " "))
		return r
	}
	next := "v2"
	for _, name := range strings.Split(*configs, ",") {
		cfg, ok := fleet.Configs[name]
		if !ok {
			return fmt.Errorf("unknown deployment config %q (OneAtATime, HalfAtATime, AllAtOnce)", name)
		}
		b, err := bundle(next+"-"+name, images[next])
		if err != nil {
			return err
		}
		measure(cfg.Name, b, cfg, nil)
		next = map[string]string{"v1": "v2", "v2": "v1"}[next]
	}
	if *failing {
		// the same healthy revision, but instance 2's app env file breaks its health check
		broken := filepath.Join(*dir, "i2-app.env")
		if err := os.WriteFile(broken, []byte("HEALTH_STATUS=500\n"), 0o644); err != nil {
			return err
		}
		b, err := bundle(next+"-failing-i2", images[next])
		if err != nil {
			return err
		}
		r := measure("OneAtATime, instance 2 fails", b, fleet.Configs["OneAtATime"], func(in *fleet.Instance) []string {
			if in.Name == "i2" {
				return []string{"APP_ENV_FILE=" + broken}
			}
			return nil
		})
		if r.Err != nil {
			fmt.Printf("\n%v\n", r.Err)
		}
	}
	return nil
}

// runSequence: the issue-19 sequence through the real agent, a prober every interval.
func runSequence(ctx context.Context, env devenv.Env, agent codedeploy.Agent, root string, n, port int, dir string,
	interval, watch, failAfter time.Duration, log io.Writer) error {
	steps, err := fleet.SequenceSteps(ctx, env, root, "webapp-switch", failAfter)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fmt.Printf("starting %d instance(s) (a dockerd and, once deployed, a proxy each) behind HAProxy on 127.0.0.1:%d\n", n, port)
	// the load balancer checks the health path through each instance's proxy, as a target group does
	check := &fleet.HTTPCheck{Path: devenv.TestImageHealthPath, Matcher: "200", Interval: 500 * time.Millisecond,
		Timeout: 400 * time.Millisecond, Rise: 2, Fall: 2}
	fl, err := fleet.StartWith(ctx, dir, n, port, env, agent, log, fleet.Options{
		Settings: []string{fmt.Sprintf("WATCH_SECONDS=%d", int(watch.Seconds()))}, Check: check})
	if err != nil {
		return err
	}
	defer fl.Stop()
	url := fmt.Sprintf("http://127.0.0.1:%d%s", port, devenv.TestImageHealthPath)
	if n == 1 { // one instance, no load balancer: its own proxy
		url = fmt.Sprintf("http://%s:%d%s", fl.Instances[0].Addr, fl.HostPort, devenv.TestImageHealthPath)
	}
	fmt.Printf("probing %s every %s (%s timeout, no keep-alive); WATCH_SECONDS=%d\n\n", url, interval, devenv.ProbeTimeout, int(watch.Seconds()))
	rows, err := fl.RunSequence(ctx, root, filepath.Join(dir, "bundles"), steps, fleet.Configs["OneAtATime"], url, interval)
	fleet.PrintRows(os.Stdout, rows)
	if err != nil {
		return err
	}
	for _, in := range fl.Instances {
		out, err := fl.Journal(root, in)
		fmt.Printf("\n$ webapp-journal   # on %s\n%s", in.Name, out)
		if err != nil {
			return err
		}
	}
	return nil
}

// deployBundle: one bundle (a build's dist/bundle: its image.env names an image index) onto the
// fleet, AllAtOnce; then, per instance, the platform of the image it runs, the machine its
// container's python sees and its answer on the health path (issue 21: one image.env, amd64 and arm64 instances).
func deployBundle(ctx context.Context, env devenv.Env, agent codedeploy.Agent, bundle string, n, port int, dir string,
	platforms []string, log io.Writer) error {
	imageEnv, err := os.ReadFile(filepath.Join(bundle, "image.env"))
	if err != nil {
		return fmt.Errorf("%s is not a deploy bundle: %w", bundle, err)
	}
	health := "/"
	for _, line := range strings.Split(string(imageEnv), "\n") {
		if v, ok := strings.CutPrefix(line, "HEALTH_PATH="); ok {
			health = strings.Trim(v, `"'`)
		}
		if strings.HasPrefix(line, "IMAGE=") {
			fmt.Printf("image.env: %s\n", line)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fl, err := fleet.StartWith(ctx, dir, n, port, env, agent, log, fleet.Options{Platforms: platforms})
	if err != nil {
		return err
	}
	defer fl.Stop()
	r := fl.Deploy(ctx, bundle, fleet.Configs["AllAtOnce"], nil)
	for _, ir := range r.Instances {
		fmt.Printf("%s: %s in %.1fs\n", ir.Instance, ir.Status, ir.Took.Seconds())
	}
	if r.Err != nil {
		return r.Err
	}
	for _, in := range fl.Instances {
		docker := func(args ...string) string {
			out, _ := exec.CommandContext(ctx, "docker", append([]string{"-H", "unix://" + in.Socket}, args...)...).Output()
			return strings.TrimSpace(string(out))
		}
		id := strings.Fields(docker("ps", "-q", "--filter", "status=running") + " none")[0]
		img := docker("inspect", "--format", "{{.Image}}", id)
		resp, err := http.Get(fmt.Sprintf("http://%s:%d%s", in.Addr, fl.HostPort, health))
		answer := fmt.Sprint(err)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answer = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		fmt.Printf("%s (platform %q): runs a %s image (its python: platform.machine() %s); GET %s: %s\n", in.Name, in.Platform,
			docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", img), docker("exec", id, "python3", "-c", "import platform; print(platform.machine())"), health, answer)
	}
	return nil
}
