// Command downtime measures the service gap of an in-place redeploy on one instance: it deploys
// image A (repository appspec.yml and scripts/, or -scripts DIR's) through the real CodeDeploy
// agent (codedeploy-local) onto the dev environment's dockerd, then alternates A → B → A … while a
// prober GETs -health-path every -interval, and reports the longest time without a 2xx answer per
// redeploy. With -b unhealthy or -b dead, B fails every time, and the gap is that of a failed
// deployment. Needs the dev environment:
//
//	source /run/webapp-dev/env && go run ./dev/cmd/downtime -runs 5
//	go run ./dev/cmd/downtime -runs 3 -b dead -transcript
//
// Without -image-a/-image-b it builds small test images (testdata/deploy/image).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"time"

	"github.com/acme/webapp-pipeline/dev/codedeploy"
	"github.com/acme/webapp-pipeline/dev/devenv"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "downtime:", err)
		os.Exit(1)
	}
}

func run() error {
	runs := flag.Int("runs", 5, "redeploys to measure")
	interval := flag.Duration("interval", 20*time.Millisecond, "probe interval")
	imageA := flag.String("image-a", "", "image by digest to deploy first (default: a test image built now)")
	healthPath := flag.String("health-path", devenv.TestImageHealthPath, "the path the prober GETs, also the bundles' HEALTH_PATH (with -image-a/-image-b: the images' own)")
	imageB := flag.String("image-b", "", "image by digest to alternate with (default: a test image built now, see -b)")
	kindB := flag.String("b", "ok", "the test image B: ok, unhealthy (its health check answers 500) or dead (cannot start); with unhealthy/dead every redeploy deploys B, fails, and the gap is the failed deployment's")
	scripts := flag.String("scripts", "", "take appspec.yml and scripts/ from this directory (default: the repository's), e.g. an older revision's to compare")
	healthTimeout := flag.Int("health-timeout", 10, "HEALTH_TIMEOUT given to the hooks (s)")
	transcript := flag.Bool("transcript", false, "print each deployment's scripts.log (the agent's record of the hooks' output)")
	verbose := flag.Bool("v", false, "show the deployer's output")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Minute)
	defer cancel()

	env, err := devenv.FromEnviron()
	if err != nil {
		return err
	}
	root, err := devenv.RepoRoot()
	if err != nil {
		return err
	}
	if *scripts == "" {
		*scripts = root
	}
	agent, err := codedeploy.FindAgent()
	if err != nil {
		return err
	}
	deploy, how := agent.Deploy, "the CodeDeploy agent (codedeploy-local)"
	status := map[string]int{"ok": 200, "unhealthy": 500, "dead": devenv.CannotStart}[*kindB]
	if status == 0 && *kindB != "dead" {
		return fmt.Errorf("-b %q: want ok, unhealthy or dead", *kindB)
	}
	stamp := time.Now().Format("150405")
	var built []string
	defer func() {
		if len(built) > 0 {
			_, _ = env.Docker(context.Background(), os.TempDir(), nil, append([]string{"image", "rm", "--force"}, built...)...)
		}
	}()
	if *imageA == "" {
		if *imageA, err = env.BuildImage(ctx, root, "webapp-downtime", "a-"+stamp, 200); err != nil {
			return err
		}
		built = append(built, *imageA)
	}
	if *imageB == "" {
		if *imageB, err = env.BuildImage(ctx, root, "webapp-downtime", *kindB+"-"+stamp, status); err != nil {
			return err
		}
		built = append(built, *imageB)
	}
	work, err := os.MkdirTemp("", "downtime-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	port, err := devenv.FreePort()
	if err != nil {
		return err
	}
	name := fmt.Sprintf("webapp-downtime-%d", port)
	dockerConfig := filepath.Join(work, "docker")
	defer func() {
		_, _ = env.Docker(context.Background(), dockerConfig, nil, "rm", "--force", name, name+"-next", name+"-previous", name+"-failed")
		devenv.StopProxies(filepath.Join(work, "state"))
	}()

	var log io.Writer = io.Discard
	if *verbose {
		log = os.Stderr
	}
	deployOne := func(i int, image string) (codedeploy.Result, error) {
		bundle := filepath.Join(work, fmt.Sprintf("bundle-%d", i))
		if err := env.WriteBundle(*scripts, bundle, devenv.ImageEnv{Image: image, Revision: fmt.Sprintf("rev-%d", i), ContainerName: name, HealthPath: *healthPath}); err != nil {
			return codedeploy.Result{}, err
		}
		res, err := deploy(ctx, codedeploy.Options{Bundle: bundle, InstanceDir: filepath.Join(work, "instance"),
			Application: "webapp", Group: "downtime", Env: env.HookEnv(port, dockerConfig, fmt.Sprintf("HEALTH_TIMEOUT=%d", *healthTimeout), "STATE_DIR="+filepath.Join(work, "state")), Log: log})
		if *transcript && res.ArchiveDir != "" {
			b, _ := os.ReadFile(filepath.Join(filepath.Dir(res.ArchiveDir), "logs", "scripts.log"))
			fmt.Printf("--- scripts.log of deployment %d (%s), %s:\n%s", i, res.DeploymentID, errOrOK(err), b)
		}
		return res, err
	}

	if _, err := deployOne(0, *imageA); err != nil {
		return fmt.Errorf("initial deployment: %w", err)
	}
	fmt.Printf("deployer: %s; scripts from %s; host port %d, probing %s every %s\n", how, *scripts, port, *healthPath, *interval)
	var gaps []time.Duration
	for i := 1; i <= *runs; i++ {
		image := *imageB
		if i%2 == 0 && *kindB == "ok" {
			image = *imageA
		}
		prober := devenv.StartProber(fmt.Sprintf("http://127.0.0.1:%d%s", port, *healthPath), *interval, 100000)
		time.Sleep(200 * time.Millisecond)
		res, err := deployOne(i, image)
		time.Sleep(1500 * time.Millisecond) // longer than the probe timeout: see the recovery
		rep := prober.Stop()
		if err != nil && *kindB == "ok" {
			return fmt.Errorf("redeploy %d: %w", i, err)
		}
		state := "serving again"
		if !rep.Recovered {
			state = "NOT serving after the deployment"
		}
		fmt.Printf("redeploy %d (%s): %s; longest gap %6s  (%d probes, %d failed; deployment %s)\n",
			i, errOrOK(err), state, rep.LongestGap.Round(time.Millisecond), rep.Requests, rep.Failures, res.Duration.Round(time.Millisecond))
		if !rep.Recovered {
			return fmt.Errorf("redeploy %d left the service down", i)
		}
		gaps = append(gaps, rep.LongestGap)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	fmt.Printf("longest gap over %d redeploys: median %s, max %s\n", len(gaps),
		gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond))
	return nil
}

func errOrOK(err error) string {
	if err != nil {
		return "failed"
	}
	return "succeeded"
}
