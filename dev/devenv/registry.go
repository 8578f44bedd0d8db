package devenv

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Registry is a push registry of a local stand-in stack: Debian's docker-registry accepting
// exactly the logins the parameter set gives (htpasswd: for ECR only the token moto hands out,
// as ECR accepts only its tokens), behind a proxy that refuses writes from pull-only logins (a
// registry's pull-only credentials cannot push) and can record each request (Wrap). Host is the
// proxy's host:port on 127.0.0.1 (a loopback registry: plain http for the build's pusher and
// dockerd alike).
type Registry struct {
	Host string
	cmd  *exec.Cmd
	srv  *http.Server
}

// RegistryOptions are a stand-in registry's storage and logins.
type RegistryOptions struct {
	Dir      string            // config, htpasswd and storage (kept: a next run pushes only what changed)
	Users    map[string]string // user -> password
	ReadOnly map[string]bool   // users that may only pull
	// Wrap, when set, wraps the proxy's handler (awsrec's RecordRegistry).
	Wrap func(http.Handler) http.Handler
}

// StartRegistry starts the registry and its proxy; Stop ends both.
func StartRegistry(ctx context.Context, o RegistryOptions) (*Registry, error) {
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	var htp strings.Builder
	for user, pw := range o.Users {
		out, err := exec.CommandContext(ctx, "htpasswd", "-Bbn", user, pw).Output()
		if err != nil {
			return nil, fmt.Errorf("htpasswd (dev/env.sh up installs apache2-utils): %w", err)
		}
		htp.WriteString(strings.TrimSpace(string(out)) + "\n")
	}
	if err := os.WriteFile(filepath.Join(o.Dir, "htpasswd"), []byte(htp.String()), 0o600); err != nil {
		return nil, err
	}
	inner, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: warn}\nstorage:\n  filesystem: {rootdirectory: %s}\n  delete: {enabled: true}\n"+
		"http:\n  addr: 127.0.0.1:%d\nauth:\n  htpasswd: {realm: stand-in, path: %s}\n",
		filepath.Join(o.Dir, "storage"), inner, filepath.Join(o.Dir, "htpasswd"))
	if err := os.WriteFile(filepath.Join(o.Dir, "config.yml"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(o.Dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	r := &Registry{cmd: exec.Command("docker-registry", "serve", filepath.Join(o.Dir, "config.yml"))}
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("docker-registry (dev/env.sh up installs it): %w", err)
	}
	up := false
	for i := 0; i < 100 && !up; i++ {
		if resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/v2/", inner)); err == nil {
			resp.Body.Close()
			up = resp.StatusCode == http.StatusUnauthorized
		}
		if !up {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !up {
		r.Stop()
		return nil, fmt.Errorf("the stand-in registry did not come up: %s", filepath.Join(o.Dir, "registry.log"))
	}
	target, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", inner))
	var h http.Handler = httputil.NewSingleHostReverseProxy(target) // keeps the Host: upload URLs name the proxy
	h = readOnly(h, o.ReadOnly)
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.Stop()
		return nil, err
	}
	r.Host = l.Addr().String()
	r.srv = &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// readOnly refuses every write of a pull-only user as a registry does (403 DENIED).
func readOnly(next http.Handler, users map[string]bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user, _, ok := req.BasicAuth(); ok && users[user] && req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"%s may only pull"}]}`, user)
			return
		}
		next.ServeHTTP(w, req)
	})
}

// Stop ends the proxy and the registry.
func (r *Registry) Stop() {
	if r.srv != nil {
		_ = r.srv.Close()
	}
	if r.cmd != nil && r.cmd.Process != nil {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
	}
}
