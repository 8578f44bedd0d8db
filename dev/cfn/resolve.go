package cfn

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Resolved is what one parameter set of the template gives the build and the instances, read
// from the evaluated stack (never written a second time by hand): the build project's
// environment, the build's and the instances' IAM statements, the pipeline's stages, the
// instance settings the stack implies and, with a load balancer, the target group's health check.
type Resolved struct {
	Params     map[string]string
	Conditions map[string]bool
	// BuildEnv is BuildProject's Environment.EnvironmentVariables, in order.
	BuildEnv []EnvVar
	// Roles: "build" is CodeBuildRole's inline statements, "instance" InstanceRole's.
	Roles map[string][]Statement
	// Stages are the pipeline's stage names (Source Build [Approve] Deploy).
	Stages []string
	// DeployEnv is what /etc/webapp/deploy.env gets from the stack: HOST_PORT is the port the
	// load balancer sends traffic to (TrafficPort).
	DeployEnv map[string]string
	// HealthCheck is the target group's, nil without a load balancer.
	HealthCheck *HealthCheck
	// DeploymentConfig is the deployment group's configuration (CodeDeployDefault.OneAtATime ...).
	DeploymentConfig string
}

// EnvVar is one CodeBuild project variable.
type EnvVar struct{ Name, Type, Value string }

// Statement is one evaluated IAM policy statement.
type Statement struct {
	Sid, Effect        string
	Actions, Resources []string
	// Condition is the statement's Condition block as text ("" when none).
	Condition string
}

// HealthCheck is a target group's health check.
type HealthCheck struct {
	Path                                 string
	Port                                 string
	IntervalSeconds, TimeoutSeconds      string
	HealthyThreshold, UnhealthyThreshold string
	Matcher                              string
}

// roleResources maps Resolved.Roles' names to the template's role resources.
var roleResources = map[string]string{"build": "CodeBuildRole", "instance": "InstanceRole"}

// Resolve evaluates the template at path for params (on top of its defaults) and reads what
// Resolved holds. bind replaces the placeholders of what only a created stack knows (e.g.
// "<SigningKey.Arn>", "<EcrRepository.RepositoryUri>") in every value with the local stand-in's.
func Resolve(path string, params, bind map[string]string) (*Resolved, error) {
	t, err := Load(path)
	if err != nil {
		return nil, err
	}
	s, err := t.Evaluate(params)
	if err != nil {
		return nil, fmt.Errorf("%s refuses the parameters: %w", path, err)
	}
	sub := func(v any) string {
		str := fmt.Sprint(v)
		for _, k := range SortedKeys(bind) {
			str = strings.ReplaceAll(str, k, bind[k])
		}
		return str
	}
	r := &Resolved{Params: s.Params, Conditions: s.Conditions, Roles: map[string][]Statement{}, DeployEnv: map[string]string{}}
	vars, _ := Path(s.Resources["BuildProject"], "Properties", "Environment", "EnvironmentVariables").([]any)
	for _, v := range vars {
		m := asMap(v)
		r.BuildEnv = append(r.BuildEnv, EnvVar{Name: sub(m["Name"]), Type: sub(m["Type"]), Value: sub(m["Value"])})
	}
	for name, res := range roleResources {
		for _, st := range Statements(s, res) {
			for i := range st.Resources {
				st.Resources[i] = sub(st.Resources[i])
			}
			r.Roles[name] = append(r.Roles[name], st)
		}
	}
	stages, _ := Path(s.Resources["Pipeline"], "Properties", "Stages").([]any)
	for _, st := range stages {
		r.Stages = append(r.Stages, fmt.Sprint(asMap(st)["Name"]))
	}
	r.DeployEnv["HOST_PORT"] = s.Params["TrafficPort"]
	r.DeploymentConfig = sub(Path(s.Resources["DeploymentGroup"], "Properties", "DeploymentConfigName"))
	if tg, ok := s.Resources["TrafficTargetGroup"]; ok {
		p := asMap(tg["Properties"])
		r.HealthCheck = &HealthCheck{Path: sub(p["HealthCheckPath"]), Port: sub(p["Port"]),
			IntervalSeconds: sub(p["HealthCheckIntervalSeconds"]), TimeoutSeconds: sub(p["HealthCheckTimeoutSeconds"]),
			HealthyThreshold: sub(p["HealthyThresholdCount"]), UnhealthyThreshold: sub(p["UnhealthyThresholdCount"]),
			Matcher: sub(Path(p, "Matcher", "HttpCode"))}
	}
	return r, nil
}

// Env returns the build project's variables of one type (PLAINTEXT, PARAMETER_STORE) as NAME=VALUE.
func (r *Resolved) Env(typ string) []string {
	var out []string
	for _, v := range r.BuildEnv {
		if v.Type == typ {
			out = append(out, v.Name+"="+v.Value)
		}
	}
	return out
}

// Path walks nested maps by key.
func Path(v any, keys ...string) any {
	for _, k := range keys {
		v = asMap(v)[k]
	}
	return v
}

// Strings is a policy field (one string or a list) as a list.
func Strings(v any) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		var out []string
		for _, i := range x {
			out = append(out, fmt.Sprint(i))
		}
		return out
	default:
		return []string{fmt.Sprint(x)}
	}
}

// Statements are a role resource's inline policy statements.
func Statements(s *Stack, role string) []Statement {
	var out []Statement
	policies, _ := Path(s.Resources[role], "Properties", "Policies").([]any)
	for _, p := range policies {
		list, _ := Path(p, "PolicyDocument", "Statement").([]any)
		for _, st := range list {
			m := asMap(st)
			c := ""
			if m["Condition"] != nil {
				c = fmt.Sprint(m["Condition"])
			}
			out = append(out, Statement{Sid: fmt.Sprint(m["Sid"]), Effect: fmt.Sprint(m["Effect"]),
				Actions: Strings(m["Action"]), Resources: Strings(m["Resource"]), Condition: c})
		}
	}
	return out
}

// ReadParams reads a parameter set: one NAME=VALUE a line; blank lines and # comments are
// skipped. A line without "=" is an error naming the file and the line.
func ReadParams(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(k) == "" {
			return nil, fmt.Errorf("%s:%d: %q is not NAME=VALUE (a template parameter and its value)", path, n, line)
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out, sc.Err()
}

// SortedKeys returns m's keys in order.
func SortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// ReadSet reads a parameter set: dev/params/stack.env (the stand-in stack's required values)
// under the set, which is a file path or a name in dir (dir/NAME.env); extra (--param) wins.
func ReadSet(dir, set string, extra map[string]string) (map[string]string, error) {
	out, err := ReadParams(filepath.Join(dir, "stack.env"))
	if err != nil {
		return nil, err
	}
	file := set
	if !strings.ContainsAny(set, "/.") {
		file = filepath.Join(dir, set+".env")
	}
	own, err := ReadParams(file)
	if err != nil {
		if os.IsNotExist(err) {
			names, _ := filepath.Glob(filepath.Join(dir, "*.env"))
			var sets []string
			for _, n := range names {
				if b := strings.TrimSuffix(filepath.Base(n), ".env"); b != "stack" {
					sets = append(sets, b)
				}
			}
			return nil, fmt.Errorf("no parameter set %q: name one of %s, or give a file", set, strings.Join(sets, ", "))
		}
		return nil, err
	}
	for k, v := range own {
		out[k] = v
	}
	for k, v := range extra {
		out[k] = v
	}
	return out, nil
}
