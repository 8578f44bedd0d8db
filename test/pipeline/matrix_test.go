package pipeline_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/webapp-pipeline/dev/awsrec"
	"github.com/acme/webapp-pipeline/dev/cfn"
)

// matrixRow is one parameter set of dev/params and what its run must give.
type matrixRow struct {
	set string
	// refused: the template's rules refuse the set (the run stops before Build, naming the rule)
	refused string
}

// The sets the template supports, each run end to end on one branch tip: Source, the set's
// stack (dev/localstack: the template resolved, a registry accepting the set's logins, AWS calls
// recorded by role), Build (buildspec.yml), Deploy (the real CodeDeploy agent; with the load
// balancer, dev/fleet's HAProxy with the template's health check). Rows share one instance, so
// each deployment replaces the previous row's version while a prober asks the health path.
var matrix = []matrixRow{
	{set: "ssm-push", refused: "SsmLoginNeedsPullLogin"},
	{set: "ssm-pull"},
	{set: "ecr"},
	{set: "approval"},
	{set: "lb"},
}

// maxSwapGap bounds a single instance's redeploy gap: the old container stops before the new one
// can publish the same port. docs/codedeploy.md measures ~1.3 s on a quiet machine; 2.1-3.6 s
// here with three other sessions' tests running. Far above both: a swap that broke.
const maxSwapGap = 10 * time.Second

// gap reads the prober summary's longest gap.
func gap(prober string) time.Duration {
	_, after, _ := strings.Cut(prober, "longest gap ")
	d, _ := time.ParseDuration(strings.Fields(after + " x")[0])
	return d
}

// runSummary is dev/cmd/codepipeline's --summary.
type runSummary struct {
	Set, Stack, Build, Deploy, Prober, Error string
	IAM                                      *struct {
		Calls, Denied, Unused int
		Text                  string
	}
	Calls []awsrec.Call
	Roles map[string][]cfn.Statement
}

// TestParameterMatrix: go test -count=1 -v -run TestParameterMatrix ./test/pipeline/
func TestParameterMatrix(t *testing.T) {
	needEnv(t)
	root := repoRoot(t)
	bin := filepath.Join(t.TempDir(), "pipeline")
	run(t, root, "go", "build", "-o", bin, "./dev/cmd/codepipeline")
	scratch := filepath.Join(t.TempDir(), "repo")
	run(t, root, "git", "clone", "-q", "--no-hardlinks", root, scratch)
	branch := "pipeline-test" // the tip, on a branch even when the checkout is a detached commit
	run(t, scratch, "git", "checkout", "-q", "-B", branch)
	work, port, lbPort := t.TempDir(), freePort(t), freePort(t)
	cleanupInstance(t, work, "webapp")

	type result struct {
		row  matrixRow
		sum  runSummary
		code int
		took time.Duration
	}
	var results []result
	for _, row := range matrix {
		sumPath := filepath.Join(work, row.set+".json")
		p := port
		if row.set == "lb" {
			p = lbPort // HAProxy's: the single instance's container holds port
		}
		cmd := exec.Command(bin, "--repo", scratch, "--branch", branch, "--work", work, "--port", fmt.Sprint(p),
			"--params", row.set, "--summary", sumPath)
		start := time.Now()
		out, err := cmd.CombinedOutput()
		r := result{row: row, took: time.Since(start)}
		if ee, ok := err.(*exec.ExitError); ok {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(sumPath)
		if err != nil {
			t.Fatalf("%s: no summary (%v):\n%s", row.set, err, lastLines(string(out), 40))
		}
		if err := json.Unmarshal(b, &r.sum); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: exit %d in %s\n%s", row.set, r.code, r.took.Round(time.Second), grepStages(string(out)))
		results = append(results, r)

		switch {
		case row.refused != "":
			if r.code == 0 || !strings.Contains(r.sum.Stack, row.refused) {
				t.Errorf("%s: want the template's rule %s to refuse the set; stack %q, exit %d", row.set, row.refused, r.sum.Stack, r.code)
			}
		case r.code != 0 || r.sum.Build != "ok" || r.sum.Deploy != "ok":
			t.Errorf("%s: want build and deploy ok, got exit %d, build %q, deploy %q\n%s", row.set, r.code, r.sum.Build, r.sum.Deploy, lastLines(string(out), 60))
		case r.sum.IAM == nil || r.sum.IAM.Denied != 0 || r.sum.IAM.Calls == 0:
			t.Errorf("%s: the IAM check: %+v", row.set, r.sum.IAM)
		case row.set == "lb" && !strings.Contains(r.sum.Prober, " 0 failed"):
			// behind the load balancer the instances are updated one at a time: no request fails
			t.Errorf("%s: requests failed through HAProxy during the deployment: %s", row.set, r.sum.Prober)
		case strings.Contains(r.sum.Prober, "not answering at the end") || gap(r.sum.Prober) > maxSwapGap:
			// one instance: the new container takes the port only once the old one is stopped
			t.Errorf("%s: the single instance's swap: %s, want it serving again within %s", row.set, r.sum.Prober, maxSwapGap)
		}
	}

	// The check can fail: the ssm-pull run's recorded calls against its instance role without
	// kms:GetPublicKey (cosign reads the signing key's public half in AfterInstall).
	for _, r := range results {
		if r.row.set != "ssm-pull" || len(r.sum.Calls) == 0 {
			continue
		}
		t.Run("without kms:GetPublicKey", func(t *testing.T) {
			roles := map[string][]cfn.Statement{"build": r.sum.Roles["build"]}
			for _, st := range r.sum.Roles["instance"] {
				var acts []string
				for _, a := range st.Actions {
					if a != "kms:GetPublicKey" {
						acts = append(acts, a)
					}
				}
				st.Actions = acts
				roles["instance"] = append(roles["instance"], st)
			}
			rep := awsrec.Check(r.sum.Calls, roles)
			found := false
			for _, d := range rep.Denied {
				found = found || (d.Role == "instance" && d.Action == "kms:GetPublicKey")
			}
			if !found {
				t.Errorf("removing the instance role's kms:GetPublicKey should deny the hooks' call; denied: %v", rep.Denied)
			}
			t.Logf("without the grant: %s", rep.Summary())
		})
	}

	var b strings.Builder
	fmt.Fprintf(&b, "%-9s %-8s %-10s %-92s %s\n", "set", "build", "deploy", "prober during the deployment (every 100 ms)", "IAM calls / denied / unused grants")
	for _, r := range results {
		build, deploy, iam := r.sum.Build, r.sum.Deploy, "-"
		if r.sum.Stack != "ok" {
			rule, _, _ := strings.Cut(r.sum.Stack[max(0, strings.Index(r.sum.Stack, "rule ")):], ":")
			build, deploy = "refused by the template's "+rule, "-"
		}
		if r.sum.IAM != nil {
			iam = fmt.Sprintf("%d / %d / %d", r.sum.IAM.Calls, r.sum.IAM.Denied, r.sum.IAM.Unused)
		}
		fmt.Fprintf(&b, "%-9s %-8s %-10s %-92s %s   (%s)\n", r.row.set, short(build, 8), short(deploy, 10), r.sum.Prober, iam, r.took.Round(time.Second))
	}
	t.Logf("the parameter matrix:\n%s", b.String())
	for _, r := range results {
		if r.sum.IAM != nil {
			t.Logf("%s %s", r.row.set, r.sum.IAM.Text)
		}
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func short(s string, n int) string {
	s = firstLine(s)
	if len(s) > n && !strings.HasPrefix(s, "refused") {
		return s[:n]
	}
	return s
}

// grepStages keeps dev/cmd/codepipeline's stage lines (not the build's and hooks' prefixed output).
func grepStages(out string) string {
	var keep []string
	for _, l := range strings.Split(out, "\n") {
		for _, p := range []string{"Source ", "Stack ", "Build   ", "Approve ", "Deploy  ", "IAM check", "  DENIED", "pipeline:"} {
			if strings.HasPrefix(l, p) {
				keep = append(keep, l)
				break
			}
		}
	}
	return strings.Join(keep, "\n")
}
