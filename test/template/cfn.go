// Package template checks infra/template.yml's conditions, grants and rules, evaluated by
// dev/cfn (the evaluator the local pipeline also resolves the template with).
package template

import (
	"sort"

	"github.com/acme/webapp-pipeline/dev/cfn"
)

type (
	// Template is dev/cfn's parsed template.
	Template = cfn.Template
	// Stack is dev/cfn's evaluated stack.
	Stack = cfn.Stack
)

// pseudo is dev/cfn's pseudo parameters (the same map).
var pseudo = cfn.Pseudo

// Load parses a template file (dev/cfn).
func Load(path string) (*Template, error) { return cfn.Load(path) }

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
