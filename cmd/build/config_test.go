package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// parse parses args as the build program does, in a repository holding
// pipeline.yml (when yml is not empty), and returns the lint command's flags.
func parse(t *testing.T, yml string, args ...string) (*CLI, error) {
	t.Helper()
	dir := t.TempDir()
	if yml != "" {
		if err := os.WriteFile(filepath.Join(dir, "pipeline.yml"), []byte(yml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var cli CLI
	var buf bytes.Buffer
	parser, err := newParser(&cli, &buf, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	_, err = parser.Parse(append(args, "--source", dir))
	return &cli, err
}

// Flag > environment > pipeline.yml > default, for every kind of value.
func TestContractPrecedence(t *testing.T) {
	yml := "container-port: 9000\nhealth-path: /from-file\nhealth-timeout: 12s\ncommand: [srv, --port, \"9000\"]\n" +
		"requirements: [a.txt, b.txt]\nbuild-args: {A: \"1\"}\nrequire-non-root: true\n"
	cli, err := parse(t, yml, "lint")
	if err != nil {
		t.Fatal(err)
	}
	f := cli.Lint.ContractFlags
	if f.ContainerPort != 9000 || f.HealthPath != "/from-file" || f.HealthTimeout != 12*time.Second ||
		strings.Join(f.Command, " ") != "srv --port 9000" || strings.Join(f.Requirements, ",") != "a.txt,b.txt" ||
		f.BuildArgs["A"] != "1" || !f.RequireNonRoot {
		t.Errorf("from the file: %+v", f)
	}
	if f.AppDir != "app" || f.Deps != "auto" || strings.Join(f.LintCommand, " ") != "flake8 ." {
		t.Errorf("defaults: %+v", f)
	}

	t.Setenv("BUILD_CONTAINER_PORT", "9100")
	t.Setenv("BUILD_COMMAND", `srv --name "two words"`)
	cli, err = parse(t, yml, "lint", "--health-path", "/from-flag")
	if err != nil {
		t.Fatal(err)
	}
	f = cli.Lint.ContractFlags
	if f.ContainerPort != 9100 {
		t.Errorf("env should beat the file: port %d", f.ContainerPort)
	}
	if strings.Join(f.Command, "|") != "srv|--name|two words" {
		t.Errorf("env command split like a shell: %q", f.Command)
	}
	if f.HealthPath != "/from-flag" {
		t.Errorf("flag should beat the file: %s", f.HealthPath)
	}
	cli, err = parse(t, yml, "lint", "--container-port", "9200")
	if err != nil || cli.Lint.ContainerPort != 9200 {
		t.Errorf("flag should beat env: %v %d", err, cli.Lint.ContainerPort)
	}
	// where each came from, for the messages that name it (contract.App.Origin)
	o := cli.config.origins()
	for k, want := range map[string]string{"container-port": "--container-port", "command": "BUILD_COMMAND",
		"health-timeout": "pipeline.yml line 3", "requirements": "pipeline.yml line 5", "app-dir": "default"} {
		if o[k] != want {
			t.Errorf("origin of %s = %q, want %q", k, o[k], want)
		}
	}
}

// A bad file is one line naming the file, the key and what is allowed.
func TestContractFileErrors(t *testing.T) {
	for name, c := range map[string]struct{ yml, want string }{
		"unknown key":   {"app-dir: app\nhealth_path: /x\n", `pipeline.yml:2: unknown key "health_path"; allowed: app-dir, app-name,`},
		"port type":     {"container-port: eighty\n", "pipeline.yml:1: container-port must be a port number (1-65535): got str \"eighty\""},
		"port range":    {"container-port: 70000\n", "pipeline.yml:1: container-port must be a port number (1-65535): got 70000"},
		"command type":  {"command: {a: b}\n", "pipeline.yml:1: command must be a command: a list of strings (exec form) or one string: got a mapping"},
		"duration":      {"health-timeout: 30\n", "pipeline.yml:1: health-timeout must be a duration such as 30s"},
		"bool":          {"require-non-root: yes please\n", "pipeline.yml:1: require-non-root must be true or false"},
		"not a mapping": {"- a\n- b\n", "pipeline.yml: must be a mapping of contract keys"},
		"not yaml":      {"a: [\n", "pipeline.yml: not valid YAML"},
		"twice":         {"app-dir: a\napp-dir: b\n", "pipeline.yml:2: app-dir is set twice"},
		"enum":          {"image-build: docker\n", `pipeline.yml:1: image-build must be one of "dockerfile", "native", "auto": got "docker"`},
		"list item":     {"requirements: [a.txt, 8]\n", "pipeline.yml:1: requirements must be a list of strings: item int \"8\" (quote it)"},
		"bool case":     {"require-non-root: maybe\n", "pipeline.yml:1: require-non-root must be true or false"},
		"platform":      {"platforms: [linux/amd64, linux/arm]\n", `pipeline.yml:1: platforms must be a list of "linux/amd64", "linux/arm64": item str "linux/arm"`},
		"platform list": {"platforms: linux/arm64\n", `pipeline.yml:1: platforms must be a list of "linux/amd64", "linux/arm64": got str "linux/arm64"`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := parse(t, c.yml, "lint")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

// The keys of pipeline.yml are exactly the contract flags of every command
// that builds.
func TestContractKeysAreFlags(t *testing.T) {
	var cli CLI
	parser, err := newParser(&cli, &bytes.Buffer{}, func(int) {})
	if err != nil {
		t.Fatal(err)
	}
	for _, cmd := range parser.Model.Children {
		flags := map[string]bool{}
		var group []string // the flags in the help's contract group
		for _, f := range cmd.Flags {
			flags[f.Name] = true
			if f.Group != nil && f.Group.Key == "contract" {
				group = append(group, f.Name)
			}
		}
		if !flags["app-dir"] && cmd.Name != "reproduce" {
			continue // check takes no contract
		}
		for _, k := range contract.Keys() {
			if !flags[k] {
				t.Errorf("%s: pipeline.yml key %q is not one of its flags", cmd.Name, k)
			}
		}
		if got, want := strings.Join(group, " "), strings.Join(contract.Keys(), " "); got != want {
			t.Errorf("%s: the contract flags are\n  %s\nbut contract.Settings has\n  %s", cmd.Name, got, want)
		}
		for _, f := range cmd.Flags {
			if s, ok := contract.Lookup(f.Name); ok && s.Kind == contract.KindChoice && f.Enum != strings.Join(s.Values, ",") {
				t.Errorf("%s: --%s allows %q, contract.Settings %q", cmd.Name, f.Name, f.Enum, s.Values)
			}
		}
	}
}

// An explicit --config that is missing is an error; the default one may be absent.
func TestContractFileMissing(t *testing.T) {
	if _, err := parse(t, "", "lint"); err != nil {
		t.Errorf("no pipeline.yml: %v", err)
	}
	if _, err := parse(t, "", "lint", "--config", "other.yml"); err == nil || !strings.Contains(err.Error(), "other.yml") {
		t.Errorf("missing --config: %v", err)
	}
}

// YAML's other spellings of true are true.
func TestContractBoolSpellings(t *testing.T) {
	for _, v := range []string{"True", "TRUE", "true"} {
		cli, err := parse(t, "require-non-root: "+v+"\n", "lint")
		if err != nil || !cli.Lint.RequireNonRoot {
			t.Errorf("require-non-root: %s gave %v, %v", v, cli.Lint.RequireNonRoot, err)
		}
	}
}

// The README's "bring your own app" pipeline.yml is a valid contract file.
func TestReadmeContractParses(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	yml, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no ```yaml block: its first screen shows a pipeline.yml")
	}
	values, err := parseConfig("README.md", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	if len(values) < 2 {
		t.Errorf("README's pipeline.yml sets %d keys", len(values))
	}
}

// platforms: a list in pipeline.yml, a comma-separated list in BUILD_PLATFORMS and --platforms.
func TestContractPlatforms(t *testing.T) {
	cli, err := parse(t, "platforms: [linux/arm64, linux/amd64]\n", "lint")
	if err != nil || strings.Join(cli.Lint.Platforms, " ") != "linux/arm64 linux/amd64" {
		t.Errorf("file: %v %v", cli.Lint.Platforms, err)
	}
	t.Setenv("BUILD_PLATFORMS", "linux/amd64,linux/arm64")
	cli, err = parse(t, "platforms: [linux/arm64]\n", "lint")
	if err != nil || strings.Join(cli.Lint.Platforms, " ") != "linux/amd64 linux/arm64" {
		t.Errorf("env beats the file: %v %v", cli.Lint.Platforms, err)
	}
	cli, err = parse(t, "", "lint", "--platforms", "linux/arm64")
	if err != nil || strings.Join(cli.Lint.Platforms, " ") != "linux/arm64" {
		t.Errorf("flag beats env: %v %v", cli.Lint.Platforms, err)
	}
}
