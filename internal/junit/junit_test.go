package junit

import (
	"strings"
	"testing"
)

func TestFromFlake8(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		out       string
		code      int
		wantFails int
		wantIn    []string
	}{
		{"clean", "", 0, 0, []string{`tests="1"`, `failures="0"`, `name="flake8"`}},
		{"two violations", "./webapp/a.py:3:1: F401 'os' imported but unused\n./webapp/a.py:10:80: E501 line too long (120 > 100 characters)\n", 1, 2,
			[]string{`tests="2"`, `failures="2"`, `name="./webapp/a.py:3:1 F401"`, `file="./webapp/a.py"`, `line="10"`, `message="E501 line too long (120 &gt; 100 characters)"`}},
		{"crash without lines", "There was a critical error during execution of Flake8:\nbad config\n", 1, 1,
			[]string{`errors="1"`, `message="flake8 exited with code 1"`, "bad config"}},
		{"CRLF and noise", "noise\r\nx.py:1:2: W291 trailing whitespace\r\n", 1, 1, []string{`name="x.py:1:2 W291"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			doc, fails := FromFlake8(tt.out, tt.code)
			if fails != tt.wantFails {
				t.Errorf("failures = %d, want %d", fails, tt.wantFails)
			}
			for _, w := range tt.wantIn {
				if !strings.Contains(string(doc), w) {
					t.Errorf("report lacks %s:\n%s", w, doc)
				}
			}
			if _, err := Failed(doc); err != nil {
				t.Errorf("own output does not parse: %v", err)
			}
		})
	}
}

func TestFailed(t *testing.T) {
	t.Parallel()
	pytest := `<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" errors="0" failures="1" skipped="0" tests="2">
<testcase classname="tests.test_app" name="test_ok" time="0.001"/>
<testcase classname="tests.test_app" name="test_broken" time="0.002"><failure message="assert 1 == 2">tb</failure></testcase>
</testsuite></testsuites>`
	got, err := Failed([]byte(pytest))
	if err != nil || len(got) != 1 || got[0] != "tests.test_app::test_broken" {
		t.Fatalf("Failed = %v, %v", got, err)
	}
	bare := `<testsuite name="x"><testcase classname="c" name="n"><error message="boom"/></testcase></testsuite>`
	if got, err := Failed([]byte(bare)); err != nil || len(got) != 1 || got[0] != "c::n" {
		t.Fatalf("Failed(bare) = %v, %v", got, err)
	}
	if _, err := Failed([]byte("not xml")); err == nil {
		t.Fatal("Failed(garbage) succeeded")
	}
}
