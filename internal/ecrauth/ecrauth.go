// Package ecrauth logs in to Amazon ECR private registries with the AWS credential chain: no
// stored password. ECR's registry login is HTTP Basic with the user and password of a 12-hour
// authorization token from the ECR API (GetAuthorizationToken); this package gets one with the
// SDK's default chain (environment, shared config, SSO, CodeBuild's or an instance's role) and
// hands back the pair for the push (internal/ocipush). The SDK honours AWS_ENDPOINT_URL_ECR and
// AWS_ENDPOINT_URL (the dev environment points them at moto_server).
//
// Why not amazon-ecr-credential-helper's ecr-login package: it is built for docker's
// credential-helper protocol (with a token cache on disk, ~/.ecr, which a build must not leave
// behind); what the build needs from it is this one SDK call and the host pattern below.
package ecrauth

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go"
)

// ecrHost matches the private registry endpoints of ECR, IPv4 and dual-stack, FIPS, China and
// the isolated partitions: <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn],
// <account>.dkr-ecr[-fips].<region>.on.aws, ... An optional :443 is allowed.
var ecrHost = regexp.MustCompile(`^([0-9]{12})\.dkr[.-]ecr(-fips)?\.([a-z]{2}(-[a-z]+)+-[0-9]+)\.` +
	`(amazonaws\.com|amazonaws\.com\.cn|on\.aws|c2s\.ic\.gov|sc2s\.sgov\.gov|cloud\.adc-e\.uk|csp\.hci\.ic\.gov)(:443)?$`)

// IsECR reports whether registryHost (host[:port], no path) is an ECR private registry, such as
// 123456789012.dkr.ecr.eu-west-1.amazonaws.com. ECR Public (public.ecr.aws) is not: it needs no
// login to pull, and pushes to it take another API (ecr-public).
func IsECR(registryHost string) bool {
	return ecrHost.MatchString(strings.ToLower(registryHost))
}

// Region returns the region an ECR registry host names ("" when it is not an ECR host).
func Region(registryHost string) string {
	m := ecrHost.FindStringSubmatch(strings.ToLower(registryHost))
	if m == nil {
		return ""
	}
	return m[3]
}

// API is the one ECR call this package makes; *ecr.Client satisfies it.
type API interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Credentials returns the user ("AWS") and password of an ECR authorization token for
// registryHost, from the default AWS credential chain. A token is regional: the region the host
// names wins; region (or AWS_REGION when region is empty) is used for a host that names none (a
// registry reached through another name, or a local stand-in). The password is valid for 12 hours
// and must be treated as a secret: it is never part of an error.
func Credentials(ctx context.Context, region, registryHost string) (user, password string, err error) {
	if r := Region(registryHost); r != "" {
		region = r
	}
	var opts []func(*config.LoadOptions) error
	if region != "" {
		opts = append(opts, config.WithRegion(region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return "", "", fmt.Errorf("ecr login to %s: load AWS config: %w", registryHost, err)
	}
	if cfg.Region == "" {
		return "", "", fmt.Errorf("ecr login to %s: no AWS region: set AWS_REGION", registryHost)
	}
	return CredentialsFrom(ctx, ecr.NewFromConfig(cfg), registryHost, Where(cfg.Region))
}

// CredentialsFrom is Credentials with a given client; where describes its region and endpoint for
// error messages (see Where).
func CredentialsFrom(ctx context.Context, api API, registryHost, where string) (user, password string, err error) {
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{})
	if err != nil {
		return "", "", fmt.Errorf("ecr login to %s: GetAuthorizationToken (%s): %w%s", registryHost, where, err, hint(err))
	}
	if len(out.AuthorizationData) == 0 || aws.ToString(out.AuthorizationData[0].AuthorizationToken) == "" {
		return "", "", fmt.Errorf("ecr login to %s: GetAuthorizationToken (%s) returned no token", registryHost, where)
	}
	user, password, err = decode(aws.ToString(out.AuthorizationData[0].AuthorizationToken))
	if err != nil {
		return "", "", fmt.Errorf("ecr login to %s: GetAuthorizationToken (%s): %w", registryHost, where, err)
	}
	return user, password, nil
}

// decode splits a token, base64("user:password"). Errors never include the token's bytes.
func decode(token string) (user, password string, err error) {
	b, err := base64.StdEncoding.DecodeString(token)
	if err != nil {
		return "", "", errors.New("the authorization token is not base64")
	}
	user, password, ok := strings.Cut(string(b), ":")
	if !ok || user == "" || password == "" {
		return "", "", errors.New(`the authorization token is not "user:password"`)
	}
	return user, password, nil
}

// hint names the fix for the usual failures.
func hint(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "AccessDeniedException", "AccessDenied", "UnrecognizedClientException":
			return `: the caller's role needs ecr:GetAuthorizationToken on resource "*" (infra/template.yml grants it to the build and instance roles when EcrRepository is on)`
		}
	}
	if strings.Contains(err.Error(), "failed to retrieve credentials") || strings.Contains(err.Error(), "no EC2 IMDS role found") {
		return ": no AWS credentials found: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with a role"
	}
	return ""
}

// Where describes the region and endpoint in use, e.g.
// `region us-east-1, endpoint http://127.0.0.1:4566 (AWS_ENDPOINT_URL_ECR)`.
func Where(region string) string {
	if os.Getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") != "true" {
		for _, env := range []string{"AWS_ENDPOINT_URL_ECR", "AWS_ENDPOINT_URL"} {
			if v := os.Getenv(env); v != "" {
				return fmt.Sprintf("region %s, endpoint %s (%s)", region, v, env)
			}
		}
	}
	return fmt.Sprintf("region %s, default AWS endpoint", region)
}
