package awsrec

import (
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/acme/webapp-pipeline/dev/cfn"
)

// NotModeled is what Allowed does not evaluate. Each leaves the check stricter or says so:
// a statement with a Condition grants nothing here (its kms:ViaService call is made by SSM, not
// by the role, and is never recorded), and Deny, NotAction and NotResource are not used by the
// template's role policies (the check fails on a statement it cannot read).
const NotModeled = "conditions (a statement with one grants nothing here), NotAction/NotResource, " +
	"resource policies (the signing key's policy defers to IAM), permission boundaries, SCPs, session policies"

// Recorded are the services whose calls a local run records (moto's, and ECR's registry
// protocol). Grants of other services (CloudWatch Logs, S3, CodeBuild reports, the connection:
// calls CodeBuild and the agent make on AWS, no local stand-in) are listed apart, never as unused.
var Recorded = map[string]bool{"ssm": true, "kms": true, "ecr": true, "sts": true}

// exempt are calls IAM never denies (AWS: no permission is required for sts:GetCallerIdentity).
var exempt = map[string]bool{"sts:GetCallerIdentity": true}

// Allowed reports whether statements allow action on resource: an Allow statement without a
// condition whose actions (case-insensitive) and resources (case-sensitive) match, with * and ?
// wildcards as IAM has them, and no Deny statement matching.
func Allowed(statements []cfn.Statement, action, resource string) (bool, *cfn.Statement) {
	var allow *cfn.Statement
	for i, st := range statements {
		if !matchAny(st.Actions, action, true) || !matchAny(st.Resources, resource, false) {
			continue
		}
		if st.Effect == "Deny" {
			return false, &statements[i]
		}
		if st.Effect == "Allow" && st.Condition == "" && allow == nil {
			allow = &statements[i]
		}
	}
	return allow != nil, allow
}

func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, s = strings.ToLower(p), strings.ToLower(s)
		}
		// IAM's * crosses "/" and ":" (path.Match's does not): match on a form without them
		if ok, _ := path.Match(flatten(p), flatten(s)); ok {
			return true
		}
	}
	return false
}

// flatten turns the separators path.Match stops at into a byte no ARN holds.
func flatten(s string) string { return strings.ReplaceAll(s, "/", "\x00") }

// Denial is a recorded call the role's policy does not allow.
type Denial struct{ Call Call }

// Grant is one action on one resource a statement allows.
type Grant struct{ Role, Sid, Action, Resource string }

// Report is the check of one run.
type Report struct {
	Calls  []Call
	Denied []Call
	// Unused are granted (action, resource) pairs no recorded call used: for review (a grant
	// for a path this run did not take, e.g. a retry, is listed too).
	Unused []Grant
	// NotRecorded are grants of services no local call can reach (see Recorded).
	NotRecorded []Grant
	// Unreadable are statements the check cannot evaluate (Deny aside, NotAction/NotResource).
	Unreadable []string
}

// Check checks every call against its role's statements (roles: "build", "instance").
func Check(calls []Call, roles map[string][]cfn.Statement) Report {
	rep := Report{Calls: calls}
	used := map[string]bool{}
	for _, c := range calls {
		if exempt[c.Action] {
			continue
		}
		for _, res := range c.Resources {
			ok, st := Allowed(roles[c.Role], c.Action, res)
			if !ok {
				rep.Denied = append(rep.Denied, Call{Role: c.Role, Action: c.Action, Resources: []string{res}, Status: c.Status, Via: c.Via})
				continue
			}
			for _, a := range st.Actions {
				for _, r := range st.Resources {
					if matchAny([]string{a}, c.Action, true) && matchAny([]string{r}, res, false) {
						used[c.Role+" "+a+" "+r] = true
					}
				}
			}
		}
	}
	for _, role := range cfn.SortedKeys(roles) {
		for _, st := range roles[role] {
			if st.Effect != "Allow" && st.Effect != "Deny" {
				rep.Unreadable = append(rep.Unreadable, fmt.Sprintf("%s %s: effect %q", role, st.Sid, st.Effect))
			}
			for _, a := range st.Actions {
				for _, r := range st.Resources {
					service, _, _ := strings.Cut(a, ":")
					g := Grant{Role: role, Sid: st.Sid, Action: a, Resource: r}
					switch {
					case st.Effect != "Allow" || used[role+" "+a+" "+r]:
					case !Recorded[strings.ToLower(service)]:
						rep.NotRecorded = append(rep.NotRecorded, g)
					default:
						rep.Unused = append(rep.Unused, g)
					}
				}
			}
		}
	}
	return rep
}

// Summary is the one-line figure: calls made / denied / grants unused.
func (r Report) Summary() string {
	return fmt.Sprintf("%d calls, %d denied, %d unused grants", len(r.Calls), len(r.Denied), len(r.Unused))
}

// Text is the report for a person: each distinct call with its count, the denied ones, the
// unused grants.
func (r Report) Text() string {
	var b strings.Builder
	counts := map[string]int{}
	for _, c := range r.Calls {
		counts[fmt.Sprintf("%-8s %-8s %-34s %s", c.Role, c.Via, c.Action, strings.Join(c.Resources, ","))]++
	}
	keys := cfn.SortedKeys(counts)
	sort.Strings(keys)
	fmt.Fprintf(&b, "IAM check: %s (not modeled: %s)\n", r.Summary(), NotModeled)
	for _, k := range keys {
		fmt.Fprintf(&b, "  call   %s  x%d\n", k, counts[k])
	}
	for _, c := range r.Denied {
		fmt.Fprintf(&b, "  DENIED %s: the %s role is not granted %s on %s\n", c.Role, c.Role, c.Action, c.Resources[0])
	}
	for _, g := range r.Unused {
		fmt.Fprintf(&b, "  unused %-8s %-28s %s on %s\n", g.Role, g.Sid, g.Action, g.Resource)
	}
	if len(r.NotRecorded) > 0 {
		var gs []string
		for _, g := range r.NotRecorded {
			gs = append(gs, g.Role+" "+g.Action)
		}
		fmt.Fprintf(&b, "  not recorded locally (CodeBuild's and the agent's own calls on AWS): %s\n", strings.Join(gs, ", "))
	}
	for _, u := range r.Unreadable {
		fmt.Fprintf(&b, "  UNREADABLE %s\n", u)
	}
	return b.String()
}
