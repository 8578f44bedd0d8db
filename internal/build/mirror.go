package build

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// MirrorEnv names the registry that stands in for docker.io and
// public.ecr.aws where those are not reachable (the dev environment's
// mirror, dev/env.sh): set, the images a build pulls are looked up there
// first, and a tag it does not hold is one line, not the engine's fall-back
// to an unreachable registry.
const MirrorEnv = "WEBAPP_DEV_MIRROR"

// mirroredRegistries are the registries the engine's mirror stands in for.
var mirroredRegistries = map[string]bool{name.DefaultRegistry: true, "docker.io": true, "public.ecr.aws": true}

// checkMirror checks, when a mirror is set, that it holds every image the
// build will pull: the base image and, for a Dockerfile build, the images
// its FROM lines and its `# syntax=` line name (those written out in full;
// ones built from ARGs, stages and scratch are left to the engine).
func checkMirror(ctx context.Context, app contract.App, appDir string) error {
	mirror := os.Getenv(MirrorEnv)
	if mirror == "" {
		return nil
	}
	type pull struct{ ref, where string }
	pulls := []pull{{app.BaseImage, "base-image"}}
	if app.Build == contract.BuildDockerfile {
		refs, err := dockerfileImages(filepath.Join(appDir, app.Dockerfile))
		if err != nil {
			return nil // the build says what is wrong with the file
		}
		for _, r := range refs {
			pulls = append(pulls, pull{r.ref, fmt.Sprintf("%s line %d", filepath.Join(app.Dir, app.Dockerfile), r.line)})
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, p := range pulls {
		if err := onMirror(ctx, mirror, p.ref); err != nil {
			return fmt.Errorf("%s: %w", p.where, err)
		}
	}
	return nil
}

// onMirror is nil when ref is not one the mirror stands in for, or the
// mirror holds it; else the line that says which tags it has and how to add one.
func onMirror(ctx context.Context, mirror, ref string) error {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil // not ours to judge: the engine says what is wrong
	}
	reg := r.Context().RegistryStr()
	if !mirroredRegistries[reg] && reg != mirror {
		return nil
	}
	tag, ok := r.(name.Tag)
	if !ok {
		return nil // by digest: the mirror serves it or the engine says so
	}
	repo := r.Context().RepositoryStr()
	local, err := name.NewTag(mirror+"/"+repo+":"+tag.TagStr(), name.Insecure)
	if err != nil {
		return nil
	}
	_, err = remote.Head(local, remote.WithContext(ctx))
	var te *transport.Error
	if err == nil || !errors.As(err, &te) || te.StatusCode != http.StatusNotFound {
		return nil // there, or the mirror is down: the engine's error says that
	}
	short := repo[strings.LastIndex(repo, "/")+1:]
	have := "no tag of " + short
	if tags, err := remote.List(local.Context(), remote.WithContext(ctx)); err == nil {
		var keep []string
		for _, t := range tags {
			if !strings.HasSuffix(t, ".tmp") {
				keep = append(keep, short+":"+t)
			}
		}
		sort.Strings(keep)
		if len(keep) > 0 {
			have = "only " + strings.Join(keep, ", ")
		}
	}
	how := "push it there from a machine that reaches " + reg + " (crane copy " + ref + " " + local.String() + ")"
	if repo == "library/python" || repo == "docker/library/python" {
		how = "add " + tag.TagStr() + "=<the Debian suite whose python3 is that version> to PYTHON_IMAGES in dev/versions.env and run dev/env.sh up"
	}
	return fmt.Errorf("%s is not on this machine's registry mirror (%s=%s has %s, and %s is not reachable from here): use one of those, or %s",
		ref, MirrorEnv, mirror, have, reg, how)
}

type dockerfileRef struct {
	ref  string
	line int
}

// dockerfileImages are the images a Dockerfile names in full: its
// `# syntax=` directive and the first argument of each FROM that is neither
// an earlier stage, scratch, nor built from an ARG. A plain scan, not
// BuildKit's parser: what it skips the engine still checks.
func dockerfileImages(path string) ([]dockerfileRef, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var refs []dockerfileRef
	stages := map[string]bool{"scratch": true}
	sc := bufio.NewScanner(f)
	header := true // parser directives come before any other line
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if header {
			if d, ok := strings.CutPrefix(line, "#"); ok {
				if k, v, ok := strings.Cut(strings.TrimSpace(d), "="); ok && strings.EqualFold(strings.TrimSpace(k), "syntax") {
					refs = append(refs, dockerfileRef{strings.TrimSpace(v), n})
				}
				continue
			}
			header = false
		}
		fields := strings.Fields(line)
		if len(fields) < 2 || !strings.EqualFold(fields[0], "FROM") {
			continue
		}
		args := fields[1:]
		for len(args) > 0 && strings.HasPrefix(args[0], "--") {
			args = args[1:]
		}
		if len(args) == 0 {
			continue
		}
		if img := args[0]; !strings.Contains(img, "$") && !stages[strings.ToLower(img)] {
			refs = append(refs, dockerfileRef{img, n})
		}
		if len(args) >= 3 && strings.EqualFold(args[1], "AS") {
			stages[strings.ToLower(args[2])] = true
		}
	}
	return refs, sc.Err()
}
