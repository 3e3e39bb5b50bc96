package importgraph

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// layering is the rule every failure message quotes.
const layering = "cmd/* → httpapi → {root, forward}; root → {l1, l2, fetch, disk, rules, version, changes} → exchangeinfo; forward → fetch; cmd/sidecar → demo → exchangeinfo"

// rule is what one package may import.
type rule struct {
	// may lists the project packages its non-test files may import, by path
	// below the module ("" is the root). Its tests may import the package
	// itself, anything reachable through may, and the test support packages.
	may []string
	// std: no module outside the standard library, in its files and its
	// tests (project packages as may says).
	std bool
	why string // the rule in words, for the failure message
}

// app is every package below cmd/*: what a command, the load harness and the
// chaos test may wire together.
var app = []string{"", "httpapi", "forward", "l1", "l2", "fetch", "disk", "rules", "version", "changes", "exchangeinfo", "internal/logthrottle", "internal/bounded", "demo"}

// testSupport are the packages tests import and non-test code does not
// (cmd/replay's fetchtest aside, see below).
var testSupport = []string{"internal/testutil", "internal/fixtures", "fetch/fetchtest", "l2/l2test"}

// layers is the table: every package of the module and what it may import.
var layers = map[string]rule{
	"exchangeinfo": {std: true, why: "exchangeinfo is the domain and imports the standard library only"},
	"version":      {why: "version imports no project package"},

	// Below the root: the tiers, the upstream client, the state file, the
	// trading rules. Each knows the domain at most.
	"l1":    {may: []string{"exchangeinfo"}, why: "l1 is below the root: it imports exchangeinfo at most"},
	"l2":    {may: []string{"internal/bounded"}, why: "l2 is below the root and knows nothing of Binance: it imports internal/bounded at most"},
	"fetch": {may: []string{"exchangeinfo", "internal/bounded"}, why: "fetch is below the root: it imports exchangeinfo and internal/bounded at most"},
	"disk":  {may: []string{"exchangeinfo", "internal/bounded"}, why: "disk is below the root: it imports exchangeinfo and internal/bounded at most"},
	"rules": {may: []string{"exchangeinfo"}, why: "rules is below the root: it imports exchangeinfo at most"},
	// The diff of two snapshots: the root records a market's
	// changes when a newer snapshot replaces it, httpapi serves them.
	"changes": {may: []string{"exchangeinfo"}, why: "changes is below the root: it imports exchangeinfo at most"},

	// Beside the root, under httpapi: the requests the cache does not
	// answer, sent on to Binance through fetch's Gate.
	"forward": {may: []string{"fetch", "exchangeinfo"}, why: "forward imports fetch and exchangeinfo at most"},

	"": {
		// changes: the diff the root runs when a newer snapshot replaces a
		// market's, and the change log it keeps.
		may: []string{"l1", "l2", "fetch", "disk", "rules", "version", "changes", "exchangeinfo"},
		why: "the root imports only the packages below it",
	},
	"httpapi": {
		// fetch: the upstream counters /metrics and /admin/status show;
		// forward: the forwarded prefixes and the forwarder's counters;
		// changes: Change and ParseKind for the changes feed (not
		// imported yet).
		may: []string{"", "exchangeinfo", "fetch", "forward", "rules", "version", "changes"},
		why: "httpapi imports the root and packages below it, never cmd/*",
	},

	// The recorded answers built into the binary and their replay, the
	// upstream of sidecar -demo: beside fetch, knowing the domain only.
	"demo": {may: []string{"exchangeinfo"}, why: "demo imports exchangeinfo at most"},

	"cmd/sidecar": {may: app, why: "a command may import anything but another command"},
	// A command that serves the recordings with fetchtest's Handler: the
	// one non-test importer of a test support package.
	"cmd/replay": {may: []string{"fetch/fetchtest"}, why: "cmd/replay imports fetchtest only"},
	"bench":      {may: app, why: "the load harness may import anything but a command"},
	"bench/load": {why: "the load generator imports no project package"},
	"chaos":      {may: app, why: "the chaos test may import anything but a command"},

	// Test support, at the bottom so that any package's tests can use it.
	"internal/testutil":    {std: true, why: "internal/testutil imports the standard library only"},
	"internal/logthrottle": {std: true, why: "internal/logthrottle imports the standard library only"},
	"internal/bounded":     {std: true, why: "internal/bounded imports the standard library only"},
	"internal/fixtures":    {std: true, why: "internal/fixtures imports the standard library only"},
	"fetch/fetchtest":      {may: []string{"internal/fixtures"}, std: true, why: "fetchtest imports the standard library and internal/fixtures only"},
	"l2/l2test":            {may: []string{"internal/testutil"}, why: "l2test imports internal/testutil at most"},
	"internal/importgraph": {std: true, why: "this test imports the standard library only"},
}

// pkg is what go list -json tells of a package.
type pkg struct {
	ImportPath   string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

func TestLayers(t *testing.T) {
	root, module := moduleRoot(t)
	pkgs := list(t, root)
	name := func(path string) string { // "" for the root, "l2" for module+"/l2"
		return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
	}
	inModule := func(path string) bool { return path == module || strings.HasPrefix(path, module+"/") }

	seen := map[string]bool{}
	for _, p := range pkgs {
		self := name(p.ImportPath)
		seen[self] = true
		if p.Error != nil {
			t.Errorf("%s: go list: %s", show(self), p.Error.Err)
		}
		r, ok := layers[self]
		if !ok {
			t.Errorf("%s is not in the table of layers: add it, with the project packages it may import", show(self))
			continue
		}
		for _, imp := range p.Imports {
			switch {
			case inModule(imp):
				if !slices.Contains(r.may, name(imp)) {
					t.Errorf("%s imports %s, against the rule: %s (layering: %s)", show(self), show(name(imp)), r.why, layering)
				}
			case r.std && !isStd(imp):
				t.Errorf("%s imports %s, outside the standard library, against the rule: %s", show(self), imp, r.why)
			}
		}
		reach := reachable(self)
		reach[self] = true // an external test package imports its package
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			switch {
			case inModule(imp):
				if n := name(imp); !reach[n] && !slices.Contains(testSupport, n) {
					t.Errorf("tests of %s import %s, against the rule: a package's tests import only the package, what it may import directly or not (%s), and test support (%s) (layering: %s)",
						show(self), show(n), r.why, strings.Join(testSupport, ", "), layering)
				}
			case r.std && !isStd(imp):
				t.Errorf("tests of %s import %s, outside the standard library, against the rule: %s", show(self), imp, r.why)
			}
		}
	}
	for self := range layers {
		if !seen[self] {
			t.Errorf("the table of layers names %s, which go list does not find: remove it", show(self))
		}
	}
}

// TestTable checks the table itself: every package it names in may is in it,
// and following may never leads back to where it started or up into cmd/*.
func TestTable(t *testing.T) {
	for self, r := range layers {
		for _, imp := range r.may {
			if _, ok := layers[imp]; !ok {
				t.Errorf("%s may import %s, which the table does not list", show(self), show(imp))
			}
			if strings.HasPrefix(imp, "cmd/") {
				t.Errorf("%s may import %s, but nothing imports a command", show(self), show(imp))
			}
			if reachable(imp)[self] {
				t.Errorf("%s may import %s, which may import %s: a cycle", show(self), show(imp), show(self))
			}
		}
	}
	for self := range layers {
		if reachable(self)["httpapi"] && !strings.HasPrefix(self, "cmd/") && self != "bench" && self != "chaos" {
			t.Errorf("%s may reach httpapi: only cmd/*, bench, chaos and tests may", show(self))
		}
	}
}

// reachable returns the packages self may import directly or not.
func reachable(self string) map[string]bool {
	seen := map[string]bool{}
	var walk func(string)
	walk = func(p string) {
		for _, imp := range layers[p].may {
			if !seen[imp] {
				seen[imp] = true
				walk(imp)
			}
		}
	}
	walk(self)
	return seen
}

// show names a package as the table does, with the root as "root".
func show(name string) string {
	if name == "" {
		return "root"
	}
	return name
}

// isStd reports whether path is a standard library package: its first
// element has no dot, as no module path's does.
func isStd(path string) bool {
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// moduleRoot returns the folder of the go.mod that holds this test, and its
// module path.
func moduleRoot(t *testing.T) (dir, module string) {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == "/dev/null" || gomod == "NUL" {
		t.Fatalf("go env GOMOD = %q: not in a module", gomod)
	}
	out, err = exec.Command("go", "list", "-m", "-f", "{{.Path}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	return filepath.Dir(gomod), strings.TrimSpace(string(out))
}

// list returns every package of the module at root, as go list -e -json ./...
// sees it (a package that does not compile is listed too, with its Error).
func list(t *testing.T, root string) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Imports,TestImports,XTestImports,Error", "./...")
	cmd.Dir = root
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list ./... in %s: %v\n%s", root, err, stderr.Bytes())
	}
	var pkgs []pkg
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatalf("go list ./... in %s found no package", root)
	}
	return pkgs
}
