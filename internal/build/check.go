package build

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/acme/webapp-pipeline/internal/appspec"
)

const maxProblems = 3 // problems named in the one-line error

// checkBundle validates a CodeDeploy bundle directory (and a buildspec, if
// given) and returns one line naming the problems and how to fix them.
func CheckBundle(dir, buildspec string) error {
	probs := bundleProblems(dir)
	if buildspec != "" {
		probs = append(probs, buildspecProblems(buildspec)...)
	}
	if len(probs) == 0 {
		return nil
	}
	shown := probs
	if len(shown) > maxProblems {
		shown = append(shown[:maxProblems:maxProblems], fmt.Sprintf("and %d more", len(probs)-maxProblems))
	}
	return fmt.Errorf("bundle %s: %d problem(s): %s", dir, len(probs), strings.Join(shown, "; "))
}

func bundleProblems(dir string) []string {
	raw, err := os.ReadFile(filepath.Join(dir, "appspec.yml"))
	if err != nil {
		return []string{fmt.Sprintf("no appspec.yml at the bundle root (%v)", errText(err))}
	}
	spec, err := appspec.Parse(raw)
	if err != nil {
		return []string{"appspec.yml does not parse: " + oneLine(err.Error())}
	}
	var p []string
	add := func(format string, a ...any) { p = append(p, fmt.Sprintf(format, a...)) }

	if v := spec.Version.Value; v != "0.0" {
		add("appspec.yml: version is %q, must be 0.0", v)
	}
	if spec.OS != "linux" {
		add("appspec.yml: os is %q, must be linux", spec.OS)
	}
	if b := spec.FileExistsBehavior; b != "" && !contains(appspec.FileExistsBehaviors, b) {
		add("appspec.yml: file_exists_behavior %q must be %s", b, strings.Join(appspec.FileExistsBehaviors, ", "))
	}
	for _, f := range spec.Files {
		if !path.IsAbs(f.Destination) {
			add("appspec.yml: files destination %q must be an absolute path", f.Destination)
		}
		if _, err := os.Stat(inBundle(dir, f.Source)); err != nil || escapes(f.Source) {
			add("appspec.yml: files source %q is not in the bundle", f.Source)
		}
	}

	hooks := make([]string, 0, len(spec.Hooks))
	for h := range spec.Hooks {
		hooks = append(hooks, h)
	}
	sort.Strings(hooks)
	for _, h := range hooks {
		ev, ok := appspec.Lookup(h)
		switch {
		case !ok:
			add("appspec.yml: %q is not an EC2 in-place hook (valid: %s)", h, strings.Join(appspec.ScriptEvents(), ", "))
			continue
		case !ev.Scripts:
			add("appspec.yml: hook %s takes no scripts (the agent runs it); remove it", h)
			continue
		}
		for _, e := range spec.Hooks[h] {
			if e.Timeout != nil && (*e.Timeout < 1 || *e.Timeout > appspec.MaxTimeout) {
				add("appspec.yml: %s timeout %d must be 1..%d seconds", h, *e.Timeout, appspec.MaxTimeout)
			}
			if e.Location == "" {
				add("appspec.yml: %s entry has no location", h)
				continue
			}
			p = append(p, scriptProblems(dir, h, e.Location)...)
		}
	}
	return p
}

// scriptProblems checks one hook script: present, executable, LF, shebang.
func scriptProblems(dir, hook, loc string) []string {
	if escapes(loc) {
		return []string{fmt.Sprintf("%s: location %q is outside the bundle", hook, loc)}
	}
	file := inBundle(dir, loc)
	st, err := os.Stat(file)
	if err != nil || !st.Mode().IsRegular() {
		return []string{fmt.Sprintf("%s: script %s is missing from the bundle", hook, loc)}
	}
	var p []string
	if st.Mode().Perm()&0o111 == 0 {
		p = append(p, fmt.Sprintf("%s: script %s is not executable (chmod 0755; git update-index --chmod=+x)", hook, loc))
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return append(p, fmt.Sprintf("%s: read %s: %s", hook, loc, errText(err)))
	}
	if bytes.Contains(data, []byte("\r\n")) {
		p = append(p, fmt.Sprintf("%s: script %s has CRLF line endings (convert to LF; keep *.sh eol=lf in .gitattributes)", hook, loc))
	}
	if !bytes.HasPrefix(data, []byte("#!")) {
		p = append(p, fmt.Sprintf("%s: script %s has no shebang (start it with #!/usr/bin/env bash)", hook, loc))
	}
	return p
}

func buildspecProblems(file string) []string {
	raw, err := os.ReadFile(file)
	if err != nil {
		return []string{fmt.Sprintf("buildspec %s: %s", file, errText(err))}
	}
	var spec struct {
		Version yaml.Node      `yaml:"version"`
		Phases  map[string]any `yaml:"phases"`
	}
	if err := yaml.Unmarshal(raw, &spec); err != nil {
		return []string{fmt.Sprintf("buildspec %s does not parse: %s", file, oneLine(err.Error()))}
	}
	var p []string
	if spec.Version.Value != "0.2" {
		p = append(p, fmt.Sprintf("buildspec %s: version is %q, must be 0.2", file, spec.Version.Value))
	}
	if len(spec.Phases) == 0 {
		p = append(p, fmt.Sprintf("buildspec %s: no phases", file))
	}
	return p
}

// inBundle maps an appspec path (relative to the bundle root; "/" = root).
func inBundle(dir, p string) string {
	return filepath.Join(dir, filepath.FromSlash(strings.TrimPrefix(p, "/")))
}

// escapes reports whether an appspec path leaves the bundle ("../x").
func escapes(p string) bool {
	c := path.Clean(strings.TrimPrefix(p, "/"))
	return c == ".." || strings.HasPrefix(c, "../")
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func errText(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err.Error()
	}
	return err.Error()
}
