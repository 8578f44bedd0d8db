package codedeploy

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxTimeout is CodeDeploy's default and maximum timeout of one hook script.
const MaxTimeout = 3600

// Lifecycle events, in the in-place order CodeDeploy (and codedeploy-local) runs them.
// DownloadBundle and Install take no scripts. The traffic events run with or without a load
// balancer, as codedeploy-local does: *BlockTraffic from the previous revision, like
// ApplicationStop; *AllowTraffic from the new one.
const (
	BeforeBlockTraffic = "BeforeBlockTraffic"
	AfterBlockTraffic  = "AfterBlockTraffic"
	ApplicationStop    = "ApplicationStop"
	DownloadBundle     = "DownloadBundle"
	BeforeInstall      = "BeforeInstall"
	Install            = "Install"
	AfterInstall       = "AfterInstall"
	ApplicationStart   = "ApplicationStart"
	ValidateService    = "ValidateService"
	BeforeAllowTraffic = "BeforeAllowTraffic"
	AfterAllowTraffic  = "AfterAllowTraffic"
)

var knownHooks = map[string]bool{
	ApplicationStop: true, BeforeInstall: true, AfterInstall: true, ApplicationStart: true,
	ValidateService: true, "BeforeBlockTraffic": true, "AfterBlockTraffic": true,
	"BeforeAllowTraffic": true, "AfterAllowTraffic": true,
}

// File-exists behaviours of the Install event.
const (
	Disallow  = "DISALLOW"
	Overwrite = "OVERWRITE"
	Retain    = "RETAIN"
)

// AppSpec is the EC2/on-premises appspec.yml.
type AppSpec struct {
	Version            string            `yaml:"version"`
	OS                 string            `yaml:"os"`
	Files              []FileMapping     `yaml:"files"`
	FileExistsBehavior string            `yaml:"file_exists_behavior"`
	Permissions        []yaml.Node       `yaml:"permissions"`
	Hooks              map[string][]Hook `yaml:"hooks"`
}

// FileMapping is one entry of the files section: source relative to the revision root,
// destination absolute.
type FileMapping struct {
	Source      string `yaml:"source"`
	Destination string `yaml:"destination"`
}

// Hook is one script of a lifecycle event.
type Hook struct {
	Location string `yaml:"location"`
	Timeout  int    `yaml:"timeout"`
	Runas    string `yaml:"runas"`
}

// appSpecNames are the file names the agent accepts at the revision root, in its order.
var appSpecNames = []string{"appspec.yml", "appspec.yaml"}

// LoadAppSpec reads and validates the appspec at the root of a revision directory.
func LoadAppSpec(revisionDir string) (*AppSpec, error) {
	for _, name := range appSpecNames {
		data, err := os.ReadFile(filepath.Join(revisionDir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read appspec: %w", err)
		}
		spec, err := ParseAppSpec(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return spec, nil
	}
	return nil, fmt.Errorf("no appspec.yml at the root of the revision %s", revisionDir)
}

// ParseAppSpec decodes an appspec strictly (unknown keys are errors) and validates it.
func ParseAppSpec(data []byte) (*AppSpec, error) {
	var spec AppSpec
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&spec); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if err := spec.validate(); err != nil {
		return nil, err
	}
	return &spec, nil
}

func (s *AppSpec) validate() error {
	var errs []error
	if s.Version != "0.0" {
		errs = append(errs, fmt.Errorf("version must be 0.0, got %q", s.Version))
	}
	if s.OS != "linux" {
		errs = append(errs, fmt.Errorf("os must be linux, got %q", s.OS))
	}
	if len(s.Permissions) > 0 {
		errs = append(errs, errors.New("permissions: not supported by the local replay"))
	}
	switch s.FileExistsBehavior {
	case "":
		s.FileExistsBehavior = Disallow
	case Disallow, Overwrite, Retain:
	default:
		errs = append(errs, fmt.Errorf("file_exists_behavior must be DISALLOW, OVERWRITE or RETAIN, got %q", s.FileExistsBehavior))
	}
	for i, f := range s.Files {
		if f.Source == "" || !path.IsAbs(f.Destination) {
			errs = append(errs, fmt.Errorf("files[%d]: source is required and destination must be absolute", i))
		}
		if _, err := relPath(f.Source); err != nil {
			errs = append(errs, fmt.Errorf("files[%d]: %w", i, err))
		}
	}
	for event, hooks := range s.Hooks {
		if !knownHooks[event] {
			errs = append(errs, fmt.Errorf("hooks: unknown lifecycle event %q", event))
		}
		for i := range hooks {
			h := &hooks[i]
			if _, err := relPath(h.Location); err != nil || h.Location == "" {
				errs = append(errs, fmt.Errorf("hooks.%s[%d]: location must be a path inside the revision, got %q", event, i, h.Location))
			}
			if h.Timeout == 0 {
				h.Timeout = MaxTimeout
			}
			if h.Timeout < 1 || h.Timeout > MaxTimeout {
				errs = append(errs, fmt.Errorf("hooks.%s[%d]: timeout must be 1..%d s, got %d", event, i, MaxTimeout, h.Timeout))
			}
		}
	}
	return errors.Join(errs...)
}

// relPath cleans a revision-relative path ("/" is the revision root) and refuses escapes.
func relPath(p string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(p, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("path %q leaves the revision", p)
	}
	return clean, nil
}
