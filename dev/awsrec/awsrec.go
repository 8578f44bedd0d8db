// Package awsrec records the AWS calls a local pipeline run makes, and checks them against
// the IAM policies the template grants (iam.go). A Recorder is a reverse proxy in front of
// moto_server with one endpoint per role: the build's tools get one URL (AWS_ENDPOINT_URL_*),
// the instance's hooks another, so every call is known by the role that made it, its action
// (service:Operation) and the resources it names (as IAM ARNs). The registry protocol of an ECR
// stand-in is recorded too (RecordRegistry): ECR authorizes pushes and pulls as IAM actions on
// the repository.
//
// Why a proxy of our own: moto's recorder (moto-api/recorder) stores raw requests for replay,
// without the caller, and is one switch for the whole shared moto process; the proxy sees only
// this run's calls, names the role by its endpoint, and needs nothing from moto.
package awsrec

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Call is one recorded AWS call.
type Call struct {
	Role      string   // the endpoint it came through: "build", "instance"
	Action    string   // IAM action, e.g. ssm:GetParameter
	Resources []string // the ARNs it acts on; "*" for an action that takes no resource
	Status    int      // the answer's HTTP status
	Via       string   // "api" (moto) or "registry" (the ECR stand-in's registry protocol)
}

func (c Call) String() string {
	return fmt.Sprintf("%s %s on %s (%d)", c.Role, c.Action, strings.Join(c.Resources, ","), c.Status)
}

// Recorder proxies to moto and records.
type Recorder struct {
	Account, Region string
	upstream        *url.URL
	// KeyARN resolves a KMS key id or alias (as a call names it) to the key's ARN, which is
	// what IAM authorizes; nil: ids only.
	KeyARN func(ctx context.Context, id string) (string, error)

	mu        sync.Mutex
	calls     []Call
	listeners []net.Listener
	servers   []*http.Server
	regRole   string
}

// New returns a Recorder in front of upstream (moto's URL) for the account and region moto
// stands for.
func New(upstream, account, region string) (*Recorder, error) {
	u, err := url.Parse(upstream)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("awsrec: upstream %q is not a URL", upstream)
	}
	return &Recorder{Account: account, Region: region, upstream: u, regRole: "build"}, nil
}

// Endpoint starts a listener for role on 127.0.0.1 and returns its URL (for AWS_ENDPOINT_URL_*).
func (r *Recorder) Endpoint(role string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	proxy := httputil.NewSingleHostReverseProxy(r.upstream)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		proxy.ServeHTTP(sw, req)
		action, resources := r.classify(req, body)
		r.add(Call{Role: role, Action: action, Resources: resources, Status: sw.status, Via: "api"})
	})}
	r.mu.Lock()
	r.listeners, r.servers = append(r.listeners, l), append(r.servers, srv)
	r.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String(), nil
}

// Close stops every endpoint.
func (r *Recorder) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.servers {
		_ = s.Close()
	}
}

// Calls returns what was recorded, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

func (r *Recorder) add(c Call) {
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
}

// SetRegistryRole names the role registry calls are made with from now on (the build pushes;
// the Deploy stage's hooks pull).
func (r *Recorder) SetRegistryRole(role string) {
	r.mu.Lock()
	r.regRole = role
	r.mu.Unlock()
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) { s.status = code; s.ResponseWriter.WriteHeader(code) }

// scope is SigV4's credential scope: Credential=AKID/DATE/REGION/SERVICE/aws4_request.
var scope = regexp.MustCompile(`Credential=[^/]+/[0-9]+/([a-z0-9-]+)/([a-z0-9-]+)/aws4_request`)

// classify names a request's IAM action and resources. JSON protocols (SSM, KMS, ECR) name the
// operation in X-Amz-Target; query protocols (STS) in the Action form field.
func (r *Recorder) classify(req *http.Request, body []byte) (string, []string) {
	service := "unknown"
	if m := scope.FindStringSubmatch(req.Header.Get("Authorization")); m != nil {
		service = m[2]
	}
	op := ""
	if t := req.Header.Get("X-Amz-Target"); t != "" {
		op = t[strings.LastIndex(t, ".")+1:]
	} else if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
		op = v.Get("Action")
	}
	var in map[string]any
	_ = json.Unmarshal(body, &in)
	str := func(k string) string { s, _ := in[k].(string); return s }
	var res []string
	switch service {
	case "ssm":
		names := []string{str("Name")}
		if l, ok := in["Names"].([]any); ok {
			names = nil
			for _, n := range l {
				names = append(names, fmt.Sprint(n))
			}
		}
		for _, n := range names {
			if n != "" {
				res = append(res, r.ssmARN(n))
			}
		}
	case "kms":
		if id := str("KeyId"); id != "" {
			res = append(res, r.keyARN(req.Context(), id))
		}
	case "ecr":
		if n := str("repositoryName"); n != "" {
			res = append(res, r.RepositoryARN(n))
		}
	}
	if len(res) == 0 {
		res = []string{"*"}
	}
	return service + ":" + op, res
}

func (r *Recorder) ssmARN(name string) string {
	if strings.HasPrefix(name, "arn:") {
		return name
	}
	if !strings.HasPrefix(name, "/") {
		name = "/" + name
	}
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", r.Region, r.Account, name)
}

func (r *Recorder) keyARN(ctx context.Context, id string) string {
	if strings.HasPrefix(id, "arn:") && strings.Contains(id, ":key/") {
		return id
	}
	if r.KeyARN != nil {
		if arn, err := r.KeyARN(ctx, id); err == nil && arn != "" {
			return arn
		}
	}
	if strings.HasPrefix(id, "alias/") || strings.Contains(id, ":alias/") {
		return id // unresolved: no key grant matches it, so the check says so
	}
	return fmt.Sprintf("arn:aws:kms:%s:%s:key/%s", r.Region, r.Account, id)
}

// RepositoryARN is an ECR repository's ARN in the recorder's account and region.
func (r *Recorder) RepositoryARN(name string) string {
	return fmt.Sprintf("arn:aws:ecr:%s:%s:repository/%s", r.Region, r.Account, name)
}

// registryPath: /v2/<name>/(blobs|manifests)/<ref> and /v2/<name>/blobs/uploads/[<id>].
var registryPath = regexp.MustCompile(`^/v2/(.+?)/(blobs/uploads/?(.*)|blobs/[^/]+|manifests/[^/]+|tags/list)$`)

// RegistryAction is the ECR IAM action a registry protocol request needs ("" for /v2/ itself,
// which only checks the login), and the repository it names.
func RegistryAction(method, path string) (action, repo string) {
	m := registryPath.FindStringSubmatch(path)
	if m == nil {
		return "", ""
	}
	repo, what := m[1], m[2]
	switch {
	case strings.HasPrefix(what, "blobs/uploads"):
		switch {
		case method == http.MethodPost:
			return "ecr:InitiateLayerUpload", repo
		case method == http.MethodPut:
			return "ecr:CompleteLayerUpload", repo
		default:
			return "ecr:UploadLayerPart", repo
		}
	case strings.HasPrefix(what, "blobs/"):
		if method == http.MethodHead {
			return "ecr:BatchCheckLayerAvailability", repo
		}
		return "ecr:GetDownloadUrlForLayer", repo
	case strings.HasPrefix(what, "manifests/"):
		if method == http.MethodPut {
			return "ecr:PutImage", repo
		}
		return "ecr:BatchGetImage", repo
	default:
		return "ecr:ListImages", repo
	}
}

// RecordRegistry wraps an ECR stand-in's registry handler: each request is recorded as the
// ECR action it needs, on the repository's ARN, for the current registry role.
func (r *Recorder) RecordRegistry(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, req)
		action, repo := RegistryAction(req.Method, req.URL.Path)
		if action == "" || sw.status == http.StatusUnauthorized {
			return // the login handshake (a 401 asks for credentials; the retry is recorded)
		}
		r.mu.Lock()
		role := r.regRole
		r.mu.Unlock()
		r.add(Call{Role: role, Action: action, Resources: []string{r.RepositoryARN(repo)}, Status: sw.status, Via: "registry"})
	})
}
