package ci_test

// The dev mirror's python images stand in for the official ones (docker-library/python): the
// facts a Dockerfile relies on are checked here against what the official Dockerfile declares,
// on each platform the image holds (linux/arm64 under emulation), and the native image's
// slimming is checked on each of them. docs/base-images.md has the table.

import (
	"context"
	"strings"
	"testing"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/ci"
	"github.com/acme/webapp-pipeline/dev/devtest"
)

// official is what docker-library/python's Dockerfile for TAG (3.13/slim-trixie,
// 3.11/slim-bookworm) declares and installs, as the stand-in shows it.
type official struct {
	lang    string // ENV LANG ("": not set; dropped from 3.13 on)
	version string // ENV PYTHON_VERSION's major.minor
}

var officialFacts = map[string]official{
	"3.13-slim": {lang: "", version: "3.13"},
	"3.11-slim": {lang: "C.UTF-8", version: "3.11"},
}

// The official Dockerfile's `ENV PATH /usr/local/bin:$PATH` on debian:SUITE-slim's PATH.
const officialPath = "/usr/local/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// factsScript prints what a Dockerfile's RUN lines see; each check exits non-zero with its name.
const factsScript = `set -e
fail() { echo "FAIL: $*"; exit 1; }
for c in python python3 pip pip3; do
  [ "$(command -v $c)" = /usr/local/bin/$c ] || fail "$c is $(command -v $c), not /usr/local/bin/$c"
done
[ "$(python --version)" = "Python $PYTHON_VERSION" ] || fail "python --version: $(python --version), ENV PYTHON_VERSION $PYTHON_VERSION"
python -c 'import sysconfig, os, sys; sys.exit(os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))' || fail "EXTERNALLY-MANAGED marker"
# a wheel, made here: pip installs it globally (no PEP 668 refusal), with --user, and in a venv
mkdir -p /w && cd /w
python - <<'EOF'
import zipfile
with zipfile.ZipFile("factcheck-1.0-py3-none-any.whl", "w") as z:
    z.writestr("factcheck.py", "ANSWER = 42\n")
    z.writestr("factcheck-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: factcheck\nVersion: 1.0\n")
    z.writestr("factcheck-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr("factcheck-1.0.dist-info/RECORD", "")
EOF
pip install -q --no-index --disable-pip-version-check --root-user-action=ignore factcheck-1.0-py3-none-any.whl || fail "global pip install"
python -c 'import factcheck; print("global", factcheck.__file__)'
# --user and a venv: not under emulation (EMULATED: the foreign platform's image), where each pip
# run takes ~30 s (pip's modules compiled at every start: the image keeps no .pyc) and ensurepip's
# more; they are the same Python packages on every platform of the image
if [ -z "${EMULATED:-}" ]; then
  pip uninstall -q -y --root-user-action=ignore factcheck || fail "pip uninstall"
  pip install -q --no-index --disable-pip-version-check --user factcheck-1.0-py3-none-any.whl || fail "pip install --user"
  python -c 'import factcheck; print("user", factcheck.__file__)'
  python -m venv /tmp/venv || fail "python -m venv"
  /tmp/venv/bin/pip install -q --no-index --disable-pip-version-check factcheck-1.0-py3-none-any.whl || fail "pip in a venv"
  /tmp/venv/bin/python -c 'import factcheck; print("venv", factcheck.__file__)'
fi
# installed as in the official slim image: ca-certificates, netbase, tzdata
for f in /etc/ssl/certs/ca-certificates.crt /etc/services /usr/share/zoneinfo/UTC; do [ -e $f ] || fail "no $f"; done
echo "user $(id -u)"
echo "machine $(uname -m) $(python -c 'import platform; print(platform.machine())')"
`

// machines: what uname -m (and Python's platform.machine()) say on each platform.
var machines = map[string]string{"linux/amd64": "x86_64", "linux/arm64": "aarch64"}

// TestBaseImageFacts: each python image the dev mirror holds behaves, for a Dockerfile, as the
// official image's Dockerfile says it does: interpreter and pip on PATH in /usr/local/bin, the
// ENV and CMD it declares, root, global pip install allowed, venv and --user work. On each
// platform of its index, as the official images are (linux/amd64 and linux/arm64): the arm64
// one runs under emulation (qemu-user-static, dev/env.sh install_qemu) and says aarch64.
func TestBaseImageFacts(t *testing.T) {
	devEngine(t)
	ctx, c := connect(t)
	for tag, suite := range devtest.PythonTags(t) {
		for _, platform := range devtest.PythonPlatforms(t) {
			t.Run(tag+"_"+strings.ReplaceAll(platform, "/", "-"), func(t *testing.T) {
				baseImageFacts(ctx, t, c, tag, suite, platform)
			})
		}
	}
}

func baseImageFacts(ctx context.Context, t *testing.T, c *dagger.Client, tag, suite, platform string) {
	want, ok := officialFacts[tag]
	if !ok {
		t.Fatalf("dev/versions.env serves python:%s (Debian %s): add what its official Dockerfile declares to officialFacts", tag, suite)
	}
	ref := devtest.MirrorRef("public.ecr.aws/docker/library/python:" + tag)
	img := c.Container(dagger.ContainerOpts{Platform: dagger.Platform(platform)}).From(ref)
	env := map[string]string{}
	vars, err := img.EnvVariables(ctx)
	if err != nil {
		t.Fatalf("pull %s: %v", ref, err)
	}
	for _, v := range vars {
		k, _ := v.Name(ctx)
		env[k], _ = v.Value(ctx)
	}
	if env["PATH"] != officialPath {
		t.Errorf("PATH = %q, the official image's %q", env["PATH"], officialPath)
	}
	if env["LANG"] != want.lang {
		t.Errorf("LANG = %q, the official image's %q", env["LANG"], want.lang)
	}
	if !strings.HasPrefix(env["PYTHON_VERSION"], want.version+".") {
		t.Errorf("PYTHON_VERSION = %q, want %s.x", env["PYTHON_VERSION"], want.version)
	}
	if args, _ := img.DefaultArgs(ctx); strings.Join(args, " ") != "python3" {
		t.Errorf("CMD = %q, the official image's [python3]", args)
	}
	if user, _ := img.User(ctx); user != "" {
		t.Errorf("USER = %q, the official image's root", user)
	}
	run := img
	if native, err := c.DefaultPlatform(ctx); err == nil && string(native) != platform {
		run = img.WithEnvVariable("EMULATED", "1")
	}
	out, err := run.WithExec([]string{"sh", "-c", factsScript}, dagger.ContainerWithExecOpts{Expect: dagger.ReturnTypeAny}).Stdout(ctx)
	if err != nil || !strings.Contains(out, "user 0") || strings.Contains(out, "FAIL") {
		t.Errorf("the facts a Dockerfile relies on (%s, %s):\n%s %v", ref, platform, out, err)
	}
	// the platform's own binaries: a mirror image without this platform would run the
	// amd64 ones (an image that is not an index is taken whatever the platform asked)
	if m := machines[platform]; !strings.Contains(out, "machine "+m+" "+m+"\n") {
		t.Errorf("%s as %s: want uname -m and platform.machine() %s, got:\n%s", ref, platform, m, out)
	}
	if p, err := img.Platform(ctx); err != nil || string(p) != platform {
		t.Errorf("%s as %s: the image's platform is %q (%v)", ref, platform, p, err)
	}
	t.Logf("python:%s (Debian %s) %s: PYTHON_VERSION=%s LANG=%q\n%s", tag, suite, platform, env["PYTHON_VERSION"], env["LANG"], out)
}

// TestNativeImageOnEachMirrorTag: the native image's slimmed base (scripts/slim.py) on each
// python image the mirror holds: python3 runs, pip is gone (Debian's and /usr/local's), the
// merged /usr's /lib link stays (bookworm's packages list /lib).
func TestNativeImageOnEachMirrorTag(t *testing.T) {
	devEngine(t)
	ctx, c := connect(t)
	for tag := range devtest.PythonTags(t) {
		t.Run(tag, func(t *testing.T) {
			ref := devtest.MirrorRef("public.ecr.aws/docker/library/python:" + tag)
			slim := c.Container().WithRootfs(ci.RuntimeBase(c, ref, ""))
			out, err := slim.WithExec([]string{"/usr/local/bin/python3", "-c", `
import os, importlib.util
print("python", os.sys.version.split()[0])
print("pip", importlib.util.find_spec("pip") is not None)
print("lib", os.path.islink("/lib"), os.path.isdir("/lib"))
print("pipcmd", [p for p in ("/usr/local/bin/pip", "/usr/local/bin/pip3", "/usr/bin/pip3") if os.path.lexists(p)])
`}).Stdout(ctx)
			if err != nil {
				t.Fatalf("python3 in the slimmed %s: %v", ref, err)
			}
			for _, want := range []string{"pip False", "lib True True", "pipcmd []"} {
				if !strings.Contains(out, want) {
					t.Errorf("the slimmed %s: want %q in\n%s", ref, want, out)
				}
			}
			t.Logf("slimmed python:%s:\n%s", tag, out)
		})
	}
}
