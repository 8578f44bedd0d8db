package fleet

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/acme/webapp-pipeline/dev/devenv"
)

// Step is one deployment of a switch sequence (issue 19): a revision of the stand-in image and
// whether CodeDeploy must call it a success.
type Step struct {
	Label    string
	Revision string
	Image    string
	WantOK   bool
}

// SequenceSteps builds the images of the sequence good → new good → an image that cannot start →
// one that starts but never gets healthy → one that passes its check and answers 500 from
// failAfter after its start → good (v1 again) → v2 again, as CodeDeploy's rollback or a redeploy
// of the previous revision does it: the container the instance kept, started again, no pull.
// The images are testdata/deploy/image (docker build, pushed to the dev registry): the real build
// smoke-tests an image before it pushes, so it would refuse the three broken ones.
func SequenceSteps(ctx context.Context, env devenv.Env, root, repo string, failAfter time.Duration) ([]Step, error) {
	stamp := time.Now().Format("150405")
	type spec struct {
		label, rev string
		status     int
		args       []string
		ok         bool
	}
	specs := []spec{
		{"good (first deployment)", "v1", 200, nil, true},
		{"new good", "v2", 200, nil, true},
		{"image that cannot start", "nostart", devenv.CannotStart, nil, false},
		{"never healthy", "unhealthy", 500, nil, false},
		{fmt.Sprintf("fails %s after its start", failAfter), "failslater", 200, []string{fmt.Sprintf("FAIL_AFTER=%d", int(failAfter.Seconds()))}, false},
	}
	var steps []Step
	for _, s := range specs {
		img, err := env.BuildImageArgs(ctx, root, repo, s.rev+"-"+stamp, s.status, s.args...)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", s.rev, err)
		}
		steps = append(steps, Step{Label: s.label, Revision: s.rev, Image: img, WantOK: s.ok})
	}
	steps = append(steps, Step{Label: "good (v1 again)", Revision: "v1", Image: steps[0].Image, WantOK: true},
		Step{Label: "previous (v2) again: its kept container", Revision: "v2", Image: steps[1].Image, WantOK: true})
	return steps, nil
}

// Row is one measured deployment of a sequence.
type Row struct {
	Step
	Result Result
	Probe  devenv.Report
	// SwitchedBack: the journal's "serving again N ms after the first failed check", if an
	// instance switched back in this deployment ("" otherwise).
	SwitchedBack string
}

// RunSequence deploys the steps in order with cfg (the first one unprobed: nothing serves yet),
// each while a prober asks url every interval; bundles go under dir.
func (f *Fleet) RunSequence(ctx context.Context, root, dir string, steps []Step, cfg Config, url string, interval time.Duration) ([]Row, error) {
	var rows []Row
	for i, s := range steps {
		b := filepath.Join(dir, fmt.Sprintf("%d-%s", i, s.Revision))
		if err := f.Env.WriteBundle(root, b, devenv.ImageEnv{Image: s.Image, Revision: s.Revision, ContainerName: "webapp", HealthPath: devenv.TestImageHealthPath}); err != nil {
			return rows, err
		}
		before := f.journalLines()
		var p *devenv.Prober
		if i > 0 {
			p = devenv.StartProber(url, interval, 1000000)
			time.Sleep(300 * time.Millisecond)
		}
		row := Row{Step: s, Result: f.Deploy(ctx, b, cfg, nil)}
		if p != nil {
			time.Sleep(time.Second)
			row.Probe = p.Stop()
		}
		row.SwitchedBack = f.switchedBack(before)
		rows = append(rows, row)
		if ctx.Err() != nil {
			return rows, ctx.Err()
		}
	}
	return rows, nil
}

// journalLines counts each instance's journal lines (to find what one deployment added).
func (f *Fleet) journalLines() map[string]int {
	n := map[string]int{}
	for _, in := range f.Instances {
		b, _ := os.ReadFile(filepath.Join(in.StateDir(), "webapp", "journal"))
		n[in.Name] = strings.Count(string(b), "\n")
	}
	return n
}

var backMs = regexp.MustCompile(`serving again (\d+) ms after the first failed check`)

func (f *Fleet) switchedBack(before map[string]int) string {
	var out []string
	for _, in := range f.Instances {
		fh, err := os.Open(filepath.Join(in.StateDir(), "webapp", "journal"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for k := 0; sc.Scan(); k++ {
			cols := strings.Split(sc.Text(), "\t")
			if k < before[in.Name] || len(cols) < 7 || cols[5] != "rollback" {
				continue
			}
			if m := backMs.FindStringSubmatch(cols[6]); m != nil {
				ms, _ := strconv.Atoi(m[1])
				out = append(out, fmt.Sprintf("%s: %d ms", in.Name, ms))
			}
		}
		fh.Close()
	}
	return strings.Join(out, ", ")
}

// Journal is what scripts/journal.sh (the instance's webapp-journal command) prints for in.
func (f *Fleet) Journal(root string, in *Instance) (string, error) {
	cmd := exec.Command("bash", filepath.Join(root, "scripts", "journal.sh"))
	cmd.Env = append(os.Environ(), "STATE_DIR="+in.StateDir())
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// PrintRows writes the sequence's table.
func PrintRows(w io.Writer, rows []Row) {
	fmt.Fprintf(w, "%-38s %-9s %-6s %9s %7s %12s %8s %8s  %s\n", "deployment", "result", "wanted", "requests", "failed", "longest gap", "slowest", "took", "switched back (first failed check -> previous serving)")
	for _, r := range rows {
		res, want := "ok", "ok"
		if r.Result.Err != nil {
			res = "failed"
		}
		if !r.WantOK {
			want = "failed"
		}
		fmt.Fprintf(w, "%-38s %-9s %-6s %9d %7d %12s %8s %7.1fs  %s\n", r.Label, res, want, r.Probe.Requests, r.Probe.Failures,
			r.Probe.LongestGap.Round(time.Millisecond), r.Probe.Slowest.Round(time.Millisecond), r.Result.Took.Seconds(), r.SwitchedBack)
	}
}
