package cfn

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func load(t *testing.T, body string) *Template {
	t.Helper()
	p := filepath.Join(t.TempDir(), "t.yml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	tpl, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

// The evaluator against hand-worked answers: each intrinsic, NoValue, conditions on conditions,
// and the errors CloudFormation would give.
func TestEvaluator(t *testing.T) {
	tpl := load(t, `
Parameters:
  Arn: {Type: String, Default: "arn:aws:elasticloadbalancing:us-east-1:1:listener/app/lb/abc/def"}
  Name: {Type: String, Default: "", AllowedPattern: "^$|^[a-z]+$"}
  Days: {Type: Number, Default: 0, MinValue: 0}
Conditions:
  HasName: !Not [!Equals [!Ref Name, ""]]
  NoDays: !Equals [!Ref Days, "0"]
  Both: !And [!Condition HasName, !Condition NoDays]
Resources:
  Opt:
    Type: X::Y
    Condition: HasName
  R:
    Type: X::Z
    Properties:
      Lb: !Join ["/", [!Select [1, !Split ["/", !Ref Arn]], !Select [2, !Split ["/", !Ref Arn]]]]
      Sub: !Sub ["${AWS::Partition}:${X}:${R.Arn}:${!Lit}", {X: !Ref Days}]
      List: [a, !Ref AWS::NoValue, !If [HasName, !GetAtt Opt.Arn, b]]
      Gone: !If [Both, x, !Ref AWS::NoValue]
`)
	s, err := tpl.Evaluate(nil)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(s.Resources["R"]["Properties"])
	want := "map[Lb:app/lb List:[a b] Sub:aws:0:<R.Arn>:${Lit}]"
	if got != want {
		t.Errorf("evaluated %s\nwant      %s", got, want)
	}
	if _, ok := s.Resources["Opt"]; ok {
		t.Error("Opt is present with its condition false")
	}
	s, err = tpl.Evaluate(map[string]string{"Name": "abc"})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(s.Resources["R"]["Properties"]); !strings.Contains(got, "List:[a <Opt.Arn>]") || !strings.Contains(got, "Gone:x") {
		t.Errorf("with Name: %s", got)
	}

	for name, c := range map[string]struct {
		body, params, err string
	}{
		"dangling Ref": {"Conditions: {C: !Equals [a, b]}\nResources:\n  O: {Type: X, Condition: C}\n  R: {Type: X, Properties: {P: !Ref O}}\n",
			"", "Ref to O, which its condition leaves out"},
		"dangling GetAtt in Sub": {"Conditions: {C: !Equals [a, b]}\nResources:\n  O: {Type: X, Condition: C}\n  R: {Type: X, Properties: {P: !Sub \"${O.Arn}\"}}\n",
			"", "GetAtt O.Arn: its condition leaves it out"},
		"unknown Ref":   {"Resources:\n  R: {Type: X, Properties: {P: !Ref Nope}}\n", "", "no such parameter or resource"},
		"bad pattern":   {"Parameters: {P: {Type: String, Default: x, AllowedPattern: \"^[0-9]+$\"}}\nResources: {}\n", "", "does not match"},
		"below minimum": {"Parameters: {P: {Type: Number, Default: 0, MinValue: 1}}\nResources: {}\n", "", "outside its MinValue"},
		"rule": {"Parameters: {P: {Type: String, Default: \"\"}}\nRules:\n  R:\n    Assertions: [{Assert: !Not [!Equals [!Ref P, \"\"]], AssertDescription: P is required}]\nResources: {}\n",
			"", "rule R: P is required"},
	} {
		_, err := load(t, c.body).Evaluate(nil)
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: err = %v, want %q", name, err, c.err)
		}
	}
}
