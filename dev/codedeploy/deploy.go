// Package codedeploy deploys a revision onto a directory that stands for an EC2 instance with
// the real CodeDeploy agent's codedeploy-local (Agent), and reads back what happened: which
// lifecycle events ran which scripts, from which revision, and why a deployment failed. It is a
// dev tool (make pipeline, make fleet, dev/cmd/downtime and the hook tests): nothing that ships
// imports it. The lifecycle itself (events, order, timeouts) is internal/appspec.
package codedeploy

import (
	"crypto/sha256"
	"fmt"
	"io"
	"time"
)

// Options of one deployment.
type Options struct {
	Bundle      string    // revision: a directory or a .zip with appspec.yml at its root
	InstanceDir string    // stands for the instance: the agent's deployment-root/ and its logs go here
	Application string    // APPLICATION_NAME
	Group       string    // DEPLOYMENT_GROUP_NAME
	GroupID     string    // DEPLOYMENT_GROUP_ID; default: a stable UUID derived from Application and Group
	Env         []string  // KEY=value added to the hooks' environment (instance settings, credentials)
	Log         io.Writer // the agent's output, line by line; nil discards
}

// Status of a lifecycle event.
const (
	Succeeded = "Succeeded"
	Failed    = "Failed"
	Skipped   = "Skipped"
)

// Result of a deployment; filled as far as the deployment got, also when it failed.
type Result struct {
	DeploymentID string
	GroupID      string
	ArchiveDir   string // this revision's deployment-archive
	PreviousDir  string // the last successful revision's deployment-archive ("" on the first deployment)
	Events       []Event
	Duration     time.Duration
}

// Event is one lifecycle event whose scripts ran.
type Event struct {
	Name    string
	Status  string
	Reason  string // why it failed
	Scripts []ScriptResult
}

// ScriptResult is one hook script run.
type ScriptResult struct {
	Location string
	Dir      string // the deployment-archive it ran from
	ExitCode int    // -1 when it failed: the agent does not report the code
	TimedOut bool
	Output   string // stdout and stderr, interleaved
}

// Event returns the named event of the result, or nil.
func (r *Result) Event(name string) *Event {
	for i := range r.Events {
		if r.Events[i].Name == name {
			return &r.Events[i]
		}
	}
	return nil
}

// HookError is a failed hook script, as the agent reports it.
type HookError struct {
	Event    string
	Location string
	TimedOut bool
	Tail     string // last lines of the script's output, then of the agent's
}

func (e *HookError) Error() string {
	what := "failed"
	if e.TimedOut {
		what = "timed out (the agent sent SIGTERM to its process group)"
	}
	return fmt.Sprintf("%s: %s %s: %s", e.Event, e.Location, what, e.Tail)
}

// keepRevisions is how many deployment directories per group the agent keeps (:max_revisions:).
const keepRevisions = 5

// groupID derives a stable UUID-shaped id, so the same application/group maps to the same
// directory across runs (the agent gets it from the service).
func groupID(app, group string) string {
	s := sha256.Sum256([]byte(app + "\x00" + group))
	return fmt.Sprintf("%x-%x-%x-%x-%x", s[0:4], s[4:6], s[6:8], s[8:10], s[10:16])
}
