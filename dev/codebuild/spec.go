// Package codebuild runs a buildspec.yml (version 0.2) locally with CodeBuild's semantics:
// phase order, a failed command ending its phase, finally blocks, on-failure, post_build after
// a failed build with CODEBUILD_BUILD_SUCCEEDING=0, env.variables, env.parameter-store resolved
// from SSM (and masked in the log), shell state carried from one command to the next, and the
// artifacts section (files, base-directory, discard-paths) collected into a zip.
package codebuild

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// Phases in the order CodeBuild runs them.
var Phases = []string{"install", "pre_build", "build", "post_build"}

// Spec is the part of buildspec 0.2 this runner understands.
type Spec struct {
	Version   string           `yaml:"version"`
	Env       Env              `yaml:"env"`
	Phases    map[string]Phase `yaml:"phases"`
	Artifacts Artifacts        `yaml:"artifacts"`
}

// Env is buildspec's env section.
type Env struct {
	Shell          string            `yaml:"shell"`
	Variables      map[string]string `yaml:"variables"`
	ParameterStore map[string]string `yaml:"parameter-store"`
}

// Phase is one of install, pre_build, build, post_build.
type Phase struct {
	OnFailure       string            `yaml:"on-failure"`
	RuntimeVersions map[string]string `yaml:"runtime-versions"`
	Commands        []string          `yaml:"commands"`
	Finally         []string          `yaml:"finally"`
}

// Artifacts is buildspec's artifacts section.
type Artifacts struct {
	Files         []string `yaml:"files"`
	BaseDirectory string   `yaml:"base-directory"`
	DiscardPaths  string   `yaml:"discard-paths"`
	Name          string   `yaml:"name"`
}

// Load reads and checks a buildspec file.
func Load(path string) (*Spec, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s Spec
	if err := yaml.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if s.Version != "0.2" {
		return nil, fmt.Errorf("%s: version %q: only buildspec version 0.2 is supported", path, s.Version)
	}
	for name, p := range s.Phases {
		if !isPhase(name) {
			return nil, fmt.Errorf("%s: unknown phase %q (phases: %s)", path, name, strings.Join(Phases, ", "))
		}
		switch strings.ToUpper(p.OnFailure) {
		case "", "ABORT", "CONTINUE":
		default:
			return nil, fmt.Errorf("%s: phase %s: on-failure %q must be ABORT or CONTINUE", path, name, p.OnFailure)
		}
	}
	switch s.Env.Shell {
	case "", "bash", "sh", "/bin/sh", "/bin/bash":
	default:
		return nil, fmt.Errorf("%s: env.shell %q: only bash and sh are supported here", path, s.Env.Shell)
	}
	return &s, nil
}

func isPhase(name string) bool {
	for _, p := range Phases {
		if p == name {
			return true
		}
	}
	return false
}

// discardPaths reads buildspec's yes/no booleans.
func (a Artifacts) discardPaths() bool {
	switch strings.ToLower(a.DiscardPaths) {
	case "yes", "true":
		return true
	}
	return false
}
