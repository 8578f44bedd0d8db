// Command downtime measures the service gap of an in-place redeploy: it deploys image A through
// the CodeDeploy replay (repository appspec.yml and scripts/) onto the dev environment's dockerd,
// then alternates A → B → A … while a prober hits /healthz every -interval, and reports the
// longest time without a 2xx answer per redeploy. Needs the dev environment:
//
//	source /run/webapp-dev/env && go run ./cmd/downtime -runs 5
//
// Without -image-a/-image-b it builds two small test images (testdata/deploy/image).
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

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/internal/codedeploy"
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
	imageB := flag.String("image-b", "", "image by digest to alternate with (default: a test image built now)")
	verbose := flag.Bool("v", false, "show the hooks' output")
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
		if *imageB, err = env.BuildImage(ctx, root, "webapp-downtime", "b-"+stamp, 200); err != nil {
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
		_, _ = env.Docker(context.Background(), dockerConfig, nil, "rm", "--force", name, name+"-next")
	}()

	var log io.Writer = io.Discard
	if *verbose {
		log = os.Stderr
	}
	deploy := func(i int, image string) (codedeploy.Result, error) {
		bundle := filepath.Join(work, fmt.Sprintf("bundle-%d", i))
		if err := env.WriteBundle(root, bundle, devenv.ImageEnv{Image: image, Revision: fmt.Sprintf("rev-%d", i), ContainerName: name}); err != nil {
			return codedeploy.Result{}, err
		}
		return codedeploy.Deploy(ctx, codedeploy.Options{Bundle: bundle, InstanceDir: filepath.Join(work, "instance"),
			Application: "webapp", Group: "downtime", Env: env.HookEnv(port, dockerConfig), Log: log})
	}

	if _, err := deploy(0, *imageA); err != nil {
		return fmt.Errorf("initial deployment: %w", err)
	}
	fmt.Printf("host port %d, probing /healthz every %s\n", port, *interval)
	var gaps []time.Duration
	for i := 1; i <= *runs; i++ {
		image := *imageB
		if i%2 == 0 {
			image = *imageA
		}
		prober := devenv.StartProber(fmt.Sprintf("http://127.0.0.1:%d/healthz", port), *interval, 100000)
		time.Sleep(200 * time.Millisecond)
		res, err := deploy(i, image)
		time.Sleep(1500 * time.Millisecond) // longer than the probe timeout: see the recovery

		rep := prober.Stop()
		if err != nil {
			return fmt.Errorf("redeploy %d: %w", i, err)
		}
		start := res.Event(codedeploy.ApplicationStart)
		if !rep.Recovered {
			return fmt.Errorf("redeploy %d: /healthz still failing after the deployment succeeded", i)
		}
		fmt.Printf("redeploy %d: longest gap %6s  (%d probes, %d failed; ApplicationStart %s, deployment %s)\n",
			i, rep.LongestGap.Round(time.Millisecond), rep.Requests, rep.Failures,
			start.Duration.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
		gaps = append(gaps, rep.LongestGap)
	}
	sort.Slice(gaps, func(i, j int) bool { return gaps[i] < gaps[j] })
	fmt.Printf("longest gap over %d redeploys: median %s, max %s\n", len(gaps),
		gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond))
	return nil
}
