// Package localstack stands up what a stack created from infra/template.yml with one parameter
// set gives a pipeline run, on this machine: the template resolved for the set (dev/cfn: the
// build project's environment, the roles, the stages, the target group's health check), a
// registry accepting exactly the set's logins (ECR: only moto's token; Parameter Store: the push
// login, and the pull-only login that may not push), and a recorder in front of moto with one
// endpoint per role (dev/awsrec), whose calls are checked against what the template grants that
// role. dev/cmd/codepipeline wires it between its stages; nothing here runs a stage.
package localstack

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/acme/webapp-pipeline/dev/awsrec"
	"github.com/acme/webapp-pipeline/dev/cfn"
	"github.com/acme/webapp-pipeline/dev/devenv"
	"github.com/acme/webapp-pipeline/internal/ecrauth"
	"github.com/acme/webapp-pipeline/internal/ssmparam"
)

// Account is the account moto stands for (its default), which the template's pseudo
// parameters also name.
const Account = "123456789012"

// Options say which set to stand up and where.
type Options struct {
	Template  string            // infra/template.yml
	ParamsDir string            // dev/params
	Set       string            // a name in ParamsDir or a file
	Extra     map[string]string // --param NAME=VALUE
	Work      string            // the registry's storage lives under it
	Env       devenv.Env
}

// Stack is one parameter set, stood up.
type Stack struct {
	Set      string
	Params   map[string]string
	Resolved *cfn.Resolved
	Registry *devenv.Registry
	Recorder *awsrec.Recorder
	// Endpoints: the AWS endpoint (moto, through the recorder) of each role.
	BuildEndpoint, InstanceEndpoint string
	// PullOnly is the pull-only registry user, "" when the set has none.
	PullOnly string

	users map[string]string // the registry's logins
	moto  string
}

// Start resolves the set and starts its registry and recorder. Stop undoes it.
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	params, err := cfn.ReadSet(o.ParamsDir, o.Set, o.Extra)
	if err != nil {
		return nil, err
	}
	// the conditions first: which registry logins the set has (what only the created stack
	// knows is bound after the registry is up)
	first, err := cfn.Resolve(o.Template, params, nil)
	if err != nil {
		return nil, err
	}
	stack := &Stack{Set: o.Set, Params: params, moto: o.Env.SSMEndpoint}
	s = stack
	defer func() {
		if err != nil {
			stack.Stop() // what started before the error (s is nil then)
		}
	}()
	if s.Recorder, err = awsrec.New(s.moto, Account, o.Env.Region); err != nil {
		return nil, err
	}
	s.Recorder.KeyARN = s.keyARN
	if s.BuildEndpoint, err = s.Recorder.Endpoint("build"); err != nil {
		return nil, err
	}
	if s.InstanceEndpoint, err = s.Recorder.Endpoint("instance"); err != nil {
		return nil, err
	}
	users, readOnly := map[string]string{}, map[string]bool{}
	ecr := first.Conditions["UseEcr"]
	if ecr {
		// ECR's registry takes only its tokens: the one moto hands out (for any role)
		user, pw, err := ecrauth.Credentials(ctx, o.Env.Region, "127.0.0.1")
		if err != nil {
			return nil, fmt.Errorf("an ECR token from moto: %w", err)
		}
		users[user] = pw
	} else {
		pushUser, err := s.param(ctx, first.Params["RegistryUsernameParameter"], "")
		if err != nil {
			return nil, err
		}
		if users[pushUser], err = s.param(ctx, first.Params["RegistryPasswordParameter"], ""); err != nil {
			return nil, err
		}
		// a pull-only login when the set names one (the template's rule says whether a set
		// may leave it out)
		if first.Params["PullUsernameParameter"] != "" && first.Params["PullPasswordParameter"] != "" {
			// the stand-in stack's pull-only login: created in moto when the set's names are new
			if s.PullOnly, err = s.param(ctx, first.Params["PullUsernameParameter"], "ci-puller"); err != nil {
				return nil, err
			}
			if users[s.PullOnly], err = s.param(ctx, first.Params["PullPasswordParameter"], randomPassword()); err != nil {
				return nil, err
			}
			readOnly[s.PullOnly] = true
		}
	}
	s.users = users
	ro := devenv.RegistryOptions{Dir: filepath.Join(o.Work, "registry-"+setName(o.Set)), Users: users, ReadOnly: readOnly}
	if ecr {
		ro.Wrap = s.Recorder.RecordRegistry
	}
	if s.Registry, err = devenv.StartRegistry(ctx, ro); err != nil {
		return nil, err
	}
	// the image repository: the stand-in registry, under the name the set gives
	if !ecr {
		params["ImageRepository"] = s.Registry.Host + "/webapp"
	}
	key, err := s.keyARN(ctx, strings.TrimPrefix(os.Getenv("BUILD_SIGNING_KEY"), "awskms:///"))
	if err != nil {
		return nil, fmt.Errorf("the dev env's signing key (BUILD_SIGNING_KEY, dev/install-attest.sh): %w", err)
	}
	bind := map[string]string{
		"<SigningKey.Arn>":              key,
		"<EcrRepository.RepositoryUri>": s.Registry.Host + "/" + first.Params["EcrRepositoryName"],
		"<EcrRepository.Arn>":           s.Recorder.RepositoryARN(first.Params["EcrRepositoryName"]),
		"<EcrRepository>":               first.Params["EcrRepositoryName"],
	} // the rest (the artifact bucket, log groups, ...) no local call reaches: left as placeholders
	if s.Resolved, err = cfn.Resolve(o.Template, params, bind); err != nil {
		return nil, err
	}
	return s, nil
}

func setName(set string) string {
	return strings.TrimSuffix(filepath.Base(set), ".env")
}

func randomPassword() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Stack) awsConfig(ctx context.Context) (aws.Config, error) {
	return config.LoadDefaultConfig(ctx)
}

// param reads an SSM parameter from moto directly (the stand-in's set-up, no role's call); a
// missing one is created with def when def is given.
func (s *Stack) param(ctx context.Context, name, def string) (string, error) {
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return "", err
	}
	c := ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(s.moto) })
	out, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	var nf *ssmtypes.ParameterNotFound
	switch {
	case err == nil && out.Parameter != nil && out.Parameter.Value != nil:
		return *out.Parameter.Value, nil
	case errors.As(err, &nf) && def != "":
		_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(def), Type: ssmtypes.ParameterTypeSecureString})
		return def, err
	case err != nil:
		return "", fmt.Errorf("SSM parameter %s in moto (%s): %w", name, s.moto, err)
	}
	return "", fmt.Errorf("SSM parameter %s in moto has no value", name)
}

// keyARN resolves a KMS key id or alias to its ARN, asking moto directly.
func (s *Stack) keyARN(ctx context.Context, id string) (string, error) {
	cfg, err := s.awsConfig(ctx)
	if err != nil {
		return "", err
	}
	c := kms.NewFromConfig(cfg, func(o *kms.Options) { o.BaseEndpoint = aws.String(s.moto) })
	out, err := c.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.KeyMetadata.Arn), nil
}

// BuildEnv is the build's environment: base (this machine's: the engine, the tools) without
// its own BUILD_* settings and AWS endpoints, plus the project's PLAINTEXT variables as the
// template resolves them, the PARAMETER_STORE ones read with the build role (as CodeBuild
// reads them), and the build role's endpoint for every AWS service.
func (s *Stack) BuildEnv(ctx context.Context, base []string) ([]string, error) {
	var env []string
	for _, kv := range base {
		if !strings.HasPrefix(kv, "BUILD_") && !strings.HasPrefix(kv, "AWS_ENDPOINT_URL") {
			env = append(env, kv)
		}
	}
	env = append(env, s.Resolved.Env("PLAINTEXT")...)
	reader := s.ParamReader()
	for _, kv := range s.Resolved.Env("PARAMETER_STORE") {
		name, param, _ := strings.Cut(kv, "=")
		v, err := reader.Get(ctx, param)
		if err != nil {
			return nil, fmt.Errorf("the build project's %s: %w", name, err)
		}
		env = append(env, name+"="+v)
	}
	return append(env, Endpoints(s.BuildEndpoint)...), nil
}

// Endpoints points the AWS SDKs and CLI at url for every service the pipeline calls.
func Endpoints(url string) []string {
	return []string{"AWS_ENDPOINT_URL=" + url, "AWS_ENDPOINT_URL_SSM=" + url, "AWS_ENDPOINT_URL_ECR=" + url,
		"AWS_ENDPOINT_URL_KMS=" + url, "AWS_ENDPOINT_URL_STS=" + url}
}

// ParamReader reads SSM parameters with the build role (through its endpoint).
func (s *Stack) ParamReader() *ssmparam.Reader {
	cfg, _ := config.LoadDefaultConfig(context.Background())
	return &ssmparam.Reader{API: ssm.NewFromConfig(cfg, func(o *ssm.Options) { o.BaseEndpoint = aws.String(s.BuildEndpoint) }),
		Where: "region " + cfg.Region + ", the build role's endpoint " + s.BuildEndpoint}
}

// HookEnv is what the instance's hooks get on top of devenv's HookEnv: the instance role's
// endpoint.
func (s *Stack) HookEnv() []string { return Endpoints(s.InstanceEndpoint) }

// Check checks every call recorded so far against the roles the template grants.
func (s *Stack) Check() awsrec.Report { return awsrec.Check(s.Recorder.Calls(), s.Resolved.Roles) }

// Stop ends the registry and the recorder.
func (s *Stack) Stop() {
	if s.Registry != nil {
		s.Registry.Stop()
	}
	if s.Recorder != nil {
		s.Recorder.Close()
	}
}
