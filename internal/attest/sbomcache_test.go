package attest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// The conformance test of SBOMCache: the oracle is syft itself. Each image's
// SBOM from the cache must equal syft's scan of the same layout, byte for
// byte but for serialNumber and timestamp, and the cache must say how it
// made it (an incremental SBOM where the rules allow one, syft where not).

const site = "opt/venv/lib/python3.13/site-packages/"

func distInfo(n, v string) map[string]string {
	d := site + strings.ToLower(n) + "-" + v + ".dist-info/"
	return map[string]string{
		d + "METADATA": "Metadata-Version: 2.1\nName: " + n + "\nVersion: " + v + "\n",
		d + "RECORD":   strings.ToLower(n) + "/__init__.py,,\n",
	}
}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// baseFiles is a lower layer with packages: a dpkg status (2 packages) and a venv (2 distributions).
func baseFiles() map[string]string {
	return merge(map[string]string{
		"etc/os-release": "PRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n",
		"var/lib/dpkg/status": "Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.41-12\n\n" +
			"Package: tzdata\nStatus: install ok installed\nArchitecture: all\nVersion: 2025b-4\n\n",
	}, distInfo("Flask", "3.1.0"), distInfo("gunicorn", "23.0.0"))
}

// appFiles is an app layer: plain Python and the files a Dockerfile's COPY brings (no packages).
func appFiles(code string) map[string]string {
	return map[string]string{
		"app/webapp/__init__.py": code,
		"app/webapp/api.py":      "def ping():\n    return 'pong'\n",
		"app/requirements.txt":   "flask==3.1.0\nrequests==2.32.3\n",
		"app/setup.cfg":          "[flake8]\nmax-line-length = 100\n",
	}
}

// imageWith is base (nil: empty) with layers and labels.
func imageWith(t *testing.T, base v1.Image, labels map[string]string, layers ...v1.Layer) v1.Image {
	t.Helper()
	if base == nil {
		base = empty.Image
	}
	img, err := mutate.AppendLayers(base, layers...)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg := cf.Config
	cfg.Labels = labels
	if img, err = mutate.Config(img, cfg); err != nil {
		t.Fatal(err)
	}
	return img
}

func writeLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

var volatile = regexp.MustCompile(`"(serialNumber|timestamp)":"[^"]*"`)

func normalize(doc []byte) string { return volatile.ReplaceAllString(string(doc), `"$1":"-"`) }

// sameAsSyft fails unless got equals syft's scan of dir but for serialNumber and timestamp.
func sameAsSyft(t *testing.T, syft, dir string, got *SBOM) {
	t.Helper()
	want, err := SBOMOfLayout(context.Background(), syft, dir)
	if err != nil {
		t.Fatal(err)
	}
	g, w := normalize(got.JSON), normalize(want.JSON)
	if g == w {
		return
	}
	i := 0
	for i < len(g) && i < len(w) && g[i] == w[i] {
		i++
	}
	from := max(0, i-150)
	t.Fatalf("the SBOM differs from syft's scan at byte %d:\n got: ...%s\nwant: ...%s", i, g[from:min(len(g), i+150)], w[from:min(len(w), i+150)])
}

func ofLayout(t *testing.T, c SBOMCache, syft string, img v1.Image) (string, *SBOM, string) {
	t.Helper()
	dir := writeLayout(t, img)
	sb, how, err := c.OfLayout(context.Background(), syft, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %s, %v", filepath.Base(dir), how, sb.Packages)
	return dir, sb, how
}

func wantHow(t *testing.T, how, prefix string) {
	t.Helper()
	if !strings.HasPrefix(how, prefix) {
		t.Fatalf("made %q, want %q...", how, prefix)
	}
}

// copyCache is a new cache holding src's entries.
func copyCache(t *testing.T, src SBOMCache) SBOMCache {
	t.Helper()
	dst := SBOMCache{Dir: t.TempDir()}
	des, err := os.ReadDir(src.Dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range des {
		b, err := os.ReadFile(filepath.Join(src.Dir, de.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst.Dir, de.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestSBOMCacheMatchesSyft(t *testing.T) {
	syft := requireSyft(t)
	base := tarLayer(t, baseFiles())
	seeded := SBOMCache{Dir: t.TempDir()}

	// A: scanned whole, then the same image again: the stored SBOM, as it was.
	imgA := imageWith(t, nil, map[string]string{"org.opencontainers.image.revision": "a1", "org.opencontainers.image.title": "webapp"},
		base, tarLayer(t, appFiles("VERSION = 'a1'\n")))
	dirA, sbA, how := ofLayout(t, seeded, syft, imgA)
	wantHow(t, how, "syft (whole image: no earlier scan shares its lowest layer)")
	if sbA.Packages["deb"] != 2 || sbA.Packages["pypi"] != 2 {
		t.Fatalf("SBOM of A: %v, want 2 deb and 2 pypi", sbA.Packages)
	}
	sameAsSyft(t, syft, dirA, sbA)
	again, how, err := seeded.OfLayout(context.Background(), syft, dirA)
	if err != nil {
		t.Fatal(err)
	}
	wantHow(t, how, "memo")
	if string(again.JSON) != string(sbA.JSON) {
		t.Fatal("the stored SBOM of A differs from the one made")
	}

	t.Run("new app layer: incremental", func(t *testing.T) {
		c := copyCache(t, seeded)
		// Other labels (one more, other values: sorted as syft sorts them).
		img := imageWith(t, nil, map[string]string{"org.opencontainers.image.revision": "b2", "org.opencontainers.image.title": "webapp",
			"com.example.<team>": "a & b"}, base, tarLayer(t, appFiles("VERSION = 'b2'\n")))
		dir, sb, how := ofLayout(t, c, syft, img)
		wantHow(t, how, "incremental (1 lower layers from an earlier scan; the top 1 layer(s) hold nothing syft's catalogers read)")
		sameAsSyft(t, syft, dir, sb)

		// And C from B's entry (an incremental one): two app layers over the base, no labels.
		img = imageWith(t, nil, nil, base, tarLayer(t, appFiles("VERSION = 'c3'\n")), tarLayer(t, map[string]string{"app/extra.py": "X = 1\n"}))
		dir, sb, how = ofLayout(t, c, syft, img)
		wantHow(t, how, "incremental (1 lower layers from an earlier scan; the top 2 layer(s) hold nothing syft's catalogers read)")
		sameAsSyft(t, syft, dir, sb)
	})

	t.Run("only the configuration differs: incremental without syft", func(t *testing.T) {
		c := copyCache(t, seeded)
		img := imageWith(t, imgA, map[string]string{"org.opencontainers.image.revision": "a1-rebuilt"})
		dir, sb, how := ofLayout(t, c, syft, img)
		wantHow(t, how, "incremental (2 layers from an earlier scan: only the image's configuration differs)")
		sameAsSyft(t, syft, dir, sb)
	})

	t.Run("an executable with no package: incremental", func(t *testing.T) {
		elf, err := os.ReadFile("/bin/true")
		if err != nil {
			t.Skip(err)
		}
		c := copyCache(t, seeded)
		l := tarLayerMode(t, map[string]string{"app/bin/tool": string(elf)}, 0o755)
		dir, sb, how := ofLayout(t, c, syft, imageWith(t, nil, nil, base, l))
		wantHow(t, how, "incremental (1 lower layers from an earlier scan; syft on the top 1 layer(s), for /app/bin/tool (application/x-")
		sameAsSyft(t, syft, dir, sb)
	})

	// Each of these must fall back to syft on the whole image, and give syft's answer.
	for _, tc := range []struct {
		name, how string
		top       map[string]string
		check     func(*testing.T, *SBOM)
	}{
		{"the top layer adds a package", "syft (whole image: syft finds 1 package(s) in its top 1 layer(s))",
			merge(appFiles("X = 1\n"), map[string]string{
				"app/vendor/requests-2.32.3.dist-info/METADATA": "Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\n",
			}), func(t *testing.T, sb *SBOM) {
				if sb.Packages["pypi"] != 3 {
					t.Errorf("pypi %d, want 3", sb.Packages["pypi"])
				}
			}},
		{"a whiteout deletes a lower package", "syft (whole image: layer 2 of 2 deletes /" + site + "gunicorn-23.0.0.dist-info (a whiteout))",
			merge(appFiles("X = 1\n"), map[string]string{site + ".wh.gunicorn-23.0.0.dist-info": ""}),
			func(t *testing.T, sb *SBOM) {
				if sb.Packages["pypi"] != 1 {
					t.Errorf("pypi %d, want 1 (gunicorn deleted)", sb.Packages["pypi"])
				}
			}},
		{"an opaque directory hides the venv", "syft (whole image: layer 2 of 2 hides /opt/venv of the lower layers (an opaque directory))",
			map[string]string{"opt/venv/.wh..wh..opq": "", "opt/venv/README": "empty\n"},
			func(t *testing.T, sb *SBOM) {
				if sb.Packages["pypi"] != 0 {
					t.Errorf("pypi %d, want 0", sb.Packages["pypi"])
				}
			}},
		{"a file beside a lower package's metadata", "syft (whole image: layer 2 of 2 adds /" + site + "flask-3.1.0.dist-info/top_level.txt where syft reads package metadata",
			map[string]string{site + "flask-3.1.0.dist-info/top_level.txt": "flask\n"},
			nil},
		{"a Debian copyright file", "syft (whole image: layer 2 of 2 adds /usr/share/doc/tzdata/copyright where syft reads package metadata (/usr/share/doc)",
			map[string]string{"usr/share/doc/tzdata/copyright": "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\nFiles: *\nLicense: public-domain\n"},
			nil},
		{"the distribution's identity", "syft (whole image: layer 2 of 2 replaces /etc/os-release",
			map[string]string{"etc/os-release": "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"14\"\nID=debian\n"},
			nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := copyCache(t, seeded)
			dir, sb, how := ofLayout(t, c, syft, imageWith(t, nil, nil, base, tarLayer(t, tc.top)))
			wantHow(t, how, tc.how)
			sameAsSyft(t, syft, dir, sb)
			// Each rule matters: A's SBOM lent to this image would not be syft's.
			img, err := readLayout(dir)
			if err != nil {
				t.Fatal(err)
			}
			lent, err := rewriteImageFields(sbA.JSON, img)
			if err != nil {
				t.Fatal(err)
			}
			if normalize(lent) == normalize(sb.JSON) {
				t.Fatal("A's SBOM lent to this image would equal syft's: the case tests nothing")
			}
			if tc.check != nil {
				tc.check(t, sb)
			}
		})
	}

	t.Run("no shared lower layer", func(t *testing.T) {
		c := copyCache(t, seeded)
		other := tarLayer(t, merge(baseFiles(), distInfo("click", "8.1.8")))
		dir, sb, how := ofLayout(t, c, syft, imageWith(t, nil, nil, other, tarLayer(t, appFiles("X = 1\n"))))
		wantHow(t, how, "syft (whole image: no earlier scan shares its lowest layer)")
		sameAsSyft(t, syft, dir, sb)
	})

	t.Run("the earlier image had a package in its top layer", func(t *testing.T) {
		c := SBOMCache{Dir: t.TempDir()}
		withPkg := tarLayer(t, merge(appFiles("X = 1\n"), distInfo("requests", "2.32.3")))
		_, e, how := ofLayout(t, c, syft, imageWith(t, nil, nil, base, withPkg))
		wantHow(t, how, "syft (whole image: no earlier scan")
		if e.Packages["pypi"] != 3 {
			t.Fatalf("pypi %d, want 3", e.Packages["pypi"])
		}
		dir, sb, how := ofLayout(t, c, syft, imageWith(t, nil, nil, base, tarLayer(t, appFiles("X = 2\n"))))
		wantHow(t, how, "syft (whole image: the earlier scans sharing its lower 1 layer(s) found packages, or changes to them, above those)")
		sameAsSyft(t, syft, dir, sb)
		if sb.Packages["pypi"] != 2 {
			t.Fatalf("pypi %d, want 2", sb.Packages["pypi"])
		}
	})

	t.Run("no cache", func(t *testing.T) {
		dir := writeLayout(t, imgA)
		sb, how, err := SBOMCache{}.OfLayout(context.Background(), syft, dir)
		if err != nil {
			t.Fatal(err)
		}
		if how != "syft" {
			t.Fatalf("made %q, want syft", how)
		}
		sameAsSyft(t, syft, dir, sb)
		if _, _, err := (SBOMCache{Dir: t.TempDir()}).OfLayout(context.Background(), filepath.Join(t.TempDir(), "no-syft"), dir); err == nil || !strings.Contains(err.Error(), "not installed") {
			t.Fatalf("no syft: err = %v", err)
		}
	})
}

// The real base image (python:3.13-slim from the dev mirror) as the lower layers.
func TestSBOMCacheOnTheBaseImage(t *testing.T) {
	syft := requireSyft(t)
	baseImg := devMirrorBase(t)
	c := SBOMCache{Dir: t.TempDir()}
	labels := func(rev string) map[string]string {
		return map[string]string{"org.opencontainers.image.revision": rev, "org.opencontainers.image.title": "webapp"}
	}
	_, a, how := ofLayout(t, c, syft, imageWith(t, baseImg, labels("a1"), tarLayer(t, appFiles("VERSION = 'a1'\n"))))
	wantHow(t, how, "syft (whole image")
	if a.Packages["deb"] < 50 {
		t.Fatalf("SBOM of the base image and an app: %v", a.Packages)
	}
	n := len(mustLayers(t, baseImg))
	dir, b, how := ofLayout(t, c, syft, imageWith(t, baseImg, labels("a2"), tarLayer(t, appFiles("VERSION = 'a2'\n"))))
	wantHow(t, how, "incremental ("+strconv.Itoa(n)+" lower layers from an earlier scan; the top 1 layer(s) hold nothing syft's catalogers read)")
	sameAsSyft(t, syft, dir, b)
}

func mustLayers(t *testing.T, img v1.Image) []v1.Layer {
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	return ls
}

// A syft that cannot say what it reads (here: its cataloger commands fail)
// scans the top layers as before, and the answer says why.
func TestSBOMCacheWhenSyftCannotSayWhatItReads(t *testing.T) {
	real := requireSyft(t)
	syft := filepath.Join(t.TempDir(), "syft")
	script := "#!/bin/sh\ncase \"$1\" in cataloger) echo 'no such command' >&2; exit 3;; esac\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(syft, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	base := tarLayer(t, baseFiles())
	c := SBOMCache{Dir: t.TempDir()}
	_, _, how := ofLayout(t, c, syft, imageWith(t, nil, nil, base, tarLayer(t, appFiles("X = 1\n"))))
	wantHow(t, how, "syft (whole image: no earlier scan")
	dir, sb, how := ofLayout(t, c, syft, imageWith(t, nil, nil, base, tarLayer(t, appFiles("X = 2\n"))))
	wantHow(t, how, "incremental (1 lower layers from an earlier scan; syft on the top 1 layer(s) (what syft reads is not known: syft cataloger list")
	sameAsSyft(t, real, dir, sb)
}
