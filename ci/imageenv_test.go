package ci

import (
	"strings"
	"testing"
)

func TestImageEnvRender(t *testing.T) {
	t.Parallel()
	digest := "sha256:" + strings.Repeat("ab", 32)
	env := ImageEnv{
		Image: "127.0.0.1:5001/webapp@" + digest, ImageTag: "127.0.0.1:5001/webapp:abc123", Revision: "abc123",
		Registry: "127.0.0.1:5001", RegistryUsernameParam: "/webapp/registry/username",
		RegistryPasswordParam: "/webapp/registry/password", AWSRegion: "us-east-1",
		ContainerName: "webapp", ContainerPort: 8080, HealthPath: "/healthz",
	}
	got, err := env.Render()
	if err != nil {
		t.Fatal(err)
	}
	want := "IMAGE=127.0.0.1:5001/webapp@" + digest + "\n" +
		"IMAGE_TAG=127.0.0.1:5001/webapp:abc123\nREVISION=abc123\nREGISTRY=127.0.0.1:5001\nREGISTRY_LOGIN=ssm\n" +
		"REGISTRY_USERNAME_PARAM=/webapp/registry/username\nREGISTRY_PASSWORD_PARAM=/webapp/registry/password\n" +
		"AWS_REGION=us-east-1\nCONTAINER_NAME=webapp\nCONTAINER_PORT=8080\nHEALTH_PATH=/healthz\n"
	if got != want {
		t.Errorf("Render =\n%s\nwant\n%s", got, want)
	}

	ecr := env
	ecr.RegistryLogin, ecr.RegistryUsernameParam, ecr.RegistryPasswordParam = "ecr", "", ""
	if got, err := ecr.Render(); err != nil || strings.Contains(got, "_PARAM") || !strings.Contains(got, "REGISTRY_LOGIN=ecr\n") {
		t.Errorf("ecr login: %q, %v", got, err)
	}

	signed := env
	signed.SigningKey, signed.SourceRepository = "awskms:///arn:aws:kms:us-east-1:123456789012:key/0a1b", "https://github.com/acme/shop"
	if got, err := signed.Render(); err != nil || !strings.HasSuffix(got, "HEALTH_PATH=/healthz\n"+
		"SIGNING_KEY=awskms:///arn:aws:kms:us-east-1:123456789012:key/0a1b\nSOURCE_REPOSITORY=https://github.com/acme/shop\n") {
		t.Errorf("signed: %q, %v", got, err)
	}
	signed.SourceRepository = ""
	if _, err := signed.Render(); err == nil || !strings.Contains(err.Error(), "SOURCE_REPOSITORY") {
		t.Errorf("a key without a repository: %v", err)
	}

	bad := env
	bad.Image = "127.0.0.1:5001/webapp:abc123"
	if _, err := bad.Render(); err == nil || !strings.Contains(err.Error(), "by digest") {
		t.Errorf("tag instead of digest: %v", err)
	}
	bad = env
	bad.Revision = "abc; rm -rf /"
	if _, err := bad.Render(); err == nil || !strings.Contains(err.Error(), "REVISION") {
		t.Errorf("unsafe value: %v", err)
	}
	bad = env
	bad.AWSRegion = ""
	if _, err := bad.Render(); err == nil {
		t.Error("empty value accepted")
	}
}

func TestRegistryHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:5001/webapp":                      "127.0.0.1:5001",
		"localhost/webapp":                           "localhost",
		"123.dkr.ecr.us-east-1.amazonaws.com/webapp": "123.dkr.ecr.us-east-1.amazonaws.com",
		"acme/webapp":                                "docker.io",
		"webapp":                                     "docker.io",
	} {
		if got := RegistryHost(in); got != want {
			t.Errorf("RegistryHost(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"python:3.13-slim":              "python-3.13-slim",
		"docker.io/library/python:3.12": "python-3.12",
		"127.0.0.1:5000/Py@sha256:abc":  "py-sha256-abc",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}
