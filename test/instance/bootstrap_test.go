// Package instance runs infra/instance/bootstrap.sh, the instances' cloud-init user data, on a
// fresh Debian root filesystem (the dev environment's trixie rootfs, chrooted) and then deploys a
// signed build onto what it installed.
//
// What is real: the bootstrap script, unmodified; apt and every Debian package it installs from the
// Debian mirror (docker.io, ruby, awscli, and the agent's Ruby gems); the CodeDeploy agent (CODEDEPLOY_AGENT_VERSION)
// (the peers' tarball, unmodified) running the deployment inside the chroot; the chroot's own
// docker CLI, aws CLI and the cosign the bootstrap installed, run by the hooks; the image, built and
// signed by cmd/build with the dev environment's KMS key.
// What stands in: only the internet downloads are redirected to a local HTTP server (the only
// change is the *_URL settings the script documents): cosign is the dev environment's build of the
// same version (so its SHA-256 is not the release's, and the test passes COSIGN_SHA256 for it),
// AWS's agent installer is testdata/codedeploy-install.sh (installs the real agent with the
// peers' script), the instance metadata (region, instance profile) is that server; the docker
// daemon is the dev environment's (its socket bound into the chroot: a chroot runs no dockerd),
// the AWS endpoints are moto's and the hooks get moto's keys in their environment (on EC2: the
// instance profile); systemd does not run in a chroot, so the script says so and starts nothing.
// The rootfs gets curl first: every Amazon Linux 2023 and Ubuntu image has it, minbase has not.
package instance

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/dev/devtest"
	"github.com/acme/webapp-pipeline/internal/contract"
)

var repoRoot = filepath.Join("..", "..")

// versions reads dev/versions.env (KEY=VALUE lines).
func versions(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "dev", "versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && !strings.HasPrefix(k, "#") {
			m[k] = v
		}
	}
	return m
}

// rootfs unpacks the dev environment's Debian rootfs into a fresh directory with /proc, /sys, /dev
// and the dev dockerd's socket bound in, and curl installed (what every cloud image has).
func rootfs(t *testing.T, transcript io.Writer) string {
	t.Helper()
	v := versions(t)
	cache := os.Getenv("WEBAPP_DEV_CACHE")
	if cache == "" {
		cache = "/var/cache/webapp-dev"
	}
	// the Debian suite behind the default base image's tag (PYTHON_IMAGES="3.13-slim=trixie ...")
	tag := contract.DefaultBaseImage[strings.LastIndex(contract.DefaultBaseImage, ":")+1:]
	suite := devtest.PythonTags(t)[tag]
	if suite == "" {
		t.Fatalf("dev/versions.env PYTHON_IMAGES has no %s (the default base image's tag)", tag)
	}
	tars, _ := filepath.Glob(filepath.Join(cache, fmt.Sprintf("rootfs-%s-python-r%s-*.tar", suite, v["ROOTFS_REV"])))
	if len(tars) == 0 {
		t.Fatalf("no rootfs-%s-python-r%s-*.tar in %s: dev/env.sh up builds it", suite, v["ROOTFS_REV"], cache)
	}
	root, err := os.MkdirTemp("/var/tmp", "i18-rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	var mounts []string
	t.Cleanup(func() {
		for i := len(mounts) - 1; i >= 0; i-- {
			if out, err := exec.Command("umount", "--lazy", mounts[i]).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v %s", mounts[i], err, out)
			}
		}
		if len(mounts) == 0 || !t.Failed() {
			_ = os.RemoveAll(root)
		}
	})
	run(t, nil, "tar", "-xf", tars[0], "-C", root)
	bind := func(src, dst string, file bool) {
		target := filepath.Join(root, dst)
		if file {
			_ = os.MkdirAll(filepath.Dir(target), 0o755)
			if err := os.WriteFile(target, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		} else if err := os.MkdirAll(target, 0o755); err != nil {
			t.Fatal(err)
		}
		run(t, nil, "mount", "--bind", src, target)
		mounts = append(mounts, target)
	}
	bind("/proc", "/proc", false)
	bind("/sys", "/sys", false)
	bind("/dev", "/dev", false)
	bind("/dev/pts", "/dev/pts", false)
	sock := strings.TrimPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	bind(sock, sock, true)
	copyFile(t, "/etc/resolv.conf", filepath.Join(root, "etc", "resolv.conf"), 0o644)
	// As in Debian's container images: packages do not start their services inside the chroot
	// (docker.io's postinst would start a second dockerd on the host).
	if err := os.WriteFile(filepath.Join(root, "usr", "sbin", "policy-rc.d"), []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	// cloud-init's copy of the user data (the test runs it as cloud-init would: a file, as root)
	copyFile(t, filepath.Join(repoRoot, "infra", "instance", "bootstrap.sh"), filepath.Join(root, "var", "lib", "cloud", "user-data.sh"), 0o700)
	fmt.Fprintf(transcript, "### rootfs %s unpacked into %s; apt-get install curl (every cloud image has it)\n", tars[0], root)
	run(t, transcript, "chroot", root, "/bin/sh", "-c",
		"apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends curl >/dev/null")
	return root
}

func run(t *testing.T, w io.Writer, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if w != nil {
		_, _ = w.Write(out.Bytes())
	}
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
}

func copyFile(t *testing.T, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}

// snapshot lists every file of the rootfs (path, mode, size, mtime, link target) but the mounts
// and /tmp: what a second run of the bootstrap must not change.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		switch rel {
		case "/proc", "/sys", "/dev", "/tmp", "/run":
			return filepath.SkipDir
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			link, _ = os.Readlink(p)
		}
		size := info.Size()
		if info.IsDir() {
			size = 0
		}
		m[rel] = fmt.Sprintf("%v %d %d %s", info.Mode(), size, info.ModTime().UnixNano(), link)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func diff(a, b map[string]string) []string {
	var d []string
	for k, v := range a {
		if w, ok := b[k]; !ok {
			d = append(d, "removed "+k)
		} else if v != w {
			d = append(d, fmt.Sprintf("changed %s: %s -> %s", k, v, w))
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "added "+k)
		}
	}
	sort.Strings(d)
	return d
}

// downloads is the stand-in for the internet and the instance metadata service.
type downloads struct {
	mu     sync.Mutex
	counts map[string]int
	files  map[string][]byte
	srv    *httptest.Server
}

func newDownloads(t *testing.T) *downloads {
	t.Helper()
	d := &downloads{counts: map[string]int{}, files: map[string][]byte{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0") // the chroot shares this network namespace
	if err != nil {
		t.Fatal(err)
	}
	d.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(d.serve)}}
	d.srv.Start()
	t.Cleanup(d.srv.Close)
	return d
}

func (d *downloads) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	d.counts[r.URL.Path]++
	b, ok := d.files[r.URL.Path]
	d.mu.Unlock()
	switch {
	case r.URL.Path == "/latest/api/token" && r.Method == http.MethodPut:
		fmt.Fprint(w, "i18-imds-token")
	case strings.HasPrefix(r.URL.Path, "/latest/") && r.Header.Get("X-aws-ec2-metadata-token") != "i18-imds-token":
		http.Error(w, "IMDSv2 token required", http.StatusUnauthorized)
	case r.URL.Path == "/latest/meta-data/placement/region":
		fmt.Fprint(w, os.Getenv("AWS_REGION"))
	case r.URL.Path == "/latest/meta-data/iam/security-credentials/":
		fmt.Fprint(w, "webapp-InstanceRole-i18")
	case ok:
		_, _ = w.Write(b)
	default:
		http.NotFound(w, r)
	}
}

func (d *downloads) count(path string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.counts[path]
}

// bootstrap runs infra/instance/bootstrap.sh in the chroot as cloud-init would (root, a file),
// with the given settings; it returns the output and the exit error.
func bootstrap(t *testing.T, root string, transcript io.Writer, settings ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	args := append([]string{root, "/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8"}, settings...)
	cmd := exec.CommandContext(ctx, "chroot", append(args, "bash", "/var/lib/cloud/user-data.sh")...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, transcript), io.MultiWriter(&out, transcript)
	start := time.Now()
	err := cmd.Run()
	fmt.Fprintf(transcript, "### exit: %v after %s\n", err, time.Since(start).Round(time.Second))
	return out.String(), err
}

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestBootstrapOnAFreshRootfsThenDeploy: a bad checksum installs nothing; the bootstrap installs
// Docker, the agent, the AWS CLI and cosign and writes deploy.env; a second run changes nothing;
// the real agent then deploys a signed build with what the bootstrap installed.
func TestBootstrapOnAFreshRootfsThenDeploy(t *testing.T) {
	devtest.Require(t, "DOCKER_HOST", "AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL_KMS", "BUILD_SIGNING_KEY", "WEBAPP_DEV_COSIGN", "BUILD_IMAGE_REPO")
	if os.Geteuid() != 0 {
		t.Fatal("needs root (chroot, mount)")
	}
	peers := peersDir(t)
	var transcript bytes.Buffer
	defer func() {
		if path := os.Getenv("BOOTSTRAP_TRANSCRIPT"); path != "" {
			_ = os.WriteFile(path, transcript.Bytes(), 0o644)
		}
	}()

	// The signed build first: its image.env names the key deploy.env pins.
	b := signedBuild(t)

	root := rootfs(t, &transcript)
	// the proxy the hooks start in the chroot (no systemd there: a haproxy daemon), before the
	// rootfs goes
	t.Cleanup(func() { devenv.StopProxies(filepath.Join(root, "var", "lib", "webapp")) })
	dl := newDownloads(t)
	cosignCopy, err := os.ReadFile(os.Getenv("WEBAPP_DEV_COSIGN"))
	if err != nil {
		t.Fatal(err)
	}
	dl.files["/cosign"] = cosignCopy
	installer, err := os.ReadFile(filepath.Join("testdata", "codedeploy-install.sh"))
	if err != nil {
		t.Fatal(err)
	}
	agent := versions(t)["CODEDEPLOY_AGENT_VERSION"] // the peers' agent the dev env installs too
	installer = bytes.ReplaceAll(installer, []byte("@BASE_URL@"), []byte(dl.srv.URL+"/codedeploy"))
	dl.files["/codedeploy/install"] = bytes.ReplaceAll(installer, []byte("@AGENT_VERSION@"), []byte(agent))
	for _, f := range []string{"install-codedeploy-local.sh", "aws-codedeploy-agent-" + agent + ".tar.gz", "docopt.rb-0.5.0.tar.gz"} {
		if dl.files["/codedeploy/"+f], err = os.ReadFile(filepath.Join(peers, f)); err != nil {
			t.Fatal(err)
		}
	}
	port := freePort(t)
	deployEnv := strings.Join([]string{
		fmt.Sprintf("HOST_PORT=%d", port), "HEALTH_TIMEOUT=60", "WATCH_SECONDS=5",
		"SIGNING_KEY=" + b.env["SIGNING_KEY"], "SOURCE_REPOSITORY=" + b.env["SOURCE_REPOSITORY"],
		"DOCKER_HOST=" + os.Getenv("DOCKER_HOST"), // the dev dockerd: a chroot runs none
	}, "\n")
	redirect := []string{"COSIGN_URL=" + dl.srv.URL + "/cosign", "CODEDEPLOY_INSTALLER_URL=" + dl.srv.URL + "/codedeploy/install",
		"IMDS_URL=" + dl.srv.URL, "WEBAPP_DEPLOY_ENV=" + deployEnv}
	localSum := "COSIGN_SHA256=" + hex.EncodeToString(func() []byte { s := sha256.Sum256(cosignCopy); return s[:] }())

	t.Run("a bad checksum installs nothing", func(t *testing.T) {
		before := snapshot(t, root)
		fmt.Fprintf(&transcript, "\n### run 0: the pinned release checksum against the local cosign copy (a different build)\n")
		out, err := bootstrap(t, root, &transcript, redirect...) // no COSIGN_SHA256: the pinned one
		if err == nil || !strings.Contains(out, "not the pinned c3b4f5410e608af03a5eb0aaac84a4313d8da131248e08ff1759ac70c79d1644: nothing installed") {
			t.Fatalf("err = %v, output:\n%s", err, out)
		}
		if d := diff(before, snapshot(t, root)); len(d) > 0 {
			t.Errorf("a refused download changed the rootfs:\n%s", strings.Join(d, "\n"))
		}
	})

	t.Run("first run installs", func(t *testing.T) {
		fmt.Fprintf(&transcript, "\n### run 1: fresh rootfs\n")
		out, err := bootstrap(t, root, &transcript, append(redirect, localSum)...)
		if err != nil {
			t.Fatalf("bootstrap: %v\n%s", err, out)
		}
		for _, p := range []string{"/usr/bin/docker", "/usr/bin/aws", "/usr/local/bin/cosign", "/opt/codedeploy-agent/bin/codedeploy-local",
			"/usr/sbin/haproxy", "/usr/bin/socat", "/etc/systemd/system/webapp-proxy@.service"} {
			if _, err := os.Stat(filepath.Join(root, p)); err != nil {
				t.Errorf("not installed: %v", err)
			}
		}
		if got, want := sha256File(t, filepath.Join(root, "usr/local/bin/cosign")), strings.TrimPrefix(localSum, "COSIGN_SHA256="); got != want {
			t.Errorf("cosign installed with SHA-256 %s, want %s", got, want)
		}
		if got, _ := os.ReadFile(filepath.Join(root, "etc/webapp/deploy.env")); string(got) != deployEnv+"\n" {
			t.Errorf("deploy.env:\n%s\nwant:\n%s", got, deployEnv)
		}
		for _, want := range []string{"region " + os.Getenv("AWS_REGION"), "instance profile role: webapp-InstanceRole-i18", "no systemd: docker not started here"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("second run changes nothing", func(t *testing.T) {
		before := snapshot(t, root)
		n := dl.count("/cosign") + dl.count("/codedeploy/install")
		fmt.Fprintf(&transcript, "\n### run 2: the same settings again\n")
		out, err := bootstrap(t, root, &transcript, append(redirect, localSum)...)
		if err != nil {
			t.Fatalf("second run: %v\n%s", err, out)
		}
		if d := diff(before, snapshot(t, root)); len(d) > 0 {
			t.Errorf("the second run changed the rootfs:\n%s", strings.Join(d, "\n"))
		}
		if m := dl.count("/cosign") + dl.count("/codedeploy/install"); m != n {
			t.Errorf("the second run downloaded again (%d downloads, %d before)", m, n)
		}
	})

	t.Run("the agent deploys a signed build with what the bootstrap installed", func(t *testing.T) {
		deploy(t, root, b, port, &transcript)
	})
}

func peersDir(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("WEBAPP_PEERS"); p != "" {
		return p
	}
	dir, _ := filepath.Abs(repoRoot)
	for dir != "/" {
		dir = filepath.Dir(dir)
		if _, err := os.Stat(filepath.Join(dir, "shared", "peers", "install-codedeploy-local.sh")); err == nil {
			return filepath.Join(dir, "shared", "peers")
		}
	}
	t.Fatal("no shared/peers beside the repository (set WEBAPP_PEERS): the CodeDeploy agent's tarball is there")
	return ""
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// build is one signed build's output directory and its image.env.
type build struct {
	out string
	env map[string]string
}

// signedBuild runs cmd/build all on a copy of the repository's sample, signed with the dev
// environment's KMS key, under an app name of its own (the container's name on the shared dockerd).
func signedBuild(t *testing.T) build {
	t.Helper()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "build")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/build")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/build: %v\n%s", err, out)
	}
	src := filepath.Join(tmp, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"app", "pipeline.yml", "appspec.yml", "scripts", "buildspec.yml"} {
		run(t, nil, "cp", "-a", filepath.Join(repoRoot, p), filepath.Join(src, p))
	}
	app := fmt.Sprintf("i18-boot-%d", time.Now().UnixNano()%1e6)
	out := filepath.Join(tmp, "dist")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd = exec.CommandContext(ctx, bin, "all", "--source", src, "--out", out, "--revision", app)
	cmd.Env = append(os.Environ(), "BUILD_APP_NAME="+app, "BUILD_SOURCE_REPOSITORY=https://github.com/acme/webapp")
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("signed build: %v\n%s", err, o)
	}
	b := build{out: out, env: map[string]string{}}
	ie, err := os.ReadFile(filepath.Join(out, "bundle", "image.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(ie), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			b.env[k] = v
		}
	}
	if b.env["SIGNING_KEY"] == "" {
		t.Fatalf("the build wrote no SIGNING_KEY: %s", ie)
	}
	t.Cleanup(func() {
		name := b.env["CONTAINER_NAME"]
		_ = exec.Command("docker", "rm", "--force", name, name+"-previous", name+"-next", name+"-failed").Run()
		_ = exec.Command("docker", "image", "rm", "--force", b.env["IMAGE"]).Run()
	})
	return b
}

// deploy runs the build's bundle through the agent the bootstrap installed, inside the chroot:
// its hooks use the chroot's docker CLI, aws CLI and cosign, and /etc/webapp/deploy.env.
func deploy(t *testing.T, root string, b build, port int, transcript io.Writer) {
	t.Helper()
	run(t, nil, "cp", "-a", filepath.Join(b.out, "bundle"), filepath.Join(root, "srv", "bundle"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	fmt.Fprintf(transcript, "\n### deployment of %s by the agent the bootstrap installed (chroot)\n", b.env["IMAGE"])
	cmd := exec.CommandContext(ctx, "chroot", root, "/usr/bin/env", "-i",
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		// on EC2 the instance profile; here moto's keys and endpoints
		"AWS_ACCESS_KEY_ID="+os.Getenv("AWS_ACCESS_KEY_ID"), "AWS_SECRET_ACCESS_KEY="+os.Getenv("AWS_SECRET_ACCESS_KEY"),
		"AWS_ENDPOINT_URL_SSM="+os.Getenv("AWS_ENDPOINT_URL_SSM"), "AWS_ENDPOINT_URL_KMS="+os.Getenv("AWS_ENDPOINT_URL_KMS"),
		"/opt/codedeploy-agent/bin/codedeploy-local", "-c", "/opt/codedeploy-agent/conf/codedeployagent.yml",
		"--bundle-location", "/srv/bundle", "--type", "directory", "-a", "webapp", "-d", "i18-bootstrap")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, transcript), io.MultiWriter(&out, transcript)
	err := cmd.Run()
	logs, _ := filepath.Glob(filepath.Join(root, "opt/codedeploy-agent/state/deployment-root/*/*/logs/scripts.log"))
	var scripts []byte
	for _, l := range logs {
		s, _ := os.ReadFile(l)
		scripts = append(scripts, s...)
	}
	fmt.Fprintf(transcript, "### scripts.log\n%s", scripts)
	if err != nil {
		t.Fatalf("codedeploy-local: %v\n%s\n%s", err, out.String(), scripts)
	}
	for _, want := range []string{"verified " + b.env["IMAGE"] + ": signed by " + b.env["SIGNING_KEY"], "started " + b.env["CONTAINER_NAME"],
		fmt.Sprintf("proxy serving host port %d", port)} {
		if !bytes.Contains(scripts, []byte(want)) {
			t.Errorf("scripts.log lacks %q", want)
		}
	}
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", port, b.env["HEALTH_PATH"]))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s after the deployment: %d", b.env["HEALTH_PATH"], resp.StatusCode)
	}
	fmt.Fprintf(transcript, "### GET http://127.0.0.1:%d%s -> %d\n", port, b.env["HEALTH_PATH"], resp.StatusCode)
	// the journal, as a person on the instance reads it
	j, err := exec.Command("chroot", root, "/usr/local/bin/webapp-journal").CombinedOutput()
	fmt.Fprintf(transcript, "### webapp-journal\n%s", j)
	if err != nil || !bytes.Contains(j, []byte("now:    revision "+b.env["REVISION"])) ||
		!bytes.Contains(j, []byte("verification: signed by "+b.env["SIGNING_KEY"])) {
		t.Errorf("webapp-journal (%v):\n%s", err, j)
	}
}
