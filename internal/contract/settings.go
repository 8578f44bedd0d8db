package contract

import (
	"fmt"
	"strings"
)

// Kind is the type of a contract setting's value in pipeline.yml.
type Kind string

// The kinds of settings.
const (
	KindString   Kind = "a string"
	KindPort     Kind = "a port number (1-65535)"
	KindBool     Kind = "true or false"
	KindDuration Kind = "a duration such as 30s"
	KindList     Kind = "a list of strings"
	KindCommand  Kind = "a command: a list of strings (exec form) or one string"
	KindMap      Kind = "a map of strings"
	KindChoice   Kind = "one of"    // Setting.Values
	KindChoices  Kind = "a list of" // Setting.Values, each at most once
)

// Setting is one key of the contract: the key of pipeline.yml, which is also cmd/build's flag
// --KEY and its variable BUILD_KEY (upper case, '-' as '_').
type Setting struct {
	Key    string
	Kind   Kind
	Values []string // KindChoice: the values allowed, in the order messages list them
}

// Allowed says what a value of the setting must be, as a message names it.
func (s Setting) Allowed() string {
	if s.Kind != KindChoice && s.Kind != KindChoices {
		return string(s.Kind)
	}
	quoted := make([]string, len(s.Values))
	for i, v := range s.Values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return string(s.Kind) + " " + strings.Join(quoted, ", ")
}

// Allows reports whether v is one of a choice's values.
func (s Setting) Allows(v string) bool {
	for _, x := range s.Values {
		if x == v {
			return true
		}
	}
	return false
}

// The allowed values of the choices.
var (
	ImageBuilds   = []string{BuildDockerfile, BuildNative, BuildAuto}
	DepsKinds     = []string{DepsRequirements, DepsPyproject, DepsUV, DepsAuto}
	PlatformKinds = []string{PlatformAMD64, PlatformARM64}
)

// Settings are the contract's keys, in the order the documentation lists them: the one list of
// them. cmd/build has a flag for each (its test checks they are the same), docs/bring-your-own-app.md
// a row for each (a test checks that too).
var Settings = []Setting{
	{Key: "app-dir", Kind: KindString},
	{Key: "app-name", Kind: KindString},
	{Key: "image-build", Kind: KindChoice, Values: ImageBuilds},
	{Key: "dockerfile", Kind: KindString},
	{Key: "docker-target", Kind: KindString},
	{Key: "build-args", Kind: KindMap},
	{Key: "command", Kind: KindCommand},
	{Key: "container-port", Kind: KindPort},
	{Key: "health-path", Kind: KindString},
	{Key: "health-timeout", Kind: KindDuration},
	{Key: "require-non-root", Kind: KindBool},
	{Key: "base-image", Kind: KindString},
	{Key: "platforms", Kind: KindChoices, Values: PlatformKinds},
	{Key: "deps", Kind: KindChoice, Values: DepsKinds},
	{Key: "requirements", Kind: KindList},
	{Key: "dev-requirements", Kind: KindList},
	{Key: "dev-groups", Kind: KindList},
	{Key: "python-path", Kind: KindString},
	{Key: "lint-command", Kind: KindCommand},
	{Key: "test-command", Kind: KindCommand},
}

// Lookup returns the setting of key; ok is false for a key the contract does not have.
func Lookup(key string) (Setting, bool) {
	for _, s := range Settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}

// Keys are the settings' keys, in order.
func Keys() []string {
	keys := make([]string, len(Settings))
	for i, s := range Settings {
		keys[i] = s.Key
	}
	return keys
}

// oneOf lists a choice's values for a message: "dockerfile, native or auto".
func oneOf(values []string) string {
	if len(values) < 2 {
		return strings.Join(values, "")
	}
	return strings.Join(values[:len(values)-1], ", ") + " or " + values[len(values)-1]
}
