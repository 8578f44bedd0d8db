package build

import (
	"fmt"
	"github.com/acme/webapp-pipeline/internal/contract"
	"os"
	"path/filepath"
	"testing"
)

func writeTree(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// The key changes with everything the build reads and only with that: the
// files ci.Source uploads (not its exclusions), the bundle inputs, settings.
func TestInputsKey(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, map[string]string{
		"app/webapp/__init__.py": "x = 1\n", "app/requirements.txt": "flask==3.1.1\n",
		"appspec.yml": "version: 0.0\n", "scripts/start.sh": "#!/bin/sh\n", "README.md": "docs\n",
	})
	key := func(settings ...string) string {
		t.Helper()
		k, err := inputsKey(root, contract.App{Dir: "app", Port: 8080}, settings...)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	base := key("rev1")
	if key("rev1") != base {
		t.Fatal("same tree, same settings: different keys")
	}
	// Not read by the build (or excluded from the upload): same key.
	same := map[string]string{
		"README.md": "other docs\n",
		"app/webapp/__pycache__/x.cpython-313.pyc": "bytecode",
		"app/webapp/y.pyc":                         "bytecode",
		"app/.pytest_cache/v/cache":                "{}",
		"app/dist/wheel.whl":                       "zip",
		"app/.venv/bin/python":                     "elf",
		".git/HEAD":                                "ref: refs/heads/main\n",
	}
	for name, content := range same {
		writeTree(t, root, map[string]string{name: content})
		if k := key("rev1"); k != base {
			t.Errorf("writing %s changed the key", name)
		}
	}
	// Read by the build: a new key each.
	seen := map[string]string{base: "base"}
	check := func(what, k string) {
		t.Helper()
		if prev, dup := seen[k]; dup {
			t.Errorf("%s: key equals the one after %s", what, prev)
		}
		seen[k] = what
	}
	check("another revision", key("rev2"))
	for _, name := range []string{"app/webapp/__init__.py", "app/requirements.txt", "app/webapp/dist/x.py",
		"appspec.yml", "scripts/start.sh", "buildspec.yml", "pipeline.yml", "app/Dockerfile"} {
		writeTree(t, root, map[string]string{name: "changed " + name})
		check(name, key("rev1"))
	}
	if err := os.Chmod(filepath.Join(root, "scripts", "start.sh"), 0o755); err != nil {
		t.Fatal(err)
	}
	check("chmod +x scripts/start.sh", key("rev1"))
	if err := os.Remove(filepath.Join(root, "app", "webapp", "dist", "x.py")); err != nil {
		t.Fatal(err)
	}
	check("rm app/webapp/dist/x.py", key("rev1"))
	// The resolved contract (what pipeline.yml, flags and env make of it).
	k, err := inputsKey(root, contract.App{Dir: "app", Port: 8081}, "rev1")
	if err != nil {
		t.Fatal(err)
	}
	check("another container port", k)
}

// Up to date only while the out dir holds exactly what the recorded build
// wrote: a report replaced by a later failed run, or a bundle file removed
// or edited, means build again.
func TestUpToDateNeedsTheArtifacts(t *testing.T) {
	out := t.TempDir()
	files := map[string]string{
		"bundle/appspec.yml": "version: 0.0\n", "bundle/image.env": "IMAGE=r@sha256:1\n",
		"bundle/scripts/start.sh": "#!/bin/sh\n", "reports/pytest.xml": "<testsuites/>",
	}
	writeTree(t, out, files)
	outputs, err := outputsKey(out)
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, out, map[string]string{"build.json": fmt.Sprintf(
		`{"image": "r@sha256:1", "digest": "sha256:1", "inputs": "sha256:k", "outputs": %q}`, outputs)})
	if _, ok := upToDate(out, "sha256:k"); !ok {
		t.Fatal("complete out dir with the same key: not up to date")
	}
	if _, ok := upToDate(out, "sha256:other"); ok {
		t.Error("other inputs key: up to date")
	}
	if _, ok := upToDate(filepath.Join(out, "nope"), "sha256:k"); ok {
		t.Error("no out dir: up to date")
	}
	changes := map[string]func(p string) error{
		"reports/pytest.xml":      func(p string) error { return os.WriteFile(p, []byte("<failure/>"), 0o644) },
		"bundle/scripts/start.sh": os.Remove,
		"bundle/image.env":        func(p string) error { return os.Chmod(p, 0o600) },
	}
	for name, change := range changes {
		p := filepath.Join(out, name)
		if err := change(p); err != nil {
			t.Fatal(err)
		}
		if _, ok := upToDate(out, "sha256:k"); ok {
			t.Errorf("after changing %s: still up to date", name)
		}
		writeTree(t, out, map[string]string{name: files[name]}) // restore
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, ok := upToDate(out, "sha256:k"); !ok {
			t.Errorf("after restoring %s: not up to date", name)
		}
	}
}

// A symlinked app/ is followed (Dagger's upload follows it): an edit
// through it changes the key.
func TestInputsKeyFollowsASymlinkedRoot(t *testing.T) {
	real, root := t.TempDir(), t.TempDir()
	writeTree(t, real, map[string]string{"webapp/__init__.py": "x = 1\n"})
	if err := os.Symlink(real, filepath.Join(root, "app")); err != nil {
		t.Fatal(err)
	}
	before, err := inputsKey(root, contract.App{Dir: "app"})
	if err != nil {
		t.Fatal(err)
	}
	writeTree(t, real, map[string]string{"webapp/__init__.py": "x = 2\n"})
	if after, _ := inputsKey(root, contract.App{Dir: "app"}); after == before {
		t.Error("an edit under a symlinked app/ did not change the key")
	}
}
