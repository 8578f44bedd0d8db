package ecrauth

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
)

func TestIsECRAndRegion(t *testing.T) {
	t.Parallel()
	for host, region := range map[string]string{
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com":      "eu-west-1",
		"123456789012.dkr.ecr.us-gov-west-1.amazonaws.com":  "us-gov-west-1",
		"123456789012.dkr.ecr-fips.us-east-1.amazonaws.com": "us-east-1",
		"123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn":  "cn-north-1",
		"123456789012.dkr-ecr.ap-southeast-2.on.aws":        "ap-southeast-2",
		"123456789012.DKR.ECR.EU-WEST-1.AMAZONAWS.COM":      "eu-west-1",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com:443":  "eu-west-1",
		"public.ecr.aws": "",
		"123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.io": "",
		"12345678901.dkr.ecr.eu-west-1.amazonaws.com":          "",
		"123456789012.dkr.ecr.amazonaws.com":                   "",
		"registry.example.com":                                 "",
		"127.0.0.1:5001":                                       "",
		"":                                                     "",
	} {
		if got := IsECR(host); got != (region != "") {
			t.Errorf("IsECR(%q) = %v", host, got)
		}
		if got := Region(host); got != region {
			t.Errorf("Region(%q) = %q, want %q", host, got, region)
		}
	}
}

// fakeECR is a hand-written stand-in for the error paths; the real protocol (moto_server, a
// registry accepting its token) is exercised by integration_test.go.
type fakeECR struct {
	token *string
	err   error
}

func (f fakeECR) GetAuthorizationToken(context.Context, *ecr.GetAuthorizationTokenInput, ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	out := &ecr.GetAuthorizationTokenOutput{}
	if f.token != nil {
		out.AuthorizationData = []types.AuthorizationData{{AuthorizationToken: f.token}}
	}
	return out, nil
}

func b64(s string) *string { return aws.String(base64.StdEncoding.EncodeToString([]byte(s))) }

func TestCredentialsFrom(t *testing.T) {
	t.Parallel()
	const host, where = "123456789012.dkr.ecr.eu-west-1.amazonaws.com", "region eu-west-1, default AWS endpoint"
	user, password, err := CredentialsFrom(context.Background(), fakeECR{token: b64("AWS:pa:ss")}, host, where)
	if err != nil || user != "AWS" || password != "pa:ss" {
		t.Fatalf("CredentialsFrom = %q, %q, %v; want AWS, pa:ss", user, password, err)
	}

	denied := &smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform: ecr:GetAuthorizationToken"}
	for name, c := range map[string]struct {
		api  fakeECR
		want []string
	}{
		"denied":     {fakeECR{err: denied}, []string{host, "eu-west-1", "AccessDeniedException", `ecr:GetAuthorizationToken on resource "*"`}},
		"no token":   {fakeECR{}, []string{host, "returned no token"}},
		"not base64": {fakeECR{token: aws.String("%%secret%%")}, []string{"not base64"}},
		"no colon":   {fakeECR{token: b64("AWSsecret")}, []string{`not "user:password"`}},
		"no pass":    {fakeECR{token: b64("AWS:")}, []string{`not "user:password"`}},
	} {
		_, _, err := CredentialsFrom(context.Background(), c.api, host, where)
		if err == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		msg := err.Error()
		if strings.Contains(msg, "secret") || strings.Contains(msg, "\n") {
			t.Errorf("%s: error must be one line without the token: %q", name, msg)
		}
		for _, w := range c.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: error %q lacks %q", name, msg, w)
			}
		}
	}
}

func TestWhere(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_ECR", "http://127.0.0.1:4566")
	if got := Where("us-east-1"); got != "region us-east-1, endpoint http://127.0.0.1:4566 (AWS_ENDPOINT_URL_ECR)" {
		t.Errorf("Where = %q", got)
	}
	t.Setenv("AWS_ENDPOINT_URL_ECR", "")
	if got := Where("us-east-1"); got != "region us-east-1, default AWS endpoint" {
		t.Errorf("Where = %q", got)
	}
}
