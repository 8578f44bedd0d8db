package attest

import (
	"archive/zip"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// The conformance test of syftReads, against syft itself: for each tree,
// syft's scan of it (as SBOMCache runs it on a top layer) finds nothing
// whenever syftReads says syft reads none of it, and each tree where syft
// does find something (one per kind of evidence: a glob, a MIME type, the
// distribution's identity) is one syftReads points at.
func TestSyftReadsIsWhatSyftFinds(t *testing.T) {
	syft := requireSyft(t)
	ctx := context.Background()
	reads, err := syftReadsOf(ctx, syft, syftIdentity(syft), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("syft reads %d globs and %d MIME types", len(reads.Globs), len(reads.MIMETypes))

	jar := func() string {
		var b bytes.Buffer
		z := zip.NewWriter(&b)
		w, _ := z.Create("META-INF/MANIFEST.MF")
		w.Write([]byte("Manifest-Version: 1.0\r\nImplementation-Title: demo\r\nImplementation-Version: 1.2.3\r\n\r\n"))
		z.Close()
		return b.String()
	}
	goBinary := func() string {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/tool\n\ngo 1.22\n"), 0o644)
		os.WriteFile(filepath.Join(dir, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
		cmd := exec.Command("go", "build", "-o", "tool", ".")
		cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v: %s", err, out)
		}
		b, err := os.ReadFile(filepath.Join(dir, "tool"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	for _, tc := range []struct {
		name  string
		files map[string]string
		finds bool // syft finds something in it
	}{
		{"an app's code and declared dependencies", merge(appFiles("X = 1\n"), map[string]string{
			"app/gunicorn.conf.py":           "bind = '0.0.0.0:8000'\n",
			"app/pyproject.toml":             "[project]\nname = \"shop\"\nversion = \"1.0\"\ndependencies = [\"bottle==0.13.2\"]\n",
			"app/poetry.lock":                "[[package]]\nname = \"bottle\"\nversion = \"0.13.2\"\n",
			"app/static/site.js":             "console.log('hi');\n",
			"app/static/logo.png":            "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00",
			"app/webapp/__pycache__/x.pyc":   "\xf3\r\r\n\x00\x00\x00\x00" + strings.Repeat("\x00", 64),
			"app/templates/index.html":       "<!doctype html><title>x</title>\n",
			"app/config/settings.yaml":       "debug: false\n",
			"app/data/empty":                 "",
			"app/webapp/package_helpers.txt": "not a package.json\n",
		}), false},
		{"a Python distribution's metadata", merge(appFiles("X = 1\n"), map[string]string{
			"app/vendor/requests-2.32.3.dist-info/METADATA": "Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\n",
		}), true},
		{"an npm package", map[string]string{"app/ui/package.json": `{"name": "ui", "version": "1.0.0"}`}, true},
		{"a dpkg database", map[string]string{"var/lib/dpkg/status": "Package: curl\nStatus: install ok installed\nArchitecture: amd64\nVersion: 8.14.1-2\n\n"}, true},
		{"a Java archive", map[string]string{"app/lib/demo.jar": jar()}, true},
		{"a Go binary, by its MIME type", map[string]string{"app/bin/tool": goBinary()}, true},
		{"the distribution's identity in /usr/lib", map[string]string{"usr/lib/os-release": "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n"}, true},
		{"the distribution's identity in /etc", map[string]string{"etc/os-release": "NAME=\"Debian GNU/Linux\"\nVERSION_ID=\"13\"\nID=debian\n"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			for p, c := range tc.files {
				if err := writeFile(filepath.Join(root, filepath.FromSlash(p)), strings.NewReader(c), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			hit, err := reads.firstIn(root)
			if err != nil {
				t.Fatal(err)
			}
			found, err := sbomOf(ctx, syft, "dir:"+root, "--override-default-catalogers", "image")
			if err != nil {
				t.Fatal(err)
			}
			n := componentCount(found.JSON)
			t.Logf("syftReads: %q; syft: %d component(s)", hit, n)
			if hit == "" && n != 0 {
				t.Fatalf("syftReads says syft reads none of it, and syft finds %d component(s)", n)
			}
			if tc.finds && n == 0 {
				t.Fatal("syft finds nothing: the case tests nothing")
			}
			if !tc.finds && hit != "" {
				t.Fatalf("syftReads says syft reads %s, where it finds nothing (a scan more than needed)", hit)
			}
		})
	}
}

// syftReads comes from the syft it is about: another version, or one that
// cannot say, is "we cannot tell"; and an answer is kept per syft binary.
func TestSyftReadsAsksTheSyftItIsAbout(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "syft")
	script := func(version string) {
		t.Helper()
		s := "#!/bin/sh\ncase \"$1\" in\n" +
			"version) echo '{\"version\": \"" + version + "\"}';;\n" +
			"cataloger) if [ \"$2\" = list ]; then echo '{\"catalogers\": [{\"name\": \"a-cataloger\", \"tags\": [\"image\"]}, {\"name\": \"file-digest-cataloger\", \"tags\": [\"file\"]}]}'; " +
			"else echo '{\"catalogers\": [{\"name\": \"a-cataloger\", \"patterns\": [{\"method\": \"glob\", \"criteria\": [\"**/*.a\"]}, {\"method\": \"mimetype\", \"criteria\": [\"application/x-elf\"]}]}]}'; fi;;\n" +
			"esac\n"
		if err := os.WriteFile(fake, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	cache := t.TempDir()
	script("0.99.0")
	if _, err := syftReadsOf(ctx, fake, "id-old", cache); err == nil || !strings.Contains(err.Error(), "not "+SyftVersion) {
		t.Fatalf("another syft: err = %v", err)
	}
	script(SyftVersion)
	// Kept too: that binary is not asked again (builds do not pay three syft runs each time).
	if _, err := syftReadsOf(ctx, fake, "id-old", cache); err == nil || !strings.Contains(err.Error(), "not "+SyftVersion) {
		t.Fatalf("another syft, asked again: err = %v", err)
	}
	r, err := syftReadsOf(ctx, fake, "id-1", cache)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(r.Globs, ",") != "**/*.a" || strings.Join(r.MIMETypes, ",") != "application/x-elf" {
		t.Fatalf("globs %v, MIME types %v", r.Globs, r.MIMETypes)
	}
	// Kept: the same binary is not asked again (here, it could not answer).
	os.WriteFile(fake, []byte("#!/bin/sh\nexit 3\n"), 0o755)
	if _, err := syftReadsOf(ctx, fake, "id-1", cache); err != nil {
		t.Fatalf("asked again: %v", err)
	}
	if _, err := syftReadsOf(ctx, fake, "id-2", cache); err == nil {
		t.Fatal("a syft that fails: no error")
	}

	root := t.TempDir()
	writeFile(filepath.Join(root, "app", "x.a"), strings.NewReader("!<arch>\n"), 0o644)
	if hit, err := r.firstIn(root); err != nil || hit != "/app/x.a" {
		t.Fatalf("firstIn = %q, %v; want /app/x.a", hit, err)
	}
}
