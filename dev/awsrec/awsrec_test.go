package awsrec

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/webapp-pipeline/dev/cfn"
)

// The proxy names each call by its endpoint's role, the operation and the resource's ARN.
func TestRecorderClassifies(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.Header.Get("X-Amz-Target"), "Sign") {
			w.WriteHeader(http.StatusBadRequest)
		}
		_, _ = w.Write([]byte("{}"))
	}))
	defer upstream.Close()
	rec, err := New(upstream.URL, "123456789012", "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	url, err := rec.Endpoint("instance")
	if err != nil {
		t.Fatal(err)
	}
	call := func(service, target, body string) {
		req, _ := http.NewRequest(http.MethodPost, url+"/", strings.NewReader(body))
		req.Header.Set("X-Amz-Target", target)
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20261203/us-east-1/"+service+"/aws4_request, SignedHeaders=host, Signature=0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	call("ssm", "AmazonSSM.GetParameters", `{"Names":["/webapp/registry/pull-username","/webapp/registry/pull-password"],"WithDecryption":true}`)
	call("kms", "TrentService.Sign", `{"KeyId":"0123"}`)
	call("ecr", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken", `{}`)
	got := []string{}
	for _, c := range rec.Calls() {
		got = append(got, c.String())
	}
	want := []string{
		"instance ssm:GetParameters on arn:aws:ssm:us-east-1:123456789012:parameter/webapp/registry/pull-username,arn:aws:ssm:us-east-1:123456789012:parameter/webapp/registry/pull-password (200)",
		"instance kms:Sign on arn:aws:kms:us-east-1:123456789012:key/0123 (400)",
		"instance ecr:GetAuthorizationToken on * (200)",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("recorded\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestRegistryAction(t *testing.T) {
	for _, c := range []struct{ method, path, action string }{
		{"HEAD", "/v2/acme/webapp/blobs/sha256:ab", "ecr:BatchCheckLayerAvailability"},
		{"GET", "/v2/acme/webapp/blobs/sha256:ab", "ecr:GetDownloadUrlForLayer"},
		{"POST", "/v2/acme/webapp/blobs/uploads/", "ecr:InitiateLayerUpload"},
		{"PATCH", "/v2/acme/webapp/blobs/uploads/u1", "ecr:UploadLayerPart"},
		{"PUT", "/v2/acme/webapp/blobs/uploads/u1", "ecr:CompleteLayerUpload"},
		{"PUT", "/v2/acme/webapp/manifests/sha256-ab.sig", "ecr:PutImage"},
		{"GET", "/v2/acme/webapp/manifests/sha256:ab", "ecr:BatchGetImage"},
		{"GET", "/v2/", ""},
	} {
		a, repo := RegistryAction(c.method, c.path)
		if a != c.action || (a != "" && repo != "acme/webapp") {
			t.Errorf("%s %s = %s %s, want %s acme/webapp", c.method, c.path, a, repo, c.action)
		}
	}
}

// The evaluator: wildcards as IAM has them, conditions grant nothing here, a missing grant is
// a denial and an unused one is listed.
func TestCheck(t *testing.T) {
	key := "arn:aws:kms:us-east-1:123456789012:key/k1"
	roles := map[string][]cfn.Statement{"instance": {
		{Sid: "Verify", Effect: "Allow", Actions: []string{"kms:GetPublicKey", "kms:DescribeKey"}, Resources: []string{key}},
		{Sid: "Params", Effect: "Allow", Actions: []string{"ssm:Get*"}, Resources: []string{"arn:aws:ssm:us-east-1:123456789012:parameter/webapp/*"}},
		{Sid: "Decrypt", Effect: "Allow", Actions: []string{"kms:Decrypt"}, Resources: []string{"*"}, Condition: "map[StringEquals:...]"},
	}}
	calls := []Call{
		{Role: "instance", Action: "kms:GetPublicKey", Resources: []string{key}},
		{Role: "instance", Action: "SSM:GetParameter", Resources: []string{"arn:aws:ssm:us-east-1:123456789012:parameter/webapp/registry/pull-username"}},
		{Role: "instance", Action: "kms:Decrypt", Resources: []string{key}},
		{Role: "instance", Action: "ssm:GetParameter", Resources: []string{"arn:aws:ssm:us-east-1:123456789012:parameter/other/x"}},
		{Role: "instance", Action: "sts:GetCallerIdentity", Resources: []string{"*"}},
	}
	rep := Check(calls, roles)
	t.Log(rep.Text())
	if len(rep.Denied) != 2 || rep.Denied[0].Action != "kms:Decrypt" || !strings.HasSuffix(rep.Denied[1].Resources[0], "/other/x") {
		t.Errorf("denied %v, want kms:Decrypt (its grant has a condition) and the parameter outside /webapp/*", rep.Denied)
	}
	var unused []string
	for _, g := range rep.Unused {
		unused = append(unused, g.Action)
	}
	if strings.Join(unused, " ") != "kms:DescribeKey kms:Decrypt" {
		t.Errorf("unused %v, want kms:DescribeKey kms:Decrypt", unused)
	}
}
