package ci

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"

	"dagger.io/dagger"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// The python3 tools that slim the base and write the image deterministically
// (they run inside the engine with the base image's own python3).
//
//go:embed scripts/oci.py scripts/slim.py scripts/pydeps.py
var scripts embed.FS

// ImageOpts are the app's contract and the build facts stamped into the image.
type ImageOpts struct {
	App      contract.App
	Revision string // git commit (or "dev")
	Version  string // APP_VERSION; the revision when empty
	// SourceDateEpoch is the commit time (unix seconds): the app layer's
	// mtimes, the config's created time and org.opencontainers.image.created
	// come from it, so the same commit gives the same image digest (0:
	// undated, still reproducible). Nothing else about where or when it was
	// built goes in.
	SourceDateEpoch int64
	// DepsEpoch dates the venv layer: the time of the last commit that
	// changed the dependency files (0: SourceDateEpoch). A commit that
	// changes only code then leaves that layer's bytes, and its digest, as
	// they were: pushed once, pulled once, scanned once.
	DepsEpoch int64
	// Platform is the image's platform ("linux/arm64"); "" is the engine's
	// own, and the graph is then exactly a single-platform build's. Only
	// what must run on the image's platform runs under emulation (the
	// dependency install and its bytecode; a Dockerfile's RUN steps): the
	// slimming and the layout writing run on the engine's platform.
	Platform dagger.Platform
	// BaseLayer is the runtime base as a layer (layer.tar.gz and
	// layer.json: digest, size, diff_id), when the caller kept it from an
	// earlier build of the same base image, platform and tools
	// (BaseLayerTools); nil makes it here: RuntimeBase, then oci.py (the
	// slimming and a gzip of ~56 MB, seconds on every cold engine, as
	// CodeBuild's always is). The bytes are the same either way.
	BaseLayer *dagger.Directory
}

// OCIPlatform is the image config's and the index's platform fields for p
// ("linux/arm64" is arm64 variant v8, as the official images and containerd
// name it); nil for "" (oci.py names the engine's own platform).
func OCIPlatform(p dagger.Platform) map[string]string {
	if p == "" {
		return nil
	}
	osName, arch, _ := strings.Cut(string(p), "/")
	arch, variant, _ := strings.Cut(arch, "/")
	out := map[string]string{"os": osName, "architecture": arch}
	if arch == "arm64" && variant == "" {
		variant = "v8"
	}
	if variant != "" {
		out["variant"] = variant
	}
	return out
}

func (o ImageOpts) epoch() int64 { return o.SourceDateEpoch }

func (o ImageOpts) depsEpoch() int64 {
	if o.DepsEpoch != 0 {
		return o.DepsEpoch
	}
	return o.SourceDateEpoch
}

func (o ImageOpts) version() string {
	if o.Version != "" {
		return o.Version
	}
	return o.Revision
}

// labels are the OCI annotations every image gets, whichever way it is made.
func (o ImageOpts) labels() map[string]string {
	return map[string]string{
		"org.opencontainers.image.title":    o.App.Name,
		"org.opencontainers.image.revision": o.Revision,
		"org.opencontainers.image.version":  o.version(),
		"org.opencontainers.image.created":  time.Unix(o.epoch(), 0).UTC().Format(time.RFC3339),
	}
}

// runtimeExclude is what the running service does not need.
var runtimeExclude = []string{"tests", "requirements*.txt", "constraints*.txt", "setup.cfg", ".flake8", "pytest.ini",
	"tox.ini", "conftest.py", "uv.lock", "Dockerfile", ".dockerignore"}

// toolsDir holds oci.py and slim.py.
func toolsDir(c *dagger.Client) *dagger.Directory {
	d := c.Directory()
	for _, name := range []string{"oci.py", "slim.py", "pydeps.py"} {
		b, err := scripts.ReadFile("scripts/" + name)
		if err != nil { // embedded at build time: cannot happen
			panic(err)
		}
		d = d.WithNewFile(name, string(b))
	}
	return d
}

// BaseLayerTools names the tools that make the runtime base layer from the
// base image (slim.py, oci.py): with the base image's digest and the
// platform, what decides the layer's bytes (a key for ImageOpts.BaseLayer).
func BaseLayerTools() string {
	h := sha256.New()
	for _, name := range []string{"slim.py", "oci.py"} {
		b, _ := scripts.ReadFile("scripts/" + name) // embedded: cannot fail
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// toolbox is the base image with the tools at /ci: where layers are written.
func toolbox(c *dagger.Client, baseImage string) *dagger.Container {
	return c.Container().From(baseImage).
		WithEnvVariable("PYTHONDONTWRITEBYTECODE", "1").
		WithMountedDirectory("/ci", toolsDir(c))
}

// RuntimeBase is the base image's root filesystem without what the service
// never runs: apt/dpkg and their state, pip and the bundled wheels, perl,
// bash, most coreutils, docs, locales, the stdlib's tests and GUI modules
// (the list is in scripts/slim.py). python3 and its libraries, dash, id, CA
// certificates and tzdata stay, and /var/lib/dpkg/status with the stanzas of
// the packages that stay (syft lists them in the SBOM).
//
// platform is the base image's manifest whose root filesystem is slimmed
// ("": the engine's own); slim.py itself runs on the engine's platform (it
// only reads and removes files).
func RuntimeBase(c *dagger.Client, baseImage string, platform dagger.Platform) *dagger.Directory {
	return toolbox(c, baseImage).
		WithMountedDirectory("/rootfs", from(c, baseImage, platform).Rootfs()).
		WithExec([]string{"python3", "/ci/slim.py", "/rootfs"}).
		Directory("/rootfs")
}

// runtimeVenvLayer is /opt/venv with ONLY the app's runtime dependencies,
// built in its own container (no pip cache, no dev tools, not even pip in
// it), as one deterministic layer (layer's output) whose mtimes are epoch.
// Bytecode is compiled with unchecked-hash invalidation (no source mtimes in
// the .pyc files) and a fixed hash seed (same bytes every time).
func runtimeVenvLayer(c *dagger.Client, app contract.App, src *dagger.Directory, epoch int64, platform dagger.Platform) *dagger.Directory {
	build := venv(c, app.BaseImage, platform).
		WithEnvVariable("UV_COMPILE_BYTECODE", "0").
		WithDirectory("/build", depFiles(c, app, src)).
		WithWorkdir("/build")
	// One exec after the install (a container start, and a copy of the venv
	// into the next one, less on every dependency change): pip goes (nothing
	// installs at run time), the bytecode is compiled with a fixed hash
	// seed (set and frozenset constants are marshalled in hash order, so with
	// a random seed the same source gives other .pyc bytes), and oci.py
	// writes the tree as the layer, every mtime epoch. pip goes by rm of
	// what its RECORD lists (its package, its dist-info, bin/pip*): the same
	// layer bytes as `pip uninstall pip`, without 0.6 s of pip's start.
	return installDeps(c, checkMachine(build, platform), app, false).
		WithEnvVariable("PYTHONHASHSEED", "0").
		WithMountedDirectory("/ci", toolsDir(c)).
		WithExec([]string{"sh", "-c", `rm -rf "$0"/lib/python3*/site-packages/pip "$0"/lib/python3*/site-packages/pip-*.dist-info "$0"/bin/pip "$0"/bin/pip3 "$0"/bin/pip3.* && ` +
			`python -m compileall -f -q -j 1 --invalidation-mode unchecked-hash "$0"/lib && ` +
			`python3 /ci/oci.py layer "$0" "$0" "$1" /out`, VenvDir, strconv.FormatInt(epoch, 10)}).
		Directory("/out")
}

// machines are the machine names (uname -m) of the platforms' binaries.
var machines = map[string]string{"amd64": "x86_64", "arm64": "aarch64"}

// WrongMachine is how checkMachine's exec says that the base image's binaries
// are of another platform than the one asked: "base image runs x86_64, not aarch64".
var WrongMachine = regexp.MustCompile(`base image runs ([a-z0-9_]+), not ([a-z0-9_]+)`)

// checkMachine fails ctr (the base image for another platform than the
// engine's) when its python is not that platform's: a registry that serves
// one image manifest, not an index, gives it for every platform asked, and
// its binaries would then run natively and fill the venv with the wrong
// wheels. Nothing for the engine's own platform (platform ""): that graph
// stays the single-platform one.
func checkMachine(ctr *dagger.Container, platform dagger.Platform) *dagger.Container {
	want := machines[OCIPlatform(platform)["architecture"]]
	if platform == "" || want == "" {
		return ctr
	}
	return ctr.WithExec([]string{"sh", "-c", `m=$(python3 -c 'import platform; print(platform.machine())') && ` +
		`if [ "$m" != "$0" ]; then echo "base image runs $m, not $0" >&2; exit 3; fi`, want})
}

// keepTimes is oci.py's EPOCH for "keep every file's own mtime".
const keepTimes = "keep"

// layerTimed is dir as one deterministic gzip layer under prefix: a
// directory with layer.tar.gz and layer.json (digest, size, diff_id). Owners
// and modes are kept as they are in dir; mtimes become epoch (unix seconds),
// or stay as they are in dir with keepTimes (the base image's own).
func layerTimed(c *dagger.Client, baseImage string, dir *dagger.Directory, prefix, epoch string) *dagger.Directory {
	return toolbox(c, baseImage).
		WithMountedDirectory("/in", dir).
		WithExec([]string{"python3", "/ci/oci.py", "layer", "/in", prefix, epoch, "/out"}).
		Directory("/out")
}

// imageSpec is the input of `oci.py image`.
type imageSpec struct {
	Epoch    int64             `json:"epoch"`
	Platform map[string]string `json:"platform,omitempty"` // os, architecture, variant ("": the engine's)
	Created  string            `json:"created"`
	Config   map[string]any    `json:"config"`
	Layers   []layerSpec       `json:"layers"`
}

type layerSpec struct {
	Dir       string `json:"dir,omitempty"`    // a layer() output, or
	Src       string `json:"src,omitempty"`    // a tree to write as a layer under Prefix
	Prefix    string `json:"prefix,omitempty"` // in the same exec
	CreatedBy string `json:"created_by"`
}

// ImageLayout is the native runtime image as an OCI image layout directory
// (oci-layout, index.json, blobs/) plus a file "digest" naming its manifest.
// Three layers, each rebuilt only when its input changes: the slimmed base
// (RuntimeBase), the venv (runtime dependencies), the app code (root-owned,
// tests and dev files excluded). It runs the contract's command as a numeric
// non-root user in /app, the python path on PYTHONPATH, the contract's port
// exposed.
//
// Reproducible: entries are sorted, owners numeric, JSON canonical, and
// every layer's mtimes come from its own inputs: the base layer keeps the
// base image's file times (slim.py restores those of the directories it
// touches), the venv layer's are o.DepsEpoch, the app layer's and the
// created times o.SourceDateEpoch. The same commit on the same base image
// gives the same digest on any engine, warm or empty, and a code-only commit
// changes only the app layer (the config and manifest aside).
// (Dagger v0.18's own Publish/AsTarball stamp the engine's cache-record times
// into the config's history, so they cannot give that.)
func ImageLayout(c *dagger.Client, src *dagger.Directory, o ImageOpts) *dagger.Directory {
	return nativeImage(c, src, o).Directory("/out")
}

// NativeImage is ImageLayout and, from the same exec, that layout as one tar
// file (ImageTarball's bytes): what Container.Import reads for the smoke
// test, without a second container start on every code change.
func NativeImage(c *dagger.Client, src *dagger.Directory, o ImageOpts) (layout *dagger.Directory, tarball *dagger.File) {
	ctr := nativeImage(c, src, o)
	return ctr.Directory("/out"), ctr.File(nativeTar)
}

const nativeTar = "/tar/image.tar"

func nativeImage(c *dagger.Client, src *dagger.Directory, o ImageOpts) *dagger.Container {
	epoch := o.epoch()
	app := o.App
	// No WithTimestamps here: oci.py writes every mtime as epoch anyway, and
	// on a code change it was a separate copy of the tree (~0.2 s).
	code := c.Directory().WithDirectory(".", src, dagger.DirectoryWithDirectoryOpts{Exclude: runtimeExclude})
	labels := o.labels()
	spec := imageSpec{
		Epoch:    epoch,
		Platform: OCIPlatform(o.Platform),
		Created:  labels["org.opencontainers.image.created"],
		Config: map[string]any{
			"User":         User,
			"ExposedPorts": map[string]any{fmt.Sprintf("%d/tcp", app.Port): map[string]any{}},
			"Env": []string{
				"PATH=" + VenvDir + "/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
				"LANG=C.UTF-8",
				"PYTHONDONTWRITEBYTECODE=1",
				"PYTHONUNBUFFERED=1",
				"PYTHONPATH=" + path.Join(AppDir, app.PythonPath),
				"HOME=/tmp", // the numeric user has no home (gunicorn, for one, writes $HOME/.gunicorn)
				"APP_VERSION=" + o.version(),
				"REVISION=" + o.Revision,
			},
			"Cmd":        app.Command,
			"WorkingDir": AppDir,
			"Labels":     labels,
		},
		Layers: []layerSpec{
			{Dir: "/layers/0", CreatedBy: "runtime base: " + app.BaseImage + " slimmed (ci/scripts/slim.py)"},
			{Dir: "/layers/1", CreatedBy: "venv " + VenvDir + ": " + app.Deps + " (" + strings.Join(app.DepFiles(), " ") + ")"},
			// The app layer changes with every commit: written in the same exec
			// as the manifest (one container start less per code change).
			{Src: "/layers/app", Prefix: AppDir, CreatedBy: "app code " + AppDir},
		},
	}
	specJSON, _ := json.Marshal(spec) // maps marshal with sorted keys
	base := app.BaseImage
	baseLayer := o.BaseLayer
	if baseLayer == nil {
		baseLayer = layerTimed(c, base, RuntimeBase(c, base, o.Platform), "", keepTimes)
	}
	return toolbox(c, base).
		WithMountedDirectory("/layers/0", baseLayer).
		WithMountedDirectory("/layers/1", runtimeVenvLayer(c, app, src, o.depsEpoch(), o.Platform)).
		WithMountedDirectory("/layers/app", code).
		WithNewFile("/spec/image.json", string(specJSON)).
		WithExec([]string{"python3", "/ci/oci.py", "image", "/spec/image.json", "/out", nativeTar})
}

// ImageTarball is the layout as one tar file (OCI archive): what `docker
// load` and Container.Import read. Its bytes depend only on the layout.
func ImageTarball(c *dagger.Client, baseImage string, layout *dagger.Directory) *dagger.File {
	return toolbox(c, baseImage).
		WithMountedDirectory("/layout", layout).
		WithExec([]string{"python3", "/ci/oci.py", "tarball", "/layout", "/out/image.tar"}).
		File("/out/image.tar")
}
