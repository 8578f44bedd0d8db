// Package appspec is the one model of CodeDeploy's appspec.yml for an EC2/on-premises in-place
// deployment: the lifecycle events in the order the agent runs them, which of them take scripts,
// the bound of a hook's timeout, and the file's shape. The bundle check (internal/build) reads a
// bundle with it; the local agent driver (dev/codedeploy) names the events it reports with it.
//
// Source: the AppSpec reference, "hooks section for an EC2/On-Premises deployment" (in-place,
// with or without a load balancer), and the real agent (codedeploy-local), which runs the
// traffic events of an in-place deployment with or without a load balancer.
package appspec

import "gopkg.in/yaml.v3"

// MaxTimeout is CodeDeploy's default and maximum timeout of one hook script, in seconds.
const MaxTimeout = 3600

// The lifecycle events of an in-place deployment.
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

// Event is one lifecycle event.
type Event struct {
	Name string
	// Scripts: the appspec may give it hook scripts; the others the agent runs itself.
	Scripts bool
	// Previous: its scripts come from the last successful revision on the instance, not from the
	// one being deployed (it runs before the new revision is downloaded).
	Previous bool
}

// Events are the in-place lifecycle, in the agent's order.
var Events = []Event{
	{BeforeBlockTraffic, true, true},
	{AfterBlockTraffic, true, true},
	{ApplicationStop, true, true},
	{DownloadBundle, false, false},
	{BeforeInstall, true, false},
	{Install, false, false},
	{AfterInstall, true, false},
	{ApplicationStart, true, false},
	{ValidateService, true, false},
	{BeforeAllowTraffic, true, false},
	{AfterAllowTraffic, true, false},
}

// Lookup returns the named event; ok is false for a name that is no in-place event.
func Lookup(name string) (Event, bool) {
	for _, e := range Events {
		if e.Name == name {
			return e, true
		}
	}
	return Event{}, false
}

// ScriptEvents are the names of the events that take scripts, in lifecycle order.
func ScriptEvents() []string {
	var names []string
	for _, e := range Events {
		if e.Scripts {
			names = append(names, e.Name)
		}
	}
	return names
}

// FileExistsBehaviors are the values file_exists_behavior may take (empty means DISALLOW).
var FileExistsBehaviors = []string{"DISALLOW", "OVERWRITE", "RETAIN"}

// AppSpec is the EC2/on-premises appspec.yml, as written (nothing defaulted).
type AppSpec struct {
	Version            yaml.Node         `yaml:"version"` // a node: 0.0 must stay "0.0", not the float 0
	OS                 string            `yaml:"os"`
	FileExistsBehavior string            `yaml:"file_exists_behavior"`
	Files              []File            `yaml:"files"`
	Hooks              map[string][]Hook `yaml:"hooks"`
}

// File is one entry of the files section: source relative to the revision root, destination
// absolute.
type File struct {
	Source      string `yaml:"source"`
	Destination string `yaml:"destination"`
}

// Hook is one script of a lifecycle event.
type Hook struct {
	Location string `yaml:"location"`
	Timeout  *int   `yaml:"timeout"` // seconds; nil: MaxTimeout
	Runas    string `yaml:"runas"`
}

// Parse decodes an appspec.yml (the error is YAML's own).
func Parse(data []byte) (AppSpec, error) {
	var spec AppSpec
	err := yaml.Unmarshal(data, &spec)
	return spec, err
}
