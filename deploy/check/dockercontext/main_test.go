package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestCopyContext(t *testing.T) {
	src := t.TempDir()
	for name, body := range map[string]string{
		".dockerignore":             "# comment\n.git\n**/*_test.go\n/sidecar\ndocs\n*.md\n!KEEP.md\n**/testdata\n",
		"go.mod":                    "module x\n",
		"main.go":                   "package main\n",
		"main_test.go":              "package main\n",
		"sidecar":                   "binary",
		"README.md":                 "readme",
		"KEEP.md":                   "kept by an exception",
		"cmd/sidecar/main.go":       "package main\n",
		"cmd/sidecar/sidecar":       "only the root one is ignored",
		"cmd/sidecar/x_test.go":     "package main\n",
		"cmd/sidecar/NOTES.md":      "*.md is anchored at the root",
		"docs/a.txt":                "docs",
		"pkg/testdata/fixture.json": "{}",
		".git/HEAD":                 "ref",
	} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "ctx")
	n, _, err := copyContext(src, out)
	if err != nil {
		t.Fatalf("copyContext: %v", err)
	}
	var got []string
	filepath.WalkDir(out, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(out, path)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	})
	slices.Sort(got)
	want := []string{".dockerignore", "KEEP.md", "cmd/sidecar/NOTES.md", "cmd/sidecar/main.go", "cmd/sidecar/sidecar", "go.mod", "main.go"}
	if !slices.Equal(got, want) || n != len(want) {
		t.Errorf("copyContext copied %d: %q, want %q", n, got, want)
	}
}
