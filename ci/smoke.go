package ci

import (
	"dagger.io/dagger"
)

// SmokeHost is the name the smoke test gives the image's container in what
// it prints (http://app:PORT/PATH): the container's own port and path.
const SmokeHost = "app"

// Smoke runs img as a service — its own entrypoint and command, as an
// instance would run it — reached from the build program through a tunnel
// to port (the caller GETs the health path there: no probe container to
// start on every build).
//
// Starting the tunnel starts the service and waits for the port to accept
// connections (the engine's health check): a container that exits before
// that fails the start with its exit code; one that never listens keeps it
// waiting, so the caller bounds the start by the contract's health timeout.
// A service is never served from the cache: each start runs the image.
func Smoke(c *dagger.Client, img *dagger.Container, port int) *dagger.Service {
	svc := img.WithExposedPort(port).AsService(dagger.ContainerAsServiceOpts{UseEntrypoint: true})
	return c.Host().Tunnel(svc, dagger.HostTunnelOpts{Ports: []dagger.PortForward{{Backend: port}}})
}
