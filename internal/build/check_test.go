package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const goodAppspec = `version: 0.0
os: linux
hooks:
  ApplicationStop:
    - location: scripts/stop.sh
      timeout: 60
      runas: root
  ApplicationStart:
    - location: scripts/start.sh
      timeout: 3600
`

const goodScript = "#!/usr/bin/env bash\nset -euo pipefail\necho ok\n"

// bundle writes a bundle dir from name → content; names ending in .sh get mode.
func bundle(t *testing.T, files map[string]string, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		m := os.FileMode(0o644)
		if strings.HasSuffix(name, ".sh") {
			m = mode
		}
		if err := os.WriteFile(p, []byte(content), m); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckBundle(t *testing.T) {
	t.Parallel()
	good := map[string]string{"appspec.yml": goodAppspec, "scripts/stop.sh": goodScript, "scripts/start.sh": goodScript}
	with := func(name, content string) map[string]string {
		m := map[string]string{}
		for k, v := range good {
			m[k] = v
		}
		if content == "" {
			delete(m, name)
		} else {
			m[name] = content
		}
		return m
	}
	tests := []struct {
		name  string
		files map[string]string
		mode  os.FileMode
		want  string // "" = valid
	}{
		{"good", good, 0o755, ""},
		{"good with image.env", with("image.env", "IMAGE=x\n"), 0o755, ""},
		{"no appspec", with("appspec.yml", ""), 0o755, "no appspec.yml"},
		{"not yaml", with("appspec.yml", "version: [\n"), 0o755, "does not parse"},
		{"version", with("appspec.yml", strings.Replace(goodAppspec, "0.0", "1.0", 1)), 0o755, `version is "1.0"`},
		{"os", with("appspec.yml", strings.Replace(goodAppspec, "linux", "windows", 1)), 0o755, `os is "windows"`},
		// the traffic events of an in-place deployment take scripts too (internal/appspec, the one model)
		{"traffic hooks", with("appspec.yml", goodAppspec+"  BeforeBlockTraffic:\n    - location: scripts/stop.sh\n  AfterAllowTraffic:\n    - location: scripts/start.sh\n"), 0o755, ""},
		{"agent hook", with("appspec.yml", goodAppspec+"  Install:\n    - location: scripts/start.sh\n"), 0o755, "Install takes no scripts"},
		{"unknown hook", with("appspec.yml", goodAppspec+"  AfterDeploy:\n    - location: scripts/start.sh\n"), 0o755, `"AfterDeploy" is not an EC2 in-place hook`},
		{"timeout", with("appspec.yml", strings.Replace(goodAppspec, "3600", "3601", 1)), 0o755, "timeout 3601"},
		{"missing script", with("scripts/stop.sh", ""), 0o755, "scripts/stop.sh is missing"},
		{"outside", with("appspec.yml", strings.Replace(goodAppspec, "scripts/stop.sh", "../stop.sh", 1)), 0o755, "outside the bundle"},
		{"not executable", good, 0o644, "not executable"},
		{"crlf", with("scripts/start.sh", strings.ReplaceAll(goodScript, "\n", "\r\n")), 0o755, "CRLF"},
		{"no shebang", with("scripts/start.sh", "echo hi\n"), 0o755, "no shebang"},
		{"files source", with("appspec.yml", goodAppspec+"files:\n  - source: web/\n    destination: /opt/web\n"), 0o755, `files source "web/"`},
		{"files destination", with("appspec.yml", goodAppspec+"files:\n  - source: /\n    destination: opt\n"), 0o755, "absolute path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckBundle(bundle(t, tt.files, tt.mode), "")
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("valid bundle rejected: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want mention of %q", err, tt.want)
			case err != nil && strings.Contains(err.Error(), "\n"):
				t.Fatalf("error is not one line: %q", err)
			}
		})
	}
}

func TestCheckBuildspec(t *testing.T) {
	t.Parallel()
	dir := bundle(t, map[string]string{"appspec.yml": goodAppspec, "scripts/stop.sh": goodScript, "scripts/start.sh": goodScript}, 0o755)
	spec := filepath.Join(t.TempDir(), "buildspec.yml")
	for content, want := range map[string]string{
		"version: 0.2\nphases:\n  build:\n    commands: [make]\n": "",
		"version: 0.1\nphases:\n  build:\n    commands: [make]\n": `version is "0.1"`,
		"version: 0.2\nphases: {}\n":                              "no phases",
		"version: 0.2\nphases:\n  build: [\n":                     "does not parse",
	} {
		if err := os.WriteFile(spec, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		err := CheckBundle(dir, spec)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("buildspec %q: err = %v, want %q", content, err, want)
		}
	}
	if err := CheckBundle(dir, filepath.Join(t.TempDir(), "nope.yml")); err == nil {
		t.Error("missing buildspec accepted")
	}
}

// The repository's own appspec.yml and scripts must pass, as `all` checks them.
func TestCheckRepoBundle(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..")
	if _, err := os.Stat(filepath.Join(root, "appspec.yml")); err != nil {
		t.Skip("no appspec.yml in the repository yet")
	}
	if err := CheckBundle(root, filepath.Join(root, "buildspec.yml")); err != nil {
		t.Fatal(err)
	}
}
