package ssmparam

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// fakeSSM serves params and records whether decryption was asked for.
type fakeSSM struct {
	params  map[string]string
	decrypt bool
	err     error
}

func (f *fakeSSM) GetParameter(_ context.Context, in *ssm.GetParameterInput, _ ...func(*ssm.Options)) (*ssm.GetParameterOutput, error) {
	f.decrypt = aws.ToBool(in.WithDecryption)
	if f.err != nil {
		return nil, f.err
	}
	v, ok := f.params[aws.ToString(in.Name)]
	if !ok {
		return nil, &types.ParameterNotFound{Message: aws.String("not found")}
	}
	return &ssm.GetParameterOutput{Parameter: &types.Parameter{Value: aws.String(v)}}, nil
}

func TestGet(t *testing.T) {
	t.Parallel()
	fake := &fakeSSM{params: map[string]string{"/webapp/registry/password": "s3cret"}}
	r := &Reader{API: fake, Where: "region us-east-1, endpoint http://127.0.0.1:4566 (AWS_ENDPOINT_URL_SSM)"}

	v, err := r.Get(context.Background(), "/webapp/registry/password")
	if err != nil || v != "s3cret" || !fake.decrypt {
		t.Fatalf("Get = %q, %v (decrypt=%v)", v, err, fake.decrypt)
	}

	_, err = r.Get(context.Background(), "/webapp/nope")
	if err == nil {
		t.Fatal("missing parameter: no error")
	}
	for _, want := range []string{`"/webapp/nope"`, "us-east-1", "http://127.0.0.1:4566"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %s", err, want)
		}
	}
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}

	fake.err = errors.New("AccessDeniedException")
	if _, err := r.Get(context.Background(), "/webapp/registry/password"); err == nil || !strings.Contains(err.Error(), "AccessDenied") {
		t.Errorf("other error not wrapped: %v", err)
	}
}

func TestWhere(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_SSM", "http://127.0.0.1:4566")
	if got := Where("eu-west-1"); got != "region eu-west-1, endpoint http://127.0.0.1:4566 (AWS_ENDPOINT_URL_SSM)" {
		t.Errorf("Where = %q", got)
	}
	t.Setenv("AWS_ENDPOINT_URL_SSM", "")
	if got := Where("eu-west-1"); got != "region eu-west-1, default AWS endpoint" {
		t.Errorf("Where = %q", got)
	}
}
