package build

import "testing"

func TestNormalizeRepoURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://github.com/acme/shop":                         "https://github.com/acme/shop",
		"https://github.com/acme/shop.git":                     "https://github.com/acme/shop",
		"https://x-access-token:ghp_secret@github.com/a/b.git": "https://github.com/a/b",
		"git@github.com:acme/shop.git":                         "https://github.com/acme/shop",
		"ssh://git@github.com/acme/shop.git":                   "https://github.com/acme/shop",
		"/work/repos/shop/":                                    "file:///work/repos/shop",
	} {
		if got := normalizeRepoURL(in); got != want {
			t.Errorf("normalizeRepoURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPackageCounts(t *testing.T) {
	if got := packageCounts(map[string]int{"pypi": 8, "deb": 41, "generic": 1}); got != "1 generic, 8 pypi, 41 deb" {
		t.Errorf("packageCounts = %q", got)
	}
	if got := packageCounts(map[string]int{}); got != "no packages found" {
		t.Errorf("packageCounts(empty) = %q", got)
	}
}
