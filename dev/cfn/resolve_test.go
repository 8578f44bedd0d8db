package cfn

import (
	"strings"
	"testing"
)

// Every parameter set in dev/params resolves, and what it gives the build and the instances is
// what the set means.
func TestResolveParamSets(t *testing.T) {
	bind := map[string]string{"<SigningKey.Arn>": "arn:aws:kms:us-east-1:123456789012:key/k1",
		"<EcrRepository.RepositoryUri>": "127.0.0.1:5999/webapp"}
	for _, set := range []string{"ssm-pull", "ecr", "approval", "lb"} {
		t.Run(set, func(t *testing.T) {
			p, err := ReadSet("../params", set, nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := Resolve("../../infra/template.yml", p, bind)
			if err != nil {
				t.Fatal(err)
			}
			env := strings.Join(r.Env("PLAINTEXT"), " ")
			t.Logf("build env: %s\nstages: %v, deploy.env: %v, health check: %+v", env, r.Stages, r.DeployEnv, r.HealthCheck)
			if !strings.Contains(env, "BUILD_SIGNING_KEY=awskms:///arn:aws:kms:us-east-1:123456789012:key/k1") {
				t.Errorf("the signing key is not bound: %s", env)
			}
			inst := ""
			for _, st := range r.Roles["instance"] {
				inst += strings.Join(st.Actions, ",") + " on " + strings.Join(st.Resources, ",") + "\n"
			}
			switch set {
			case "ecr":
				if !strings.Contains(env, "BUILD_IMAGE_REPO=127.0.0.1:5999/webapp") || !strings.Contains(env, "BUILD_REGISTRY_LOGIN=ecr") ||
					len(r.Env("PARAMETER_STORE")) != 0 {
					t.Errorf("ecr: build env %s", env)
				}
			default:
				if !strings.Contains(inst, "parameter/webapp/registry/pull-password") || strings.Contains(inst, "parameter/webapp/registry/password") {
					t.Errorf("%s: the instances should read the pull login only:\n%s", set, inst)
				}
			}
			if (set == "approval") != (strings.Join(r.Stages, " ") == "Source Build Approve Deploy") {
				t.Errorf("stages %v", r.Stages)
			}
			if (set == "lb") != (r.HealthCheck != nil) || (r.HealthCheck != nil && r.HealthCheck.Path != "/healthz") {
				t.Errorf("health check %+v", r.HealthCheck)
			}
		})
	}
	if _, err := ReadSet("../params", "nope", nil); err == nil || !strings.Contains(err.Error(), "ssm-pull") {
		t.Errorf("an unknown set: %v, want the names of the sets", err)
	}
}

// --param wins over the set's file, which wins over stack.env; a name the template does not
// have is refused by Resolve in one line.
func TestReadSetExtraWins(t *testing.T) {
	p, err := ReadSet("../params", "ecr", map[string]string{"EcrRepositoryName": "acme/other"})
	if err != nil {
		t.Fatal(err)
	}
	if p["EcrRepositoryName"] != "acme/other" || p["RepositoryName"] != "acme/webapp" {
		t.Errorf("params %v", p)
	}
	p["NoSuchParameter"] = "x"
	if _, err := Resolve("../../infra/template.yml", p, nil); err == nil || !strings.Contains(err.Error(), "no parameter NoSuchParameter") {
		t.Errorf("an unknown parameter: %v", err)
	}
}
