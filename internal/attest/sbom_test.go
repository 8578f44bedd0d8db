package attest

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/acme/webapp-pipeline/dev/devtest"
)

func requireSyft(t *testing.T) string {
	t.Helper()
	devtest.Require(t, "WEBAPP_DEV_SYFT")
	return os.Getenv("WEBAPP_DEV_SYFT")
}

// tarLayer is a layer holding files (path -> content).
func tarLayer(t *testing.T, files map[string]string) v1.Layer {
	t.Helper()
	return tarLayerMode(t, files, 0o644)
}

// tarLayerMode is tarLayer with the files' mode.
func tarLayerMode(t *testing.T, files map[string]string, mode int64) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for p, c := range files {
		if err := tw.WriteHeader(&tar.Header{Name: p, Mode: mode, Size: int64(len(c)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(c)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// The SBOM lists what the image holds: the Debian packages of its dpkg
// status and the Python distributions of a venv, each once.
func TestSBOMListsDebianAndPythonPackages(t *testing.T) {
	syft := requireSyft(t)
	status := "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.41-12\n\n" +
		"Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2025b-4\n\n"
	meta := func(n, v string) string { return "Metadata-Version: 2.1\nName: " + n + "\nVersion: " + v + "\n" }
	site := "opt/venv/lib/python3.13/site-packages/"
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, map[string]string{
		"etc/os-release":                            "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n",
		"var/lib/dpkg/status":                       status,
		site + "flask-3.1.0.dist-info/METADATA":     meta("Flask", "3.1.0"),
		site + "flask-3.1.0.dist-info/RECORD":       "flask/__init__.py,,\n",
		site + "gunicorn-23.0.0.dist-info/METADATA": meta("gunicorn", "23.0.0"),
		site + "gunicorn-23.0.0.dist-info/RECORD":   "gunicorn/__init__.py,,\n",
	}))
	if err != nil {
		t.Fatal(err)
	}
	s, err := SBOMOfImage(context.Background(), syft, img)
	if err != nil {
		t.Fatal(err)
	}
	if s.Packages["deb"] != 2 || s.Packages["pypi"] != 2 {
		t.Fatalf("SBOM packages %v, want 2 deb and 2 pypi", s.Packages)
	}
	for _, want := range []string{"pkg:deb/debian/libc6@2.41-12", "pkg:pypi/flask@3.1.0", "pkg:pypi/gunicorn@23.0.0"} {
		if !strings.Contains(string(s.JSON), want) {
			t.Errorf("SBOM lacks %s", want)
		}
	}

	// The same image as an OCI archive (a tar of its layout, as ci.ImageTarball writes it).
	dir := writeLayout(t, img)
	archive := filepath.Join(t.TempDir(), "image.tar")
	if out, err := exec.Command("tar", "-C", dir, "-cf", archive, "oci-layout", "index.json", "blobs").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	a, err := SBOMOfArchive(context.Background(), syft, archive)
	if err != nil {
		t.Fatal(err)
	}
	if a.Packages["deb"] != 2 || a.Packages["pypi"] != 2 {
		t.Fatalf("SBOM of the archive: %v", a.Packages)
	}
	if _, err := SBOMOfLayout(context.Background(), filepath.Join(t.TempDir(), "no-syft"), dir); err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Fatalf("no syft: err = %v", err)
	}
}

// On the real base image (python:3.13-slim from the dev mirror, built from
// Debian with mmdebstrap) the SBOM has every package of its dpkg status.
func TestSBOMOfTheBaseImageMatchesDpkg(t *testing.T) {
	syft := requireSyft(t)
	img := devMirrorBase(t)
	want := dpkgCount(t, img)
	s, err := SBOMOfImage(context.Background(), syft, img)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("base image: %d Debian packages in dpkg status, SBOM %v", want, s.Packages)
	if s.Packages["deb"] != want || want < 50 {
		t.Fatalf("SBOM has %d deb packages, dpkg status %d", s.Packages["deb"], want)
	}
}

// devMirrorBase is python:3.13-slim from the dev environment's mirror (Debian, mmdebstrap).
func devMirrorBase(t *testing.T) v1.Image {
	t.Helper()
	ref, err := name.ParseReference("127.0.0.1:5000/library/python:3.13-slim", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(ref)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// dpkgCount counts the installed packages in img's /var/lib/dpkg/status.
func dpkgCount(t *testing.T, img v1.Image) int {
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no var/lib/dpkg/status in the image: %v", err)
		}
		if strings.TrimPrefix(h.Name, "./") != "var/lib/dpkg/status" {
			continue
		}
		n := 0
		sc := bufio.NewScanner(tr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "Status: install ok installed") {
				n++
			}
		}
		return n
	}
}
