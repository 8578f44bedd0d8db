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
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/fleet"
	"github.com/acme/webapp-pipeline/internal/codedeploy"
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
	stamp := time.Now().Format("150405")
	images := map[string]string{}
	for _, v := range []string{"v1", "v2"} {
		if images[v], err = env.BuildImage(ctx, root, "webapp-fleet", v+"-"+stamp, 200); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	fmt.Printf("starting %d instances (a dockerd each) behind HAProxy on 127.0.0.1:%d\n", *n, *port)
	fl, err := fleet.Start(ctx, *dir, *n, *port, env, agent, log)
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
	fmt.Printf("probing %s every %s (1 s timeout, no keep-alive)\n\n", lb, *interval)
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
