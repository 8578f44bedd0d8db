// Package ssmparam reads SecureString parameters from AWS Systems Manager
// Parameter Store.
package ssmparam

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// GetParameterAPI is the one SSM call we need; *ssm.Client satisfies it and
// tests pass a fake.
type GetParameterAPI interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// Reader gets decrypted parameter values. Where says where they come from
// (region and endpoint) for error messages.
type Reader struct {
	API   GetParameterAPI
	Where string
}

// New builds a Reader from the default AWS config chain (env, shared files,
// container/instance roles). The SDK itself honours AWS_ENDPOINT_URL_SSM and
// AWS_ENDPOINT_URL. region overrides AWS_REGION when not empty.
func New(ctx context.Context, region string) (*Reader, error) {
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("no AWS region: set --region or AWS_REGION")
	}
	return &Reader{API: ssm.NewFromConfig(cfg), Where: Where(cfg.Region)}, nil
}

// Where describes the region and endpoint used, e.g.
// `region us-east-1, endpoint http://127.0.0.1:4566 (AWS_ENDPOINT_URL_SSM)`.
func Where(region string) string {
	for _, env := range []string{"AWS_ENDPOINT_URL_SSM", "AWS_ENDPOINT_URL"} {
		if v := os.Getenv(env); v != "" && os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") != "true" {
			return fmt.Sprintf("region %s, endpoint %s (%s)", region, v, env)
		}
	}
	return fmt.Sprintf("region %s, default AWS endpoint", region)
}

// Get returns the decrypted value of the named parameter. A missing parameter
// is one line naming it and where it was looked up.
func (r *Reader) Get(ctx context.Context, name string) (string, error) {
	out, err := r.API.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	var notFound *types.ParameterNotFound
	switch {
	case errors.As(err, &notFound):
		return "", fmt.Errorf("SSM parameter %q not found (%s): create it (aws ssm put-parameter --type SecureString --name %s ...) or fix the parameter name", name, r.Where, name)
	case err != nil:
		return "", fmt.Errorf("get SSM parameter %q (%s): %w", name, r.Where, err)
	case out.Parameter == nil || out.Parameter.Value == nil:
		return "", fmt.Errorf("SSM parameter %q (%s) has no value", name, r.Where)
	}
	return *out.Parameter.Value, nil
}
