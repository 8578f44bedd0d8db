package ci

import (
	"fmt"
	"regexp"
	"strings"
)

// ImageEnv is the content of bundle/image.env, sourced by the hook scripts
// (format: docs/design.md). It holds names, never secret values.
type ImageEnv struct {
	Image                 string // repo@sha256:... (always by digest)
	ImageTag              string // repo:revision, for humans
	Revision              string
	Registry              string
	RegistryLogin         string // "ecr" (the instance role's token) or "ssm" (the two parameters)
	RegistryUsernameParam string
	RegistryPasswordParam string
	AWSRegion             string
	ContainerName         string
	ContainerPort         int    // the port the app listens on in the container
	HealthPath            string // GET it on ContainerPort must answer 2xx (ValidateService)
	SigningKey            string // cosign key reference the instances verify with ("" = unsigned: left out)
	SourceRepository      string // the repository the signed provenance names (with SigningKey)
}

// shellSafe is what may appear unquoted on the right of KEY= in a sourced file.
var shellSafe = regexp.MustCompile(`^[A-Za-z0-9@%+=:,./_-]+$`)

var digestRef = regexp.MustCompile(`^[^@\s]+@sha256:[a-f0-9]{64}$`)

// Render returns the KEY=value lines, or an error if the image is not named
// by digest or a value is empty or not shell-safe.
func (e ImageEnv) Render() (string, error) {
	if !digestRef.MatchString(e.Image) {
		return "", fmt.Errorf("image.env: IMAGE %q is not a reference by digest (repo@sha256:...)", e.Image)
	}
	kv := [][2]string{
		{"IMAGE", e.Image},
		{"IMAGE_TAG", e.ImageTag},
		{"REVISION", e.Revision},
		{"REGISTRY", e.Registry},
		{"REGISTRY_LOGIN", or(e.RegistryLogin, "ssm")},
	}
	if e.RegistryLogin != "ecr" { // ECR: the instance role's token, no parameters to read
		kv = append(kv, [][2]string{
			{"REGISTRY_USERNAME_PARAM", e.RegistryUsernameParam},
			{"REGISTRY_PASSWORD_PARAM", e.RegistryPasswordParam},
		}...)
	}
	kv = append(kv, [][2]string{
		{"AWS_REGION", e.AWSRegion},
		{"CONTAINER_NAME", e.ContainerName},
		{"CONTAINER_PORT", fmt.Sprint(e.ContainerPort)},
		{"HEALTH_PATH", e.HealthPath},
	}...)
	if e.SigningKey != "" { // verify_image.sh: the signature's key and the provenance's repository
		kv = append(kv, [][2]string{{"SIGNING_KEY", e.SigningKey}, {"SOURCE_REPOSITORY", e.SourceRepository}}...)
	}
	if e.ContainerPort < 1 || e.ContainerPort > 65535 {
		return "", fmt.Errorf("image.env: CONTAINER_PORT %d is not a port", e.ContainerPort)
	}
	if !strings.HasPrefix(e.HealthPath, "/") {
		return "", fmt.Errorf("image.env: HEALTH_PATH %q must start with /", e.HealthPath)
	}
	var b strings.Builder
	for _, p := range kv {
		if !shellSafe.MatchString(p[1]) {
			return "", fmt.Errorf("image.env: %s=%q is empty or not shell-safe", p[0], p[1])
		}
		fmt.Fprintf(&b, "%s=%s\n", p[0], p[1])
	}
	return b.String(), nil
}

// RegistryHost is the registry part of an image repository
// ("127.0.0.1:5001/webapp" → "127.0.0.1:5001", "library/python" → "docker.io").
func RegistryHost(repo string) string {
	host, _, ok := strings.Cut(repo, "/")
	if ok && (strings.ContainsAny(host, ".:") || host == "localhost") {
		return host
	}
	return "docker.io"
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
