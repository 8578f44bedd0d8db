package devenv

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// BuildImageIndex is BuildImage for several platforms ("linux/amd64", "linux/arm64"): the test
// image built once per platform (`docker build --platform`, on the platform's image of the base
// index, by digest), pushed, and an image index naming them pushed as repo:tag (crane index
// append, as the official images are laid out). Returns repo@sha256:<the index's digest>: one
// reference every instance pulls its own platform's image from (issue 21).
//
// The base is named by its platform's digest, not by tag: a `docker build --platform` of a tag
// re-tags the base in dockerd's store as that platform's image, and every later build of the tag
// on the shared dockerd (other tests') would then get the foreign one.
func (e Env) BuildImageIndex(ctx context.Context, repoRoot, repo, tag string, healthStatus int, platforms []string) (string, error) {
	crane := os.Getenv("WEBAPP_DEV_CRANE")
	mirror := os.Getenv("WEBAPP_DEV_MIRROR")
	if crane == "" || mirror == "" {
		return "", errors.New("WEBAPP_DEV_CRANE or WEBAPP_DEV_MIRROR is not set: source /run/webapp-dev/env")
	}
	base := baseImage(mirror)
	var refs []string
	for _, p := range platforms {
		digest, err := output(ctx, nil, crane, "digest", "--insecure", "--platform", p, base)
		if err != nil {
			return "", fmt.Errorf("the base image %s has no %s image: %w", base, p, err)
		}
		ref, err := e.buildImage(ctx, repoRoot, repo, tag+"-"+strings.ReplaceAll(p, "/", "-"), healthStatus, p,
			"BASE="+base[:strings.LastIndex(base, ":")]+"@"+digest)
		if err != nil {
			return "", err
		}
		refs = append(refs, "--manifest="+ref)
	}
	cfg, err := e.craneConfig()
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(cfg)
	args := append([]string{"index", "append", "--insecure", "--docker-empty-base", "--tag", e.Registry + "/" + repo + ":" + tag}, refs...)
	out, err := output(ctx, []string{"DOCKER_CONFIG=" + cfg}, crane, args...)
	if err != nil {
		return "", err
	}
	return out, nil // crane prints repo@sha256:...
}

// baseImage is the test image's base (testdata/deploy/image's ARG BASE) on the mirror, or its
// staged copy (WEBAPP_DEV_STAGE, dev/env.sh stage).
func baseImage(mirror string) string {
	if s := os.Getenv("WEBAPP_DEV_STAGE"); s != "" {
		return mirror + "/stage/" + s + "/library/python:3.13-slim"
	}
	return mirror + "/library/python:3.13-slim"
}

// craneConfig is a DOCKER_CONFIG directory with the push registry's login, for crane.
func (e Env) craneConfig() (string, error) {
	cfg, err := os.MkdirTemp("", "devenv-crane-config-")
	if err != nil {
		return "", err
	}
	password, err := e.Password()
	if err != nil {
		os.RemoveAll(cfg)
		return "", err
	}
	auth := base64.StdEncoding.EncodeToString([]byte(e.Username + ":" + password))
	if err := os.WriteFile(filepath.Join(cfg, "config.json"),
		[]byte(`{"auths":{"`+e.Registry+`":{"auth":"`+auth+`"}}}`), 0o600); err != nil {
		os.RemoveAll(cfg)
		return "", err
	}
	return cfg, nil
}

func output(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(ee.Stderr)))
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}
