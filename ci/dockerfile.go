package ci

import (
	"sort"
	"strconv"

	"dagger.io/dagger"
)

// DockerfileImage is the app's own Dockerfile built by the engine (the
// contract's Dockerfile path, target stage and build arguments), so what
// `docker build` gives a developer is what ships. REVISION and
// SOURCE_DATE_EPOCH are always passed as build arguments (a Dockerfile that
// declares them with ARG can use them); the OCI labels the native image
// carries are added to its config (no layer changes).
//
// Not reproducible: the engine stamps its own times into the image config's
// history, and RUN steps (pip install, apt-get) may fetch other bytes.
func DockerfileImage(src *dagger.Directory, o ImageOpts) *dagger.Container {
	args := []dagger.BuildArg{
		{Name: "REVISION", Value: o.Revision},
		{Name: "SOURCE_DATE_EPOCH", Value: strconv.FormatInt(o.epoch(), 10)},
	}
	names := make([]string, 0, len(o.App.BuildArgs))
	for k := range o.App.BuildArgs {
		names = append(names, k)
	}
	sort.Strings(names) // the same arguments in the same order: the same cache key
	for _, k := range names {
		args = append(args, dagger.BuildArg{Name: k, Value: o.App.BuildArgs[k]})
	}
	ctr := src.DockerBuild(dagger.DirectoryDockerBuildOpts{
		Platform:   o.Platform, // "": the engine's own; another runs its RUN steps under emulation
		Dockerfile: o.App.Dockerfile,
		Target:     o.App.Target,
		BuildArgs:  args,
	})
	labels := o.labels()
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		ctr = ctr.WithLabel(k, labels[k])
	}
	return ctr
}
