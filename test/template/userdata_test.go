package template

import (
	"encoding/base64"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite infra/template.yml's copy of infra/instance/bootstrap.sh")

const (
	templatePath  = "../../infra/template.yml"
	bootstrapPath = "../../infra/instance/bootstrap.sh"
	// the literal block of the launch template's user data: this line, then the script indented
	blockStart  = "              - |\n"
	blockIndent = "                "
)

// TestUserDataIsTheBootstrap: the launch template's user data is the stack's settings, then
// infra/instance/bootstrap.sh byte for byte (CloudFormation cannot read a file beside the
// template, so the template holds a copy; -update rewrites it from the file).
func TestUserDataIsTheBootstrap(t *testing.T) {
	script, err := os.ReadFile(bootstrapPath)
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		raw, err := os.ReadFile(templatePath)
		if err != nil {
			t.Fatal(err)
		}
		head, rest, ok := strings.Cut(string(raw), "UserData: !Base64")
		i := strings.Index(rest, blockStart)
		if !ok || i < 0 {
			t.Fatal("no UserData block in the template")
		}
		body := rest[i+len(blockStart):]
		end := 0 // the block ends at the first non-empty line indented less than the script
		for _, line := range strings.SplitAfter(body, "\n") {
			if strings.TrimSpace(line) != "" && !strings.HasPrefix(line, blockIndent) {
				break
			}
			end += len(line)
		}
		var b strings.Builder
		for _, line := range strings.SplitAfter(string(script), "\n") {
			if strings.TrimSpace(line) != "" {
				b.WriteString(blockIndent)
			}
			b.WriteString(line)
		}
		out := head + "UserData: !Base64" + rest[:i+len(blockStart)] + b.String() + "\n" + strings.TrimLeft(body[end:], "\n")
		if err := os.WriteFile(templatePath, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := evaluate(t, map[string]string{"InstanceSubnetIds": "subnet-0123456789abcdef0,subnet-0123456789abcdef1"})
	lt := asMap(s.Resources["InstanceLaunchTemplate"]["Properties"])
	encoded := fmt.Sprint(path(lt, "LaunchTemplateData", "UserData"))
	decoded, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		t.Fatalf("UserData is not base64: %v", err)
	}
	ud := string(decoded)
	header, tail, ok := strings.Cut(ud, "SOURCE_REPOSITORY=https://github.com/acme/webapp'\n")
	if !ok || tail != string(script) {
		t.Fatalf("the launch template's user data is not the settings then %s verbatim: run go test ./test/template -run TestUserDataIsTheBootstrap -update\n%s", bootstrapPath, ud)
	}
	for _, want := range []string{"#!/bin/bash\n", "export WEBAPP_DEPLOY_ENV='HOST_PORT=80\n", "SIGNING_KEY=awskms:///<SigningKey.Arn>\n"} {
		if !strings.Contains(header, want) {
			t.Errorf("user data header lacks %q:\n%s", want, header)
		}
	}
	if n := len(decoded); n > 16384 {
		t.Errorf("user data is %d bytes: EC2 takes at most 16 KB", n)
	}
	t.Logf("user data: %d bytes (EC2's limit: 16384), header:\n%s", len(decoded), header)
}
