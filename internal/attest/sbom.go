package attest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
)

// SBOM is a CycloneDX JSON document of what an image contains, written by
// syft (github.com/anchore/syft, run as its CLI: as a library it would add
// ~350 modules to every `go run ./cmd/build`).
type SBOM struct {
	JSON []byte
	// Packages counts the components by package URL type ("pypi", "deb", ...).
	Packages map[string]int
	// How it was made (SBOMCache.OfLayout's answer; "" when syft ran on
	// the whole image without a cache).
	How string
}

// Total is the number of components.
func (s *SBOM) Total() int {
	n := 0
	for _, c := range s.Packages {
		n += c
	}
	return n
}

// SBOMOfImage writes img as an OCI layout in a temporary directory and runs
// SBOMOfLayout on it.
func SBOMOfImage(ctx context.Context, syft string, img v1.Image) (*SBOM, error) {
	dir, err := os.MkdirTemp("", "attest-layout-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return nil, err
	}
	if err := p.AppendImage(img); err != nil {
		return nil, fmt.Errorf("write the image as an OCI layout: %w", err)
	}
	return SBOMOfLayout(ctx, syft, dir)
}

// SBOMOfLayout runs syft over the OCI image layout in dir (one image: what
// ci.ImageLayout writes) and returns its CycloneDX JSON. Syft reads every
// layer: the Python distributions installed anywhere in the image (their
// .dist-info/.egg-info metadata) and the Debian packages of its dpkg status
// (/var/lib/dpkg/status and status.d/). syft is the binary's path; "" looks
// for `syft` in PATH. Syft runs offline (no update check).
func SBOMOfLayout(ctx context.Context, syft, dir string) (*SBOM, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	return sbomOf(ctx, syft, "oci-dir:"+abs)
}

// SBOMOfArchive is SBOMOfLayout for an OCI archive (a tar of the layout:
// what ci.ImageTarball and Dagger's Container.AsTarball write).
func SBOMOfArchive(ctx context.Context, syft, tarPath string) (*SBOM, error) {
	abs, err := filepath.Abs(tarPath)
	if err != nil {
		return nil, err
	}
	return sbomOf(ctx, syft, "oci-archive:"+abs)
}

// sbomOf runs syft on source (syft's scheme:path), with args added to its command line.
func sbomOf(ctx context.Context, syft, source string, args ...string) (*SBOM, error) {
	bin, err := FindSyft(syft)
	if err != nil {
		return nil, err
	}
	out, err := os.MkdirTemp("", "attest-sbom-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(out)
	file := filepath.Join(out, "sbom.cdx.json")
	cmd := exec.CommandContext(ctx, bin, append([]string{"scan", source, "--quiet", "-o", "cyclonedx-json=" + file}, args...)...)
	cmd.Env = syftEnv(out)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("syft scan %s failed: %v: %s", source, err, lastLines(stderr.String(), 5))
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("syft wrote no SBOM: %w", err)
	}
	return ParseSBOM(b)
}

// syftEnv is syft's environment, with home a temporary directory of the caller's.
func syftEnv(home string) []string {
	return append(os.Environ(),
		"SYFT_CHECK_FOR_APP_UPDATE=false", // no network: nothing to ask
		// Packages, not every file: without this syft lists (and hashes) each file the
		// packages own as a component of its own, ~4,400 of them in a Dockerfile image (1.4 MB
		// of SBOM instead of 0.25 MB, and ~1 s more of syft on a code change).
		"SYFT_FILE_METADATA_SELECTION=none", "SYFT_FILE_METADATA_DIGESTS=",
		"SYFT_CACHE_DIR="+filepath.Join(home, "cache"),
		"HOME="+home, // nothing of syft's lands in the caller's home
	)
}

// ParseSBOM reads a CycloneDX JSON document syft wrote (as SBOMOfLayout returns it).
func ParseSBOM(b []byte) (*SBOM, error) {
	var doc struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Type string `json:"type"`
			PURL string `json:"purl"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &doc); err != nil || doc.BOMFormat != "CycloneDX" {
		return nil, fmt.Errorf("syft's output is not a CycloneDX JSON document (%v)", err)
	}
	s := &SBOM{JSON: b, Packages: map[string]int{}}
	for _, c := range doc.Components {
		if c.PURL == "" { // the operating system itself, files
			continue
		}
		typ, _, _ := strings.Cut(strings.TrimPrefix(c.PURL, "pkg:"), "/")
		s.Packages[typ]++
	}
	return s, nil
}

// FindSyft is the path of the syft binary p ("" = syft in PATH), or one
// line saying how to install it: check it before building anything.
func FindSyft(p string) (string, error) {
	if p == "" {
		p = "syft"
	}
	bin, err := exec.LookPath(p)
	if err != nil {
		return "", fmt.Errorf("the SBOM generator %q is not installed: run dev/install-attest.sh (or install syft %s; buildspec.yml does in CodeBuild)", p, SyftVersion)
	}
	return bin, nil
}

// SyftVersion is the syft the project pins (dev/versions.env SYFT_VERSION).
const SyftVersion = "v1.54.1"

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
