package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/alecthomas/kong"
	"github.com/google/shlex"
	"gopkg.in/yaml.v3"

	"github.com/acme/webapp-pipeline/internal/build"
	"github.com/acme/webapp-pipeline/internal/contract"
	"github.com/acme/webapp-pipeline/internal/gitx"
)

// ContractFlags are the app contract (internal/contract): each one is a flag,
// a BUILD_* variable and a key of the repository's pipeline.yml, in that
// order of precedence, then the default.
type ContractFlags struct {
	Config string `help:"The app contract file, relative to --source (default: ${default}; a missing default file means all defaults)." env:"BUILD_CONFIG" default:"pipeline.yml" placeholder:"FILE"`

	AppDir          string            `help:"The app's directory, relative to --source (default: ${default})." env:"BUILD_APP_DIR" group:"contract" default:"app" placeholder:"DIR"`
	AppName         string            `help:"Names the container on the instances and titles the image (default: ${default})." env:"BUILD_APP_NAME" group:"contract" default:"webapp" placeholder:"NAME"`
	ImageBuild      string            `help:"How the image is made: dockerfile (the app's own Dockerfile), native (the pipeline's slim non-root image), auto (dockerfile when the app has one) (default: ${default})." env:"BUILD_IMAGE_BUILD" group:"contract" default:"auto" enum:"${image_builds}"`
	Dockerfile      string            `help:"dockerfile: the Dockerfile, relative to the app directory (default: ${default})." env:"BUILD_DOCKERFILE" group:"contract" default:"Dockerfile" placeholder:"FILE"`
	DockerTarget    string            `help:"dockerfile: the stage to build (default: the last)." env:"BUILD_DOCKER_TARGET" group:"contract" placeholder:"STAGE"`
	BuildArgs       map[string]string `help:"dockerfile: build arguments (REVISION and SOURCE_DATE_EPOCH are always given)." env:"BUILD_BUILD_ARGS" group:"contract" mapsep:";" placeholder:"KEY=VALUE"`
	Command         Command           `help:"native: what the image runs, e.g. \"gunicorn --bind 0.0.0.0:8080 pkg:app\" (a list in pipeline.yml)." env:"BUILD_COMMAND" group:"contract" placeholder:"CMD"`
	ContainerPort   Port              `help:"The port the app listens on in the container (default: the Dockerfile's EXPOSE; required for native)." env:"BUILD_CONTAINER_PORT" group:"contract" placeholder:"PORT"`
	HealthPath      string            `help:"GET this path on the container port must answer 2xx: the smoke test before the push, and ValidateService on the instances (default: ${default})." env:"BUILD_HEALTH_PATH" group:"contract" default:"/" placeholder:"PATH"`
	HealthTimeout   time.Duration     `help:"The smoke test's bound: the health path must answer within this time of the container's start (default: ${default})." env:"BUILD_HEALTH_TIMEOUT" group:"contract" default:"30s" placeholder:"DURATION"`
	RequireNonRoot  bool              `help:"Fail the smoke test when the image runs as root (otherwise a warning)." env:"BUILD_REQUIRE_NON_ROOT" group:"contract"`
	BaseImage       string            `help:"Python image for lint, tests and the native image (default: ${default})." env:"BUILD_BASE_IMAGE" group:"contract" default:"${default_base_image}" placeholder:"IMAGE"`
	Platforms       []string          `help:"The platforms the image is built for, ${platform_kinds} (default: the build host's); more than one: one image each, smoke-tested each, pushed as one OCI image index." env:"BUILD_PLATFORMS" group:"contract" placeholder:"OS/ARCH"`
	Deps            string            `help:"How the app declares its dependencies: requirements, pyproject (PEP 621/735), uv (uv.lock), auto (uv.lock, else the requirements files, else pyproject.toml) (default: ${default})." env:"BUILD_DEPS" group:"contract" default:"auto" enum:"${deps_kinds}"`
	Requirements    []string          `help:"requirements: the runtime requirement files (default: ${default})." env:"BUILD_REQUIREMENTS" group:"contract" default:"requirements.txt" placeholder:"FILE"`
	DevRequirements []string          `help:"requirements: the lint/test requirement files (default: those of requirements-dev.txt, requirements-test.txt, dev-requirements.txt, test-requirements.txt that exist)." env:"BUILD_DEV_REQUIREMENTS" group:"contract" placeholder:"FILE"`
	DevGroups       []string          `help:"pyproject: the extras or dependency groups with the lint/test tools; uv: the dependency groups (default: all of them, and uv all extras too)." env:"BUILD_DEV_GROUPS" group:"contract" placeholder:"NAME"`
	PythonPath      string            `help:"Put on PYTHONPATH for lint, tests and the native image, relative to the app directory (default: src when there is one, else the app directory)." env:"BUILD_PYTHON_PATH" group:"contract" placeholder:"DIR"`
	LintCommand     Command           `help:"The lint command, run in the app directory (default: ${default})." env:"BUILD_LINT_COMMAND" group:"contract" default:"flake8 ." placeholder:"CMD"`
	TestCommand     Command           `help:"The test command, run in the app directory; pytest writes JUnit through PYTEST_ADDOPTS (default: ${default})." env:"BUILD_TEST_COMMAND" group:"contract" default:"python -m pytest" placeholder:"CMD"`
}

// app is the contract as asked (contract.App.Resolve checks and completes it).
func (f ContractFlags) app() contract.App {
	return contract.App{
		Dir: f.AppDir, Name: f.AppName, Build: f.ImageBuild, Dockerfile: f.Dockerfile, Target: f.DockerTarget,
		BuildArgs: f.BuildArgs, Command: f.Command, Port: int(f.ContainerPort),
		HealthPath: f.HealthPath, HealthTimeout: f.HealthTimeout, RequireNonRoot: f.RequireNonRoot,
		BaseImage: f.BaseImage, Platforms: f.Platforms, Deps: f.Deps, Requirements: f.Requirements, DevRequirements: f.DevRequirements,
		DevGroups: f.DevGroups, PythonPath: f.PythonPath, Lint: f.LintCommand, Test: f.TestCommand,
	}
}

// Command is a command line: a YAML list in pipeline.yml (exec form, taken
// as it is), a string on the command line or in a variable (split like a
// shell does, quotes respected, nothing expanded).
type Command []string

// Decode implements kong.MapperValue.
func (c *Command) Decode(ctx *kong.DecodeContext) error {
	tok := ctx.Scan.Pop()
	switch v := tok.Value.(type) {
	case string:
		words, err := shlex.Split(v)
		if err != nil {
			return fmt.Errorf("cannot split %q into words: %w", v, err)
		}
		*c = words
	case []any:
		words := make([]string, len(v))
		for i, w := range v {
			s, ok := w.(string)
			if !ok {
				return fmt.Errorf("word %d of the command is %v, not a string", i+1, w)
			}
			words[i] = s
		}
		*c = words
	default:
		return fmt.Errorf("want a command (a string or a list of strings), got %v", v)
	}
	return nil
}

// Port is a TCP port number.
type Port int

// Decode implements kong.MapperValue.
func (p *Port) Decode(ctx *kong.DecodeContext) error {
	tok := ctx.Scan.Pop()
	var n int
	switch v := tok.Value.(type) {
	case int:
		n = v
	case string:
		var err error
		if n, err = strconv.Atoi(strings.TrimSpace(v)); err != nil {
			return fmt.Errorf("must be a port number from 1 to 65535, got %q", v)
		}
	default:
		return fmt.Errorf("must be a port number from 1 to 65535, got %v", v)
	}
	if n < 1 || n > 65535 {
		return fmt.Errorf("must be a port number from 1 to 65535, got %d", n)
	}
	*p = Port(n)
	return nil
}

// configError is a problem with the contract file: the CLI prints it alone
// (kong would prefix it with the flag being resolved).
type configError struct{ err error }

func (e *configError) Error() string { return e.err.Error() }
func (e *configError) Unwrap() error { return e.err }

// parseConfig reads pipeline.yml: a mapping of contract keys, each checked
// against its kind, so a typo or a wrong type is one line naming the file,
// the key and what is allowed.
func parseConfig(name string, data []byte) (map[string]any, error) {
	values, _, err := parseConfigLines(name, data)
	return values, err
}

// parseConfigLines is parseConfig with the line of each key (where a
// setting came from, for the messages that name it).
func parseConfigLines(name string, data []byte) (map[string]any, map[string]int, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: not valid YAML: %s", name, build.OneLine(err.Error()))
	}
	values, lines := map[string]any{}, map[string]int{}
	if len(doc.Content) == 0 {
		return values, lines, nil // empty file: all defaults
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s: must be a mapping of contract keys (%s)", name, allowedKeys())
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if _, dup := values[k.Value]; dup {
			return nil, nil, fmt.Errorf("%s:%d: %s is set twice: keep one", name, k.Line, k.Value)
		}
		setting, ok := contract.Lookup(k.Value)
		if !ok {
			return nil, nil, fmt.Errorf("%s:%d: unknown key %q; allowed: %s", name, k.Line, k.Value, allowedKeys())
		}
		val, err := configValue(setting, v)
		if err != nil {
			return nil, nil, fmt.Errorf("%s:%d: %s must be %s: %v", name, v.Line, k.Value, setting.Allowed(), err)
		}
		values[k.Value], lines[k.Value] = val, k.Line
	}
	return values, lines, nil
}

func configValue(setting contract.Setting, n *yaml.Node) (any, error) {
	scalar := func(tag string) (string, error) {
		if n.Kind != yaml.ScalarNode || (tag != "" && n.Tag != tag) {
			return "", fmt.Errorf("got %s", describe(n))
		}
		return n.Value, nil
	}
	switch setting.Kind {
	case contract.KindString:
		return scalar("!!str")
	case contract.KindBool:
		var b bool
		if _, err := scalar("!!bool"); err != nil {
			return nil, err
		}
		if err := n.Decode(&b); err != nil {
			return nil, fmt.Errorf("got %q", n.Value)
		}
		return b, nil
	case contract.KindChoice:
		v, err := scalar("!!str")
		if err != nil {
			return nil, err
		}
		if !setting.Allows(v) {
			return nil, fmt.Errorf("got %q", v)
		}
		return v, nil
	case contract.KindPort:
		var p int
		if _, err := scalar("!!int"); err != nil {
			return nil, err
		}
		if err := n.Decode(&p); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("got %s", n.Value)
		}
		return p, nil
	case contract.KindDuration:
		s, err := scalar("!!str")
		if err != nil {
			return nil, err
		}
		if _, err := time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("got %q", s)
		}
		return s, nil
	case contract.KindChoices:
		if n.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("got %s", describe(n))
		}
		list := []any{}
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode || e.Tag != "!!str" || !setting.Allows(e.Value) {
				return nil, fmt.Errorf("item %s", describe(e))
			}
			list = append(list, e.Value)
		}
		return list, nil
	case contract.KindCommand:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
			return n.Value, nil
		}
		fallthrough
	case contract.KindList:
		if n.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("got %s", describe(n))
		}
		list := []any{}
		for _, e := range n.Content {
			if e.Kind != yaml.ScalarNode || e.Tag != "!!str" {
				return nil, fmt.Errorf("item %s (quote it)", describe(e))
			}
			list = append(list, e.Value)
		}
		return list, nil
	case contract.KindMap:
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("got %s", describe(n))
		}
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i+1].Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s is %s", n.Content[i].Value, describe(n.Content[i+1]))
			}
			m[n.Content[i].Value] = n.Content[i+1].Value
		}
		return m, nil
	}
	return nil, errors.New("unknown kind")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), n.Value)
}

func allowedKeys() string {
	keys := contract.Keys()
	sort.Strings(keys)
	return strings.Join(keys, ", ")
}

// configResolver is the kong.Resolver that reads the contract file. It loads
// the file on first use, once the command line is parsed, because where the
// file is depends on --source and --config (and for reproduce, on the
// commit: the file is read from it, as CodeBuild saw it). A contract value
// set in the environment wins over the file, the command line over both.
type configResolver struct {
	once   sync.Once
	values map[string]any
	file   string         // the contract file's name ("pipeline.yml")
	lines  map[string]int // the line of each key in it
	err    error
	// where each contract setting it was asked for came from: "BUILD_X",
	// "pipeline.yml line N", "default"; one it was not asked for was on
	// the command line (kong asks only for the flags not given there)
	asked map[string]string
}

// origins says where each contract setting came from (contract.App.Origin).
func (r *configResolver) origins() map[string]string {
	out := map[string]string{}
	for _, k := range contract.Keys() {
		out[k] = "--" + k
		if o, ok := r.asked[k]; ok {
			out[k] = o
		}
	}
	return out
}

func (r *configResolver) Validate(*kong.Application) error { return nil }

func (r *configResolver) Resolve(kctx *kong.Context, _ *kong.Path, flag *kong.Flag) (any, error) {
	if _, ok := contract.Lookup(flag.Name); !ok {
		return nil, nil
	}
	if r.asked == nil {
		r.asked = map[string]string{}
	}
	for _, env := range flag.Envs {
		if _, set := os.LookupEnv(env); set {
			r.asked[flag.Name] = env
			return nil, nil
		}
	}
	r.once.Do(func() { r.file, r.values, r.lines, r.err = loadContractFile(kctx) })
	if r.err != nil {
		return nil, &configError{r.err}
	}
	v, ok := r.values[flag.Name]
	if !ok {
		r.asked[flag.Name] = "default"
		return nil, nil
	}
	r.asked[flag.Name] = fmt.Sprintf("%s line %d", r.file, r.lines[flag.Name])
	return v, nil
}

// loadContractFile finds and parses the contract file of this invocation.
func loadContractFile(kctx *kong.Context) (string, map[string]any, map[string]int, error) {
	flags := map[string]*kong.Flag{}
	for _, f := range kctx.Flags() {
		flags[f.Name] = f
	}
	str := func(name string) string {
		if f := flags[name]; f != nil {
			if s, ok := kctx.FlagValue(f).(string); ok {
				return s
			}
		}
		return ""
	}
	cfg := str("config")
	explicit := cfg != "pipeline.yml"
	for _, e := range flags["config"].Envs {
		if _, set := os.LookupEnv(e); set {
			explicit = true
		}
	}
	var data []byte
	var name string
	if commit := kctx.Selected(); commit != nil && commit.Name == "reproduce" {
		// The commit's own contract, as CodeBuild read it from its checkout.
		var rev string
		for _, p := range kctx.Path {
			if p.Positional != nil && p.Positional.Name == "commit" {
				rev, _ = kctx.Value(p).Interface().(string)
			}
		}
		repo := str("repo")
		name = rev + ":" + cfg
		if _, err := gitx.Out(context.Background(), repo, "rev-parse", "--verify", "--end-of-options", rev+"^{commit}"); err != nil {
			return "", nil, nil, fmt.Errorf("commit %q not found in %s (git fetch it first)", rev, repo)
		}
		b, ok := gitx.Show(context.Background(), repo, rev, filepath.ToSlash(cfg))
		if !ok {
			if explicit {
				return "", nil, nil, fmt.Errorf("%s: not in commit %s of %s (--config / BUILD_CONFIG)", cfg, rev, repo)
			}
			return "", map[string]any{}, nil, nil
		}
		data = b
	} else {
		name = filepath.Join(str("source"), cfg)
		if filepath.IsAbs(cfg) {
			name = cfg
		}
		b, err := os.ReadFile(name)
		switch {
		case os.IsNotExist(err) && !explicit:
			return "", map[string]any{}, nil, nil
		case err != nil:
			return "", nil, nil, fmt.Errorf("contract file %s: %v (--config / BUILD_CONFIG)", name, errText(err))
		}
		data = b
	}
	values, lines, err := parseConfigLines(filepath.Base(name), bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	return filepath.Base(cfg), values, lines, err
}

func errText(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
