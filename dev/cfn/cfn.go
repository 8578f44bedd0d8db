// Package cfn evaluates infra/template.yml for one set of parameter values as CloudFormation
// would before it creates anything: parameters (defaults, overrides, AllowedValues and
// AllowedPattern), Rules, Conditions, resources left out by their Condition, and the intrinsic
// functions the template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Equals, Fn::Not, Fn::And,
// Fn::Or, Fn::Select, Fn::Split, Fn::Join, Fn::Base64, AWS::NoValue). What only exists once a stack does
// (an ARN, a generated name) stays a placeholder: <Resource> for a Ref, <Resource.Attribute> for
// Fn::GetAtt. A Ref or GetAtt to a resource its condition left out is an error, as it is for
// CloudFormation.
//
// Why not a library: goformation's intrinsics (v7.14.9) resolve neither AWS::Partition nor
// Fn::Sub's variable map, hand Fn::Select a []string from Fn::Split that it then rejects, and
// drop what they cannot resolve (Fn::GetAtt) without a word: an IAM policy evaluated with them
// would lose exactly the resources these tests print. cfn-lint and cfn-guard check the template
// but print no evaluated stack.
package cfn

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pseudo are the pseudo parameters of the stand-in stack (a test may change one and restore it).
var Pseudo = map[string]string{
	"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "AWS::Partition": "aws",
	"AWS::StackName": "webapp", "AWS::URLSuffix": "amazonaws.com",
	"AWS::StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/webapp/51af3dc0-da77-11e4-872e-1234567db123",
}

// noValue is what AWS::NoValue (and an Fn::If branch of it) evaluates to: the key or list item
// holding it is removed.
type noValueT struct{}

var noValue = noValueT{}

// Template is the parsed template: Parameters, Rules, Conditions, Resources, Outputs as generic
// values (maps, lists, strings; short-form tags turned into their long form).
type Template struct {
	Parameters map[string]map[string]any
	Rules      map[string]any
	Conditions map[string]any
	Resources  map[string]map[string]any
	Outputs    map[string]map[string]any
}

// Load parses a template file.
func Load(path string) (*Template, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	root, ok := convert(&doc).(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%s: not a mapping", path)
	}
	t := &Template{Parameters: map[string]map[string]any{}, Resources: map[string]map[string]any{}, Outputs: map[string]map[string]any{}}
	for name, p := range asMap(root["Parameters"]) {
		t.Parameters[name] = asMap(p)
	}
	for name, r := range asMap(root["Resources"]) {
		t.Resources[name] = asMap(r)
	}
	for name, o := range asMap(root["Outputs"]) {
		t.Outputs[name] = asMap(o)
	}
	t.Rules = asMap(root["Rules"])
	t.Conditions = asMap(root["Conditions"])
	return t, nil
}

// convert turns a YAML node into maps, lists and strings; a short-form tag (!Ref X, !Sub ...,
// !GetAtt A.B) becomes its long form ({"Ref": "X"}, {"Fn::Sub": ...}, {"Fn::GetAtt": [A, B]}).
func convert(n *yaml.Node) any {
	var v any
	switch n.Kind {
	case yaml.DocumentNode:
		return convert(n.Content[0])
	case yaml.MappingNode:
		m := map[string]any{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			m[n.Content[i].Value] = convert(n.Content[i+1])
		}
		v = m
	case yaml.SequenceNode:
		l := []any{}
		for _, c := range n.Content {
			l = append(l, convert(c))
		}
		v = l
	case yaml.AliasNode:
		return convert(n.Alias)
	default:
		v = n.Value
	}
	if !strings.HasPrefix(n.Tag, "!") || strings.HasPrefix(n.Tag, "!!") {
		return v
	}
	switch fn := n.Tag[1:]; fn {
	case "Ref", "Condition":
		return map[string]any{fn: v}
	case "GetAtt":
		if s, ok := v.(string); ok {
			res, attr, _ := strings.Cut(s, ".")
			v = []any{res, attr}
		}
		return map[string]any{"Fn::GetAtt": v}
	default:
		return map[string]any{"Fn::" + fn: v}
	}
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

// Stack is the template evaluated for one set of parameter values.
type Stack struct {
	Params     map[string]string
	Conditions map[string]bool
	// Resources and Outputs present (their Condition true), fully evaluated.
	Resources map[string]map[string]any
	Outputs   map[string]map[string]any
}

type evaluator struct {
	t       *Template
	params  map[string]string
	conds   map[string]bool
	busy    map[string]bool
	present map[string]bool
}

// Evaluate checks the parameter values (overrides on top of the defaults) against their
// constraints and the Rules, evaluates every condition, and then every present resource.
func (t *Template) Evaluate(overrides map[string]string) (*Stack, error) {
	e := &evaluator{t: t, params: map[string]string{}, conds: map[string]bool{}, busy: map[string]bool{}, present: map[string]bool{}}
	for name := range overrides {
		if _, ok := t.Parameters[name]; !ok {
			return nil, fmt.Errorf("no parameter %s", name)
		}
	}
	for name, p := range t.Parameters {
		v, ok := overrides[name]
		if !ok {
			d, has := p["Default"]
			if !has {
				return nil, fmt.Errorf("parameter %s has no default: give a value", name)
			}
			v = fmt.Sprint(d)
		}
		if err := checkParam(name, p, v); err != nil {
			return nil, err
		}
		e.params[name] = v
	}
	for _, name := range SortedKeys(t.Rules) {
		if err := e.rule(name, asMap(t.Rules[name])); err != nil {
			return nil, err
		}
	}
	for name := range t.Conditions {
		if _, err := e.cond(name); err != nil {
			return nil, err
		}
	}
	for name, r := range t.Resources {
		ok := true
		if c, has := r["Condition"]; has {
			var err error
			if ok, err = e.cond(fmt.Sprint(c)); err != nil {
				return nil, fmt.Errorf("resource %s: %w", name, err)
			}
		}
		e.present[name] = ok
	}
	s := &Stack{Params: e.params, Conditions: e.conds, Resources: map[string]map[string]any{}, Outputs: map[string]map[string]any{}}
	for name, r := range t.Resources {
		if !e.present[name] {
			continue
		}
		v, err := e.eval(r)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", name, err)
		}
		s.Resources[name] = asMap(v)
	}
	for name, o := range t.Outputs {
		if c, has := o["Condition"]; has {
			if ok, err := e.cond(fmt.Sprint(c)); err != nil || !ok {
				if err != nil {
					return nil, fmt.Errorf("output %s: %w", name, err)
				}
				continue
			}
		}
		v, err := e.eval(o)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		s.Outputs[name] = asMap(v)
	}
	return s, nil
}

func checkParam(name string, p map[string]any, v string) error {
	if allowed, ok := p["AllowedValues"].([]any); ok {
		found := false
		for _, a := range allowed {
			found = found || fmt.Sprint(a) == v
		}
		if !found {
			return fmt.Errorf("parameter %s=%q is not one of %v", name, v, allowed)
		}
	}
	if pat, ok := p["AllowedPattern"].(string); ok {
		re, err := regexp.Compile(pat)
		if err != nil {
			return fmt.Errorf("parameter %s: AllowedPattern %q: %w", name, pat, err)
		}
		// CloudFormation matches the whole value.
		if loc := re.FindStringIndex(v); loc == nil || loc[0] != 0 || loc[1] != len(v) {
			return fmt.Errorf("parameter %s=%q does not match %s", name, v, pat)
		}
	}
	if p["Type"] == "Number" {
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("parameter %s=%q is not a number", name, v)
		}
		for key, bad := range map[string]func(float64) bool{
			"MinValue": func(m float64) bool { return n < m }, "MaxValue": func(m float64) bool { return n > m },
		} {
			if s, ok := p[key]; ok {
				if m, err := strconv.ParseFloat(fmt.Sprint(s), 64); err == nil && bad(m) {
					return fmt.Errorf("parameter %s=%s is outside its %s %v", name, v, key, s)
				}
			}
		}
	}
	return nil
}

// rule applies one entry of the Rules section: when its RuleCondition holds, every Assert must.
func (e *evaluator) rule(name string, r map[string]any) error {
	if c, ok := r["RuleCondition"]; ok {
		v, err := e.boolOf(c)
		if err != nil || !v {
			return err
		}
	}
	for _, a := range r["Assertions"].([]any) {
		v, err := e.boolOf(asMap(a)["Assert"])
		if err != nil {
			return fmt.Errorf("rule %s: %w", name, err)
		}
		if !v {
			return fmt.Errorf("rule %s: %s", name, asMap(a)["AssertDescription"])
		}
	}
	return nil
}

func (e *evaluator) boolOf(expr any) (bool, error) {
	v, err := e.eval(expr)
	if err != nil {
		return false, err
	}
	switch v {
	case true, "true":
		return true, nil
	case false, "false":
		return false, nil
	}
	return false, fmt.Errorf("%v is not a boolean", v)
}

func (e *evaluator) cond(name string) (bool, error) {
	if v, ok := e.conds[name]; ok {
		return v, nil
	}
	expr, ok := e.t.Conditions[name]
	if !ok {
		return false, fmt.Errorf("no condition %s", name)
	}
	if e.busy[name] {
		return false, fmt.Errorf("condition %s refers to itself", name)
	}
	e.busy[name] = true
	v, err := e.boolOf(expr)
	if err != nil {
		return false, fmt.Errorf("condition %s: %w", name, err)
	}
	e.conds[name] = v
	return v, nil
}

func (e *evaluator) eval(v any) (any, error) {
	switch x := v.(type) {
	case []any:
		out := []any{}
		for _, item := range x {
			r, err := e.eval(item)
			if err != nil {
				return nil, err
			}
			if r != noValue {
				out = append(out, r)
			}
		}
		return out, nil
	case map[string]any:
		if len(x) == 1 {
			for k, arg := range x {
				if k == "Ref" || k == "Condition" || strings.HasPrefix(k, "Fn::") {
					return e.fn(k, arg)
				}
			}
		}
		out := map[string]any{}
		for k, item := range x {
			r, err := e.eval(item)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			if r != noValue {
				out[k] = r
			}
		}
		return out, nil
	default:
		return v, nil
	}
}

func (e *evaluator) ref(name string) (any, error) {
	if name == "AWS::NoValue" {
		return noValue, nil
	}
	if v, ok := Pseudo[name]; ok {
		return v, nil
	}
	if v, ok := e.params[name]; ok {
		return v, nil
	}
	present, ok := e.present[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("Ref to %s: no such parameter or resource", name)
	case !present:
		return nil, fmt.Errorf("Ref to %s, which its condition leaves out of this stack", name)
	}
	return "<" + name + ">", nil
}

func (e *evaluator) getAtt(res, attr string) (any, error) {
	present, ok := e.present[res]
	switch {
	case !ok:
		return nil, fmt.Errorf("GetAtt %s.%s: no such resource", res, attr)
	case !present:
		return nil, fmt.Errorf("GetAtt %s.%s: its condition leaves it out of this stack", res, attr)
	}
	return "<" + res + "." + attr + ">", nil
}

var subVar = regexp.MustCompile(`\$\{([^}]+)\}`)

func (e *evaluator) fn(name string, arg any) (any, error) {
	if name == "Condition" {
		return e.cond(fmt.Sprint(arg))
	}
	if name == "Ref" {
		return e.ref(fmt.Sprint(arg))
	}
	if name == "Fn::If" { // only the chosen branch is evaluated
		l, ok := arg.([]any)
		if !ok || len(l) != 3 {
			return nil, errors.New("Fn::If needs [condition, then, else]")
		}
		c, err := e.cond(fmt.Sprint(l[0]))
		if err != nil {
			return nil, err
		}
		if c {
			return e.eval(l[1])
		}
		return e.eval(l[2])
	}
	if name == "Fn::GetAtt" {
		l, ok := arg.([]any)
		if !ok || len(l) != 2 {
			return nil, errors.New("Fn::GetAtt needs [resource, attribute]")
		}
		return e.getAtt(fmt.Sprint(l[0]), fmt.Sprint(l[1]))
	}
	if name == "Fn::Sub" {
		return e.sub(arg)
	}
	a, err := e.eval(arg)
	if err != nil {
		return nil, err
	}
	l, _ := a.([]any)
	switch name {
	case "Fn::Equals":
		if len(l) != 2 {
			return nil, errors.New("Fn::Equals needs two values")
		}
		return fmt.Sprint(l[0]) == fmt.Sprint(l[1]), nil
	case "Fn::Not":
		if len(l) != 1 {
			return nil, errors.New("Fn::Not needs one condition")
		}
		b, err := e.boolOf(l[0])
		return !b, err
	case "Fn::And", "Fn::Or":
		and := name == "Fn::And"
		acc := and
		for _, c := range l {
			b, err := e.boolOf(c)
			if err != nil {
				return nil, err
			}
			if and {
				acc = acc && b
			} else {
				acc = acc || b
			}
		}
		return acc, nil
	case "Fn::Select":
		if len(l) != 2 {
			return nil, errors.New("Fn::Select needs [index, list]")
		}
		i, err := strconv.Atoi(fmt.Sprint(l[0]))
		list, ok := l[1].([]any)
		if err != nil || !ok || i < 0 || i >= len(list) {
			return nil, fmt.Errorf("Fn::Select %v of %v: out of range", l[0], l[1])
		}
		return list[i], nil
	case "Fn::Split":
		if len(l) != 2 {
			return nil, errors.New("Fn::Split needs [delimiter, string]")
		}
		out := []any{}
		for _, p := range strings.Split(fmt.Sprint(l[1]), fmt.Sprint(l[0])) {
			out = append(out, p)
		}
		return out, nil
	case "Fn::Base64":
		return base64.StdEncoding.EncodeToString([]byte(fmt.Sprint(a))), nil
	case "Fn::Join":
		list, ok := l[1].([]any)
		if len(l) != 2 || !ok {
			return nil, errors.New("Fn::Join needs [delimiter, list]")
		}
		parts := make([]string, len(list))
		for i, p := range list {
			parts[i] = fmt.Sprint(p)
		}
		return strings.Join(parts, fmt.Sprint(l[0])), nil
	}
	return nil, fmt.Errorf("%s is not evaluated here", name)
}

// sub is Fn::Sub: "${Name}" is a Ref, "${Res.Attr}" a GetAtt, "${!x}" the literal "${x}"; the
// list form's map names more variables.
func (e *evaluator) sub(arg any) (any, error) {
	var src string
	vars := map[string]any{}
	switch a := arg.(type) {
	case string:
		src = a
	case []any:
		if len(a) != 2 {
			return nil, errors.New("Fn::Sub needs a string or [string, variables]")
		}
		src = fmt.Sprint(a[0])
		m, err := e.eval(a[1])
		if err != nil {
			return nil, err
		}
		vars = asMap(m)
	}
	var failed error
	out := subVar.ReplaceAllStringFunc(src, func(m string) string {
		name := m[2 : len(m)-1]
		if strings.HasPrefix(name, "!") {
			return "${" + name[1:] + "}"
		}
		var v any
		var err error
		if x, ok := vars[name]; ok {
			v = x
		} else if res, attr, dotted := strings.Cut(name, "."); dotted && !strings.HasPrefix(name, "AWS::") {
			v, err = e.getAtt(res, attr)
		} else {
			v, err = e.ref(name)
		}
		if err != nil && failed == nil {
			failed = err
		}
		return fmt.Sprint(v)
	})
	return out, failed
}
