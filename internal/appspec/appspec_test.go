package appspec

import (
	"strings"
	"testing"
)

// The agent runs DownloadBundle and Install itself; the previous revision's scripts run before
// the new revision is downloaded.
func TestLifecycle(t *testing.T) {
	if got := strings.Join(ScriptEvents(), " "); got != "BeforeBlockTraffic AfterBlockTraffic ApplicationStop BeforeInstall AfterInstall ApplicationStart ValidateService BeforeAllowTraffic AfterAllowTraffic" {
		t.Errorf("script events: %s", got)
	}
	download := -1
	for i, e := range Events {
		if e.Name == DownloadBundle {
			download = i
		}
		if e.Previous && download >= 0 {
			t.Errorf("%s runs the previous revision's scripts after DownloadBundle", e.Name)
		}
	}
	if _, ok := Lookup("AfterDeploy"); ok {
		t.Error("AfterDeploy is no in-place event")
	}
}

// version stays the string "0.0" (a float would read 0).
func TestParse(t *testing.T) {
	spec, err := Parse([]byte("version: 0.0\nos: linux\nhooks:\n  ValidateService:\n    - location: v.sh\n      timeout: 30\n"))
	if err != nil {
		t.Fatal(err)
	}
	if spec.Version.Value != "0.0" || *spec.Hooks[ValidateService][0].Timeout != 30 {
		t.Errorf("%+v", spec)
	}
}
