package template

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/acme/webapp-pipeline/dev/cfn"
)

// The parameter combinations a stack can be created with, each on top of the defaults. Run with
// -v to see each one's conditions and every role's effective actions and resources:
//
//	go test -v -run TestTemplateConditions ./test/template/
var combos = []struct {
	name   string
	params map[string]string
}{
	{"default", nil},
	{"pull login named", map[string]string{
		"PullUsernameParameter": "/acme/pull/username", "PullPasswordParameter": "/acme/pull/password"}},
	{"KMS key", map[string]string{"ParameterKmsKeyArn": kmsKey}},
	{"ECR (pull login and KMS key also given: both ignored)", map[string]string{"EcrRepositoryName": "acme/webapp",
		"PullUsernameParameter": "/webapp/registry/pull-username", "PullPasswordParameter": "/webapp/registry/pull-password",
		"ParameterKmsKeyArn": kmsKey}},
	{"ECR without pull parameters", map[string]string{"EcrRepositoryName": "acme/webapp",
		"PullUsernameParameter": "", "PullPasswordParameter": ""}},
	{"approval", map[string]string{"RequireApproval": "true", "NotificationEmail": "team@example.com"}},
	{"load balancer", map[string]string{"LoadBalancerListenerArn": listener, "LoadBalancerVpcId": "vpc-0123456789abcdef0",
		"HealthCheckPath": "/healthz", "ListenerRulePriority": "120"}},
	{"ECR repository kept from an earlier stack", map[string]string{"EcrRepositoryName": "acme/webapp", "EcrRepositoryExists": "true"}},
	{"instances created, pull requests need approval", map[string]string{"InstanceSubnetIds": "subnet-0123456789abcdef0",
		"PullRequestCommentApproval": "ALL_PULL_REQUESTS"}},
	{"Graviton: arm64 build host, arm64 instances created", map[string]string{"BuildArchitecture": "arm64",
		"InstanceArchitecture": "arm64", "InstanceSubnetIds": "subnet-0123456789abcdef0"}},
	{"arm64 instances of a type given, x86_64 build host", map[string]string{"InstanceArchitecture": "arm64",
		"InstanceType": "m7g.large", "InstanceSubnetIds": "subnet-0123456789abcdef0"}},
	{"codestar-connections ARN, no pull-request builds, artifacts expire", map[string]string{
		"GitHubConnectionArn": "arn:aws:codestar-connections:us-east-1:123456789012:connection/0123abcd-0123-4567-89ab-0123456789ab",
		"PullRequestBuilds":   "false", "ArtifactRetentionDays": "400"}},
}

const (
	kmsKey     = "arn:aws:kms:us-east-1:123456789012:key/0123abcd-0123-4567-89ab-0123456789ab"
	listener   = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener/app/webapp-alb/50dc6c495c0c9188/f2f7dc8efc522ab2"
	pushUser   = "arn:aws:ssm:us-east-1:123456789012:parameter/webapp/registry/username"
	pushPass   = "arn:aws:ssm:us-east-1:123456789012:parameter/webapp/registry/password"
	connection = "arn:aws:codeconnections:us-east-1:123456789012:connection/0123abcd-0123-4567-89ab-0123456789ab"
)

// required parameters (no default) of every combination
var required = map[string]string{"GitHubConnectionArn": connection, "RepositoryName": "acme/webapp"}

func evaluate(t *testing.T, params map[string]string) *Stack {
	t.Helper()
	tpl, err := Load("../../infra/template.yml")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]string{}
	for k, v := range required {
		all[k] = v
	}
	for k, v := range params {
		all[k] = v
	}
	s, err := tpl.Evaluate(all)
	if err != nil {
		t.Fatalf("the template does not evaluate: %v", err)
	}
	return s
}

// Statement is one evaluated IAM statement (dev/cfn's).
type Statement = cfn.Statement

// path walks nested maps by key (dev/cfn.Path).
var path = cfn.Path

// statements are a role's inline policy statements, plus its managed policies as statements
// named "managed".
func statements(s *Stack, role string) []Statement {
	out := cfn.Statements(s, role)
	for _, arn := range cfn.Strings(path(s.Resources[role], "Properties", "ManagedPolicyArns")) {
		out = append(out, Statement{Sid: "managed", Effect: "Allow", Actions: []string{"(managed policy)"}, Resources: []string{arn}})
	}
	return out
}

func roles(s *Stack) []string {
	var out []string
	for name, r := range s.Resources {
		if r["Type"] == "AWS::IAM::Role" {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// grants are the (action, resource) pairs a role is allowed.
func grants(s *Stack, role string) map[string]bool {
	g := map[string]bool{}
	for _, st := range statements(s, role) {
		for _, a := range st.Actions {
			for _, r := range st.Resources {
				g[a+" "+r] = true
			}
		}
	}
	return g
}

func actionsOn(s *Stack, role, prefix string) []string {
	var out []string
	for k := range grants(s, role) {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

func env(s *Stack, project string) map[string]string {
	out := map[string]string{}
	for _, v := range path(s.Resources[project], "Properties", "Environment", "EnvironmentVariables").([]any) {
		m := asMap(v)
		out[fmt.Sprint(m["Name"])] = fmt.Sprint(m["Type"]) + " " + fmt.Sprint(m["Value"])
	}
	return out
}

func stages(s *Stack) []string {
	var out []string
	for _, st := range path(s.Resources["Pipeline"], "Properties", "Stages").([]any) {
		out = append(out, fmt.Sprint(asMap(st)["Name"]))
	}
	return out
}

// report prints what a combination makes: true conditions, every role's statements, the build
// projects' variables, the pipeline's stages and the deployment group's traffic settings.
func report(t *testing.T, name string, params map[string]string, s *Stack) {
	var b strings.Builder
	var set, conds []string
	for _, k := range sortedKeys(params) {
		set = append(set, k+"="+params[k])
	}
	for _, k := range sortedKeys(s.Conditions) {
		if s.Conditions[k] {
			conds = append(conds, k)
		}
	}
	fmt.Fprintf(&b, "=== %s: %s\n    conditions true: %s\n", name, strings.Join(set, " "), strings.Join(conds, " "))
	for _, role := range roles(s) {
		fmt.Fprintf(&b, "  %s\n", role)
		for _, st := range path(s.Resources[role], "Properties", "AssumeRolePolicyDocument", "Statement").([]any) {
			fmt.Fprintf(&b, "    %-28s %v %v  if %v\n", "(trust)", asMap(st)["Action"], asMap(st)["Principal"], asMap(st)["Condition"])
		}
		for _, st := range statements(s, role) {
			cond := ""
			if st.Condition != "" {
				cond = "  if " + st.Condition
			}
			fmt.Fprintf(&b, "    %-28s %s\n    %-28s   on %s%s\n", st.Sid, strings.Join(st.Actions, " "), "", strings.Join(st.Resources, " "), cond)
		}
	}
	for _, p := range []string{"BuildProject", "PullRequestProject"} {
		if _, ok := s.Resources[p]; !ok {
			fmt.Fprintf(&b, "  %s: (none)\n", p)
			continue
		}
		e := env(s, p)
		var vars []string
		for _, k := range sortedKeys(e) {
			vars = append(vars, k+"="+strings.Replace(e[k], "PLAINTEXT ", "", 1))
		}
		fmt.Fprintf(&b, "  %s env: %s\n", p, strings.Join(vars, " "))
	}
	dg := asMap(s.Resources["DeploymentGroup"]["Properties"])
	fmt.Fprintf(&b, "  Pipeline stages: %s\n  DeploymentGroup: %v, target groups %v, alarms %v, rollback on %v\n",
		strings.Join(stages(s), " -> "), path(dg, "DeploymentStyle", "DeploymentOption"),
		path(dg, "LoadBalancerInfo", "TargetGroupInfoList"), path(dg, "AlarmConfiguration", "Alarms"),
		path(dg, "AutoRollbackConfiguration", "Events"))
	t.Log("\n" + b.String())
}

func TestTemplateConditions(t *testing.T) {
	for _, c := range combos {
		t.Run(c.name, func(t *testing.T) {
			s := evaluate(t, c.params)
			report(t, c.name, c.params, s)
			check(t, c.name, s)
		})
	}
}

func want(t *testing.T, what string, ok bool) {
	t.Helper()
	if !ok {
		t.Error(what)
	}
}

func has(g map[string]bool, pairs ...string) bool {
	for _, p := range pairs {
		if !g[p] {
			return false
		}
	}
	return true
}

// check asserts what each combination must and must not grant or build.
func check(t *testing.T, name string, s *Stack) {
	ecr := s.Conditions["UseEcr"]
	kms := s.Params["ParameterKmsKeyArn"] != ""
	build, inst, pipe := grants(s, "CodeBuildRole"), grants(s, "InstanceRole"), grants(s, "CodePipelineRole")

	// Invariants: no wildcard action; "*" only for ecr:GetAuthorizationToken; no role can
	// write to SSM, KMS or IAM. The one exception: CodeDeploy's role, when the stack creates
	// the instances from a launch template, launches and tags them and passes them their role
	// (CodeDeploy's service-role guide), and only then.
	launch := map[string]bool{"ec2:RunInstances *": true, "ec2:CreateTags *": true, "iam:PassRole <InstanceRole.Arn>": true}
	for g := range grants(s, "CodeDeployRole") {
		if launch[g] {
			want(t, "CodeDeployRole may "+g+" without HasInstances", s.Conditions["HasInstances"])
		}
	}
	if s.Conditions["HasInstances"] {
		want(t, "CodeDeployRole lacks the launch template's ec2:RunInstances, ec2:CreateTags, iam:PassRole",
			has(grants(s, "CodeDeployRole"), "ec2:RunInstances *", "ec2:CreateTags *", "iam:PassRole <InstanceRole.Arn>"))
	}
	for _, role := range roles(s) {
		for g := range grants(s, role) {
			if role == "CodeDeployRole" && launch[g] {
				continue
			}
			a, r, _ := strings.Cut(g, " ")
			want(t, role+" grants a wildcard action: "+g, !strings.Contains(a, "*"))
			want(t, role+` grants on "*" more than ecr:GetAuthorizationToken: `+g, r != "*" || a == "ecr:GetAuthorizationToken")
			for _, w := range []string{"ssm:Put", "ssm:Delete", "kms:Encrypt", "kms:Create", "iam:"} {
				want(t, role+" may "+g, !strings.HasPrefix(a, w))
			}
		}
	}

	// Finding 2: the pipeline role has what AWS's minimum artifact-store policy lists, and StopBuild.
	want(t, "pipeline role lacks s3:PutObjectAcl / s3:GetBucketAcl / codebuild:StopBuild",
		has(pipe, "s3:PutObjectAcl <ArtifactBucket.Arn>/*", "s3:GetBucketAcl <ArtifactBucket.Arn>", "codebuild:StopBuild <BuildProject.Arn>"))
	// Finding 8: every service role's trust is for this account only (EC2's has no source).
	for _, role := range []string{"CodePipelineRole", "CodeBuildRole", "CodeDeployRole"} {
		trust := fmt.Sprint(path(s.Resources[role], "Properties", "AssumeRolePolicyDocument"))
		want(t, role+" trust lacks aws:SourceAccount", strings.Contains(trust, "aws:SourceAccount:123456789012"))
	}
	want(t, "CodeDeployRole trust is not for the stack's deployment group", strings.Contains(
		fmt.Sprint(path(s.Resources["CodeDeployRole"], "Properties", "AssumeRolePolicyDocument")),
		"aws:SourceArn:arn:aws:codedeploy:us-east-1:123456789012:deploymentgroup:webapp-app/webapp-instances"))

	ssmBuild, ssmInst := actionsOn(s, "CodeBuildRole", "ssm:"), actionsOn(s, "InstanceRole", "ssm:")
	e := env(s, "BuildProject")
	if ecr {
		want(t, "ECR: a role still reads SSM: "+strings.Join(append(ssmBuild, ssmInst...), ", "), len(ssmBuild)+len(ssmInst) == 0)
		want(t, "ECR: a kms:Decrypt grant is left", len(actionsOn(s, "CodeBuildRole", "kms:Decrypt"))+len(actionsOn(s, "InstanceRole", "kms:Decrypt")) == 0)
		// Issue 18 item 7: a repository kept from an earlier stack is used by name, not created.
		repoArn, repoURI := "<EcrRepository.Arn>", "<EcrRepository.RepositoryUri>"
		_, created := s.Resources["EcrRepository"]
		want(t, "ECR: the repository is created iff EcrRepositoryExists=false", created == (s.Params["EcrRepositoryExists"] == "false"))
		if !created {
			repoArn, repoURI = "arn:aws:ecr:us-east-1:123456789012:repository/acme/webapp", "123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/webapp"
		}
		want(t, "ECR: the build cannot log in and push to the repository", has(build, "ecr:GetAuthorizationToken *",
			"ecr:PutImage "+repoArn, "ecr:CompleteLayerUpload "+repoArn, "ecr:BatchGetImage "+repoArn))
		want(t, "ECR: the instances cannot log in and pull", has(inst, "ecr:GetAuthorizationToken *",
			"ecr:BatchGetImage "+repoArn, "ecr:GetDownloadUrlForLayer "+repoArn))
		want(t, "ECR: EcrRepositoryUri output "+fmt.Sprint(s.Outputs["EcrRepositoryUri"]["Value"]), s.Outputs["EcrRepositoryUri"]["Value"] == repoURI)
		for _, a := range actionsOn(s, "InstanceRole", "ecr:") {
			want(t, "ECR: the instances may push: "+a, !strings.Contains(a, "Upload") && !strings.Contains(a, "PutImage"))
		}
		want(t, "ECR: BUILD_IMAGE_REPO is not the repository", e["BUILD_IMAGE_REPO"] == "PLAINTEXT "+repoURI)
		want(t, "ECR: BUILD_REGISTRY_LOGIN is not ecr", e["BUILD_REGISTRY_LOGIN"] == "PLAINTEXT ecr")
		for k := range e {
			want(t, "ECR: the project still names an SSM login: "+k, !strings.Contains(k, "PARAM") && !strings.HasSuffix(k, "_MASKED"))
		}
		if created {
			repo := asMap(s.Resources["EcrRepository"]["Properties"])
			want(t, "ECR repository: not scan on push, immutable (but cosign's sha256-* tags), KMS",
				path(repo, "ImageScanningConfiguration", "ScanOnPush") == "true" && repo["ImageTagMutability"] == "IMMUTABLE_WITH_EXCLUSION" &&
					fmt.Sprint(repo["ImageTagMutabilityExclusionFilters"]) == "[map[ImageTagMutabilityExclusionFilterType:WILDCARD ImageTagMutabilityExclusionFilterValue:sha256-*]]" &&
					path(repo, "EncryptionConfiguration", "EncryptionType") == "KMS")
			checkLifecycle(t, fmt.Sprint(path(repo, "LifecyclePolicy", "LifecyclePolicyText")))
		}
	} else {
		// Finding 1: the build reads the PUSH login, whatever the instances get.
		want(t, fmt.Sprintf("the build role reads %v, want exactly the push login", ssmBuild),
			len(ssmBuild) == 4 && has(build, "ssm:GetParameters "+pushUser, "ssm:GetParameters "+pushPass))
		// Issue 18 item 6: the instances read the pull-only login, never the push login.
		pu := "arn:aws:ssm:us-east-1:123456789012:parameter" + s.Params["PullUsernameParameter"]
		pp := "arn:aws:ssm:us-east-1:123456789012:parameter" + s.Params["PullPasswordParameter"]
		want(t, "the instances may read the push login", !inst["ssm:GetParameter "+pushUser] && !inst["ssm:GetParameter "+pushPass])
		want(t, fmt.Sprintf("the instance role reads %v, want exactly %s and %s", ssmInst, pu, pp),
			len(ssmInst) == 4 && has(inst, "ssm:GetParameter "+pu, "ssm:GetParameter "+pp))
		want(t, "the project's PARAMETER_STORE variables are not the push login",
			e["REGISTRY_USERNAME_MASKED"] == "PARAMETER_STORE /webapp/registry/username" &&
				e["REGISTRY_PASSWORD_MASKED"] == "PARAMETER_STORE /webapp/registry/password" &&
				e["BUILD_REGISTRY_PASSWORD_PARAM"] == "PLAINTEXT /webapp/registry/password")
		want(t, "BUILD_PULL_*_PARAM are not what the instance role may read",
			"arn:aws:ssm:us-east-1:123456789012:parameter"+strings.TrimPrefix(e["BUILD_PULL_PASSWORD_PARAM"], "PLAINTEXT ") == pp)
		want(t, "no ECR grant without ECR", len(actionsOn(s, "CodeBuildRole", "ecr:"))+len(actionsOn(s, "InstanceRole", "ecr:")) == 0)
		want(t, "SSM login: BUILD_REGISTRY_LOGIN is not ssm", e["BUILD_REGISTRY_LOGIN"] == "PLAINTEXT ssm")
		want(t, "kms:Decrypt (via SSM) on the key exactly when a key is given",
			kms == has(build, "kms:Decrypt "+kmsKey) && kms == has(inst, "kms:Decrypt "+kmsKey))
	}
	// Issue 13: the build signs with the stack's key, the instances only read its public half.
	want(t, "the build cannot sign with the signing key", has(build, "kms:Sign <SigningKey.Arn>", "kms:GetPublicKey <SigningKey.Arn>", "kms:DescribeKey <SigningKey.Arn>"))
	want(t, "the instances cannot read the signing key's public half", has(inst, "kms:GetPublicKey <SigningKey.Arn>", "kms:DescribeKey <SigningKey.Arn>"))
	for _, role := range roles(s) {
		for _, a := range actionsOn(s, role, "kms:Sign") {
			want(t, role+" may sign: "+a, role == "CodeBuildRole")
		}
	}
	want(t, "BUILD_SIGNING_KEY is not the stack's key", e["BUILD_SIGNING_KEY"] == "PLAINTEXT awskms:///<SigningKey.Arn>")
	want(t, "BUILD_SOURCE_REPOSITORY is not the GitHub repository", strings.HasPrefix(e["BUILD_SOURCE_REPOSITORY"], "PLAINTEXT https://github.com/"))
	key := asMap(s.Resources["SigningKey"]["Properties"])
	want(t, "the signing key is not ECC_NIST_P256 SIGN_VERIFY", key["KeySpec"] == "ECC_NIST_P256" && key["KeyUsage"] == "SIGN_VERIFY")
	for _, st := range append(statements(s, "CodeBuildRole"), statements(s, "InstanceRole")...) {
		if st.Sid == "DecryptRegistryCredentials" {
			want(t, "kms:Decrypt without kms:ViaService ssm", strings.Contains(st.Condition, "kms:ViaService:ssm.us-east-1.amazonaws.com"))
		}
	}

	// Pull requests: checks only, a role that can do nothing else.
	if s.Conditions["HasPullRequestBuilds"] {
		pr := env(s, "PullRequestProject")
		want(t, "the pull-request project does not run checks only", pr["BUILD_SUBCOMMAND"] == "PLAINTEXT checks" && pr["BUILD_IMAGE_REPO"] == "")
		want(t, "the pull-request project has artifacts", path(s.Resources["PullRequestProject"], "Properties", "Artifacts", "Type") == "NO_ARTIFACTS")
		for g := range grants(s, "PullRequestBuildRole") {
			ok := false
			for _, p := range []string{"logs:", "codebuild:CreateReport", "codebuild:UpdateReport", "codebuild:BatchPutTestCases",
				"codeconnections:GetConnection", "codestar-connections:GetConnection",
				"codeconnections:UseConnection", "codestar-connections:UseConnection"} {
				ok = ok || strings.HasPrefix(g, p)
			}
			want(t, "the pull-request role may "+g, ok)
		}
		// Issue 18 item 7: UseConnection (asked for when the project is created or updated).
		want(t, "the pull-request role lacks UseConnection", len(actionsOn(s, "PullRequestBuildRole", "codeconnections:UseConnection"))+
			len(actionsOn(s, "PullRequestBuildRole", "codestar-connections:UseConnection")) == 1)
		// Issue 18 item 5: pull requests (from forks, by default) wait for a maintainer's comment.
		pol := asMap(path(s.Resources["PullRequestProject"], "Properties", "Triggers", "PullRequestBuildPolicy"))
		want(t, fmt.Sprintf("PullRequestBuildPolicy %v", pol), pol["RequiresCommentApproval"] == s.Params["PullRequestCommentApproval"] &&
			(pol["RequiresCommentApproval"] == "DISABLED") == (pol["ApproverRoles"] == nil))
		// Issue 18 item 7: no LOCAL_CUSTOM_CACHE for untrusted code.
		prCache := fmt.Sprint(path(s.Resources["PullRequestProject"], "Properties", "Cache"))
		want(t, "pull-request cache "+prCache, strings.Contains(prCache, "Type:LOCAL") && !strings.Contains(prCache, "LOCAL_CUSTOM_CACHE"))
	} else {
		_, ok := s.Resources["PullRequestProject"]
		want(t, "PullRequestBuilds=false still makes the pull-request project", !ok)
	}
	want(t, "BuildProject does not run all", e["BUILD_SUBCOMMAND"] == "PLAINTEXT all")

	// Approval: a stage before Deploy, its request to the topic.
	st := strings.Join(stages(s), " ")
	if s.Conditions["HasApproval"] {
		want(t, "stages "+st+", want Source Build Approve Deploy", st == "Source Build Approve Deploy")
		want(t, "the pipeline role cannot publish the approval request", has(pipe, "sns:Publish <NotificationTopic>"))
	} else {
		want(t, "stages "+st+", want Source Build Deploy", st == "Source Build Deploy")
		want(t, "sns:Publish without an approval stage", len(actionsOn(s, "CodePipelineRole", "sns:")) == 0)
	}

	// Load balancer: traffic control, the alarms in the group, rollback on alarm.
	dg := asMap(s.Resources["DeploymentGroup"]["Properties"])
	events := fmt.Sprint(path(dg, "AutoRollbackConfiguration", "Events"))
	if s.Conditions["HasTrafficControl"] {
		want(t, "no traffic control with a listener", path(dg, "DeploymentStyle", "DeploymentOption") == "WITH_TRAFFIC_CONTROL")
		want(t, "the target group is not the group's", fmt.Sprint(path(dg, "LoadBalancerInfo", "TargetGroupInfoList")) == "[map[Name:<TrafficTargetGroup.TargetGroupName>]]")
		want(t, "the alarms are not in the group's AlarmConfiguration",
			fmt.Sprint(path(dg, "AlarmConfiguration")) == "map[Alarms:[map[Name:<Target5xxAlarm>] map[Name:<UnhealthyHostsAlarm>]] Enabled:true IgnorePollAlarmFailure:false]")
		want(t, "no rollback on alarm: "+events, strings.Contains(events, "DEPLOYMENT_STOP_ON_ALARM"))
		dims := fmt.Sprint(path(s.Resources["Target5xxAlarm"], "Properties", "Dimensions"))
		want(t, "the 5xx alarm's dimensions "+dims, dims == "[map[Name:LoadBalancer Value:app/webapp-alb/50dc6c495c0c9188] map[Name:TargetGroup Value:<TrafficTargetGroup.TargetGroupFullName>]]")
		// Issue 18: the build gets the target group's health path, to check it against the app's.
		hc := path(s.Resources["TrafficTargetGroup"], "Properties", "HealthCheckPath")
		want(t, fmt.Sprintf("BUILD_LB_HEALTH_CHECK_PATH %q, the target group checks %v", e["BUILD_LB_HEALTH_CHECK_PATH"], hc),
			e["BUILD_LB_HEALTH_CHECK_PATH"] == fmt.Sprint("PLAINTEXT ", hc) && hc == s.Params["HealthCheckPath"])
		attrs := fmt.Sprint(path(s.Resources["TrafficTargetGroup"], "Properties", "TargetGroupAttributes"))
		want(t, "deregistration delay "+attrs, attrs == "[map[Key:deregistration_delay.timeout_seconds Value:15]]")
	} else {
		_, lbEnv := e["BUILD_LB_HEALTH_CHECK_PATH"]
		want(t, "BUILD_LB_HEALTH_CHECK_PATH without a load balancer", !lbEnv)
		want(t, "traffic control without a listener", path(dg, "DeploymentStyle", "DeploymentOption") == "WITHOUT_TRAFFIC_CONTROL" &&
			path(dg, "LoadBalancerInfo") == nil && path(dg, "AlarmConfiguration") == nil && !strings.Contains(events, "ALARM"))
	}

	// Finding 5: artifacts are kept unless a retention is asked for; the build's S3 cache
	// (its own prefix) expires.
	rules, _ := path(s.Resources["ArtifactBucket"], "Properties", "LifecycleConfiguration", "Rules").([]any)
	byID := map[string]string{}
	for _, r := range rules {
		byID[fmt.Sprint(asMap(r)["Id"])] = fmt.Sprint(r)
	}
	want(t, "artifact expiry "+byID["artifacts"], strings.Contains(byID["artifacts"], "ExpirationInDays") == (s.Params["ArtifactRetentionDays"] != "0"))
	want(t, "build cache expiry "+byID["build-cache"], strings.Contains(byID["build-cache"], "Prefix:codebuild-cache/") &&
		strings.Contains(byID["build-cache"], "ExpirationInDays:30"))
	// The pipeline's build caches in S3 under the artifact bucket (its role may write there);
	// the pull-request checks never share it (LOCAL: untrusted code writes no tool the pipeline runs).
	cache := fmt.Sprint(path(s.Resources["BuildProject"], "Properties", "Cache"))
	want(t, "build project cache "+cache, cache == "map[Location:<ArtifactBucket>/codebuild-cache Type:S3]")
	// Issue 18 item 7: the instances read the deploy bundle, not the whole artifact bucket
	// (source clones, the build's cache); the Build action's output is that artifact.
	want(t, "the instance role reads more of the artifact bucket than the bundle: "+strings.Join(actionsOn(s, "InstanceRole", "s3:"), ", "),
		has(inst, "s3:GetObject <ArtifactBucket.Arn>/*/Bundle/*") && len(actionsOn(s, "InstanceRole", "s3:")) == 2)
	want(t, "the build's output artifact is not Bundle", strings.Contains(fmt.Sprint(s.Resources["Pipeline"]), "OutputArtifacts:[map[Name:Bundle]]"))
	// Instances created by the stack: the launch template and the group, bound to the deployment group.
	if s.Conditions["HasInstances"] {
		want(t, "the deployment group does not target the Auto Scaling group", fmt.Sprint(path(dg, "AutoScalingGroups")) == "[<InstanceGroup>]")
		lt := fmt.Sprint(s.Resources["InstanceLaunchTemplate"])
		want(t, "launch template without the instance profile or IMDSv2", strings.Contains(lt, "Arn:<InstanceProfile.Arn>") && strings.Contains(lt, "HttpTokens:required"))
		want(t, "the group's instances are not tagged for the deployment group",
			fmt.Sprint(path(s.Resources["InstanceGroup"], "Properties", "Tags")) == "[map[Key:Application PropagateAtLaunch:true Value:webapp]]")
		// Graviton (issue 21): the AMI parameter and the default type follow InstanceArchitecture.
		data := path(s.Resources["InstanceLaunchTemplate"], "Properties", "LaunchTemplateData")
		ami, typ := fmt.Sprint(path(data, "ImageId")), fmt.Sprint(path(data, "InstanceType"))
		arm, wantType := s.Params["InstanceArchitecture"] == "arm64", s.Params["InstanceType"]
		if wantType == "" {
			wantType = map[bool]string{false: "t3.small", true: "t4g.small"}[arm]
		}
		want(t, fmt.Sprintf("InstanceArchitecture %s: launch template AMI %s, type %s (want %s)", s.Params["InstanceArchitecture"], ami, typ, wantType),
			strings.HasSuffix(ami, map[bool]string{false: "-x86_64", true: "-arm64"}[arm]) && typ == wantType)
	} else {
		want(t, "the deployment group targets an Auto Scaling group without InstanceSubnetIds", path(dg, "AutoScalingGroups") == nil)
	}
	// The build host follows BuildArchitecture: an ARM_CONTAINER with an aarch64 image, or x86.
	for _, project := range []string{"BuildProject", "PullRequestProject"} {
		if r, ok := s.Resources[project]; ok {
			e := path(r, "Properties", "Environment")
			got := fmt.Sprint(path(e, "Type"), " ", path(e, "Image"), " ", path(e, "ComputeType"))
			wantEnv := "LINUX_CONTAINER aws/codebuild/standard:7.0 BUILD_GENERAL1_MEDIUM"
			if s.Params["BuildArchitecture"] == "arm64" {
				wantEnv = "ARM_CONTAINER aws/codebuild/amazonlinux-aarch64-standard:3.0 BUILD_GENERAL1_SMALL"
			}
			want(t, project+" environment "+got+", want "+wantEnv, got == wantEnv)
		}
	}
	// Outputs: the optional ones exactly with their option.
	for out, cond := range map[string]string{"EcrRepositoryUri": "UseEcr", "TargetGroupArn": "HasTrafficControl", "PullRequestProjectName": "HasPullRequestBuilds"} {
		_, ok := s.Outputs[out]
		want(t, fmt.Sprintf("output %s present=%v, condition %s=%v", out, ok, cond, s.Conditions[cond]), ok == s.Conditions[cond])
	}
	// Notifications: the topic and its rules are always there; the mail only when given.
	_, mail := s.Resources["NotificationEmailSubscription"]
	want(t, "mail subscription iff NotificationEmail", mail == (s.Params["NotificationEmail"] != ""))
	for _, r := range []string{"NotificationTopic", "PipelineNotifications", "DeploymentNotifications"} {
		_, ok := s.Resources[r]
		want(t, "no "+r, ok)
	}
}

// TestRulesRefuseHalfSettings: the template's Rules refuse what the conditions cannot mean.
func TestRulesRefuseHalfSettings(t *testing.T) {
	tpl, err := Load("../../infra/template.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		params map[string]string
		err    string
	}{
		"pull user only": {map[string]string{"PullPasswordParameter": ""}, "rule SsmLoginNeedsPullLogin"},
		"no pull login":  {map[string]string{"PullUsernameParameter": "", "PullPasswordParameter": ""}, "rule SsmLoginNeedsPullLogin"},
		"pull = push": {map[string]string{"PullUsernameParameter": "/webapp/registry/username",
			"PullPasswordParameter": "/webapp/registry/password"}, "rule SsmLoginNeedsPullLogin"},
		"listener only": {map[string]string{"LoadBalancerListenerArn": listener, "HealthCheckPath": "/healthz", "ListenerRulePriority": "10"}, "rule TrafficControlNeedsVpc"},
		"listener without health path": {map[string]string{"LoadBalancerListenerArn": listener, "LoadBalancerVpcId": "vpc-0123456789abcdef0",
			"ListenerRulePriority": "10"}, "rule TrafficControlNeedsHealthCheckPath"},
		"listener without priority": {map[string]string{"LoadBalancerListenerArn": listener, "LoadBalancerVpcId": "vpc-0123456789abcdef0",
			"HealthCheckPath": "/healthz"}, "rule TrafficControlNeedsPriority"},
		"priority out of range": {map[string]string{"ListenerRulePriority": "50001"}, "parameter ListenerRulePriority"},
		"bad base image":        {map[string]string{"BaseImage": "Python:Latest"}, "parameter BaseImage"},
		"bad email":             {map[string]string{"NotificationEmail": "nobody"}, "parameter NotificationEmail"},
	} {
		all := map[string]string{}
		for k, v := range required {
			all[k] = v
		}
		for k, v := range c.params {
			all[k] = v
		}
		_, err := tpl.Evaluate(all)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err = %v, want %s", name, err, c.err)
		}
	}
}

// checkLifecycle: cosign's attachments (sha256-<hex>.sig/.att/.sbom) have a rule of their own,
// evaluated first, so the last ("any") rule never expires a signature apart from its image; ECR
// still counts them in that rule's count, so both count EcrKeepImages images, four per build
// (issue 18 item 4: "100" kept about 25 builds while promising 100).
func checkLifecycle(t *testing.T, text string) {
	t.Helper()
	var lc struct {
		Rules []struct {
			RulePriority int `json:"rulePriority"`
			Selection    struct {
				TagStatus     string   `json:"tagStatus"`
				TagPrefixList []string `json:"tagPrefixList"`
				CountType     string   `json:"countType"`
				CountNumber   int      `json:"countNumber"`
			} `json:"selection"`
			Action struct{ Type string } `json:"action"`
		} `json:"rules"`
	}
	if err := json.Unmarshal([]byte(text), &lc); err != nil || len(lc.Rules) != 2 {
		t.Fatalf("ECR lifecycle policy is not JSON with two rules: %v\n%s", err, text)
	}
	sig, img := lc.Rules[0].Selection, lc.Rules[1].Selection
	want(t, fmt.Sprintf("attachments rule %+v", lc.Rules[0]), lc.Rules[0].RulePriority == 1 && sig.TagStatus == "tagged" &&
		fmt.Sprint(sig.TagPrefixList) == "[sha256-]" && sig.CountType == "imageCountMoreThan" && sig.CountNumber == 400)
	want(t, fmt.Sprintf("images rule %+v", lc.Rules[1]), lc.Rules[1].RulePriority == 2 && img.TagStatus == "any" &&
		img.CountType == "imageCountMoreThan" && img.CountNumber == 400)
}

// TestNamesFitLongStackNames: CodeStar notification rule names take at most 64 characters; they
// were "<stack>-pipeline" and broke past 52-character stack names (issue 18 item 7).
func TestNamesFitLongStackNames(t *testing.T) {
	old := pseudo["AWS::StackName"]
	pseudo["AWS::StackName"] = strings.Repeat("s", 128) // CloudFormation's longest
	defer func() { pseudo["AWS::StackName"] = old }()
	s := evaluate(t, nil)
	names := map[string]bool{}
	for _, r := range []string{"PipelineNotifications", "DeploymentNotifications"} {
		name := fmt.Sprint(path(s.Resources[r], "Properties", "Name"))
		want(t, fmt.Sprintf("%s name %q: %d characters, at most 64", r, name, len(name)), len(name) <= 64)
		want(t, r+" name is not unique", !names[name])
		names[name] = true
	}
}
