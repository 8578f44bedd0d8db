package build

import (
	"regexp"
	"strings"

	"github.com/acme/webapp-pipeline/internal/contract"
)

// The re-run commands a failure report suggests (Report.printFailure).

// hints are the commands that re-run only the failed step here, open a shell
// in its container, and rebuild it from the commit anywhere.
func (inv invocation) hints(step string) []string {
	var flags string
	if inv.source != "" && inv.source != "." {
		flags += " --source " + shellQuote(inv.source)
	}
	if inv.baseImage != "" && inv.baseImage != defaultBaseImage {
		flags += " --base-image " + shellQuote(inv.baseImage)
	}
	flags += inv.platformsFlag()
	const prog = "go run ./cmd/build "
	var h []string
	if inv.reproduce {
		switch step {
		case "deps", "lint", "test", "image":
			h = append(h, "re-run   "+prog+"reproduce "+inv.revision+" --step "+reproStep(step)+baseFlag(inv.baseImage)+inv.platformsFlag())
			h = append(h, "shell    git worktree add /tmp/"+inv.revision[:12]+" "+inv.revision+" && "+prog+"shell --step "+step+" --source /tmp/"+inv.revision[:12]+baseFlag(inv.baseImage)+inv.platformsFlag())
		}
		return h
	}
	switch step {
	case "deps":
		h = append(h, "re-run   "+prog+"lint"+flags+"   (installs the requirements, then flake8)")
	case "lint", "test":
		h = append(h, "re-run   "+prog+step+flags)
	case "image":
		h = append(h, "re-run   "+prog+"image"+flags+revFlag(inv.revision))
	case "check":
		h = append(h, "re-run   "+prog+"all"+flags+"   (check runs on the bundle that all builds)")
	case "publish":
		h = append(h, "re-run   "+prog+"publish"+flags+revFlag(inv.revision)+"   (lint, test and image are cached: only the push runs)")
	}
	switch step {
	case "deps", "lint", "test", "image":
		h = append(h, "shell    "+prog+"shell --step "+step+flags+revFlagIf(step == "image", inv.revision))
		if isCommit(inv.revision) {
			h = append(h, "commit   "+prog+"reproduce "+inv.revision+" --step "+reproStep(step)+baseFlag(inv.baseImage)+inv.platformsFlag()+"   (from any clone, working tree untouched)")
		}
	}
	return h
}

// platformsFlag is --platforms when the build was of other platforms than the host's alone.
func (inv invocation) platformsFlag() string {
	if len(inv.platforms) == 0 || (len(inv.platforms) == 1 && inv.platforms[0] == contract.HostPlatform()) {
		return ""
	}
	return " --platforms " + strings.Join(inv.platforms, ",")
}

func reproStep(step string) string {
	if step == "deps" {
		return "lint"
	}
	return step
}

func revFlag(rev string) string {
	if rev == "" || rev == "dev" {
		return ""
	}
	return " --revision " + rev
}

func revFlagIf(ok bool, rev string) string {
	if !ok {
		return ""
	}
	return revFlag(rev)
}

func baseFlag(img string) string {
	if img == "" || img == defaultBaseImage {
		return ""
	}
	return " --base-image " + shellQuote(img)
}

var commitRe = regexp.MustCompile(`^[0-9a-f]{40}$`)

func isCommit(s string) bool { return commitRe.MatchString(s) }

func shellQuote(s string) string {
	if regexp.MustCompile(`^[A-Za-z0-9_./:@=+-]+$`).MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
