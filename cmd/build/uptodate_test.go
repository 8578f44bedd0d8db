package main

import (
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
		k, err := inputsKey(root, settings...)
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
		"appspec.yml", "scripts/start.sh", "buildspec.yml"} {
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
}

func TestUpToDateNeedsTheArtifacts(t *testing.T) {
	out := t.TempDir()
	writeTree(t, out, map[string]string{
		"build.json":         `{"image": "r@sha256:1", "digest": "sha256:1", "inputs": "sha256:k"}`,
		"bundle/appspec.yml": "version: 0.0\n", "bundle/image.env": "IMAGE=r@sha256:1\n",
	})
	if _, ok := upToDate(out, "sha256:k"); !ok {
		t.Fatal("complete out dir with the same key: not up to date")
	}
	if _, ok := upToDate(out, "sha256:other"); ok {
		t.Error("other key: up to date")
	}
	os.Remove(filepath.Join(out, "bundle", "image.env"))
	if _, ok := upToDate(out, "sha256:k"); ok {
		t.Error("bundle without image.env: up to date")
	}
	if _, ok := upToDate(filepath.Join(out, "nope"), "sha256:k"); ok {
		t.Error("no out dir: up to date")
	}
}
