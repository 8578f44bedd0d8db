package ci

import (
	"fmt"
	"strconv"
	"time"

	"dagger.io/dagger"
)

// SmokeHost is the name the image answers on, beside the probe.
const SmokeHost = "app"

// Smoke runs img as a service — its own entrypoint and command, as an
// instance would run it — and beside it a probe that GETs healthPath on port
// until it answers 2xx, for at most timeout. The probe's exit code says
// whether it did (0) and its stdout what answered.
//
// The engine first waits for the port to accept connections (its service
// health check): a container that exits before that fails the binding with
// the container's exit code; one that never listens keeps it waiting, so the
// caller bounds the whole call by the contract's health timeout.
//
// run makes the probe a new command each time (the caller passes something
// unique): a smoke test is a fact of one run, never served from the cache.
func Smoke(c *dagger.Client, baseImage string, img *dagger.Container, port int, healthPath string, timeout time.Duration, run string) *dagger.Container {
	svc := img.WithExposedPort(port).AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
	url := fmt.Sprintf("http://%s:%d%s", SmokeHost, port, healthPath)
	return toolbox(c, baseImage).
		WithServiceBinding(SmokeHost, svc).
		WithEnvVariable("SMOKE_RUN", run).
		WithExec([]string{"python3", "/ci/probe.py", url, strconv.FormatFloat(timeout.Seconds(), 'f', -1, 64)},
			dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny})
}
