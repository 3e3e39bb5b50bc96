// Command dockerfile checks symcache's Dockerfile for what generic linters do
// not know: pinned base images; a build stage whose `go build` is static,
// trimmed and stamps the version from declared ARGs; and a runtime stage that
// copies that binary, runs it as a non-root user, exposes the port of
// SYMCACHE_ADDR, and health-checks it with `sidecar healthcheck` in exec form
// (the distroless image has no shell).
//
//	go run ./dockerfile ../../Dockerfile                        # check
//	go run ./dockerfile -build-out /tmp/x/sidecar ../../Dockerfile  # check, then print the go build command
//
// With -build-out it prints the build stage's `go build` command exactly as
// the Dockerfile has it, its -o path replaced, for scripts/check-dockerfile.sh
// to run: the Dockerfile and the check cannot drift apart.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strings"
)

func main() {
	buildOut := flag.String("build-out", "", "print the go build command with its -o path replaced by this one")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: dockerfile [-build-out PATH] Dockerfile")
		os.Exit(2)
	}
	b, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockerfile:", err)
		os.Exit(1)
	}
	d := parse(string(b))
	problems := check(d)
	for _, p := range problems {
		fmt.Fprintf(os.Stderr, "%s:%s\n", flag.Arg(0), p)
	}
	if len(problems) > 0 {
		os.Exit(1)
	}
	if *buildOut != "" {
		fmt.Println(d.buildCommand(*buildOut))
		return
	}
	fmt.Printf("dockerfile: %d instructions in %d stages: ok\n", len(d.instructions), d.stages)
}

// What the image and the program fix.
const (
	versionPkg = "github.com/symcache/symcache/version"
	addrEnv    = "SYMCACHE_ADDR"
)

type instruction struct {
	line  int    // where it starts, from 1
	cmd   string // FROM, RUN, ... in upper case
	args  string // the rest, continuation lines joined
	stage int    // from 0; -1 before the first FROM
}

type dockerfile struct {
	instructions []instruction
	stages       int
	names        map[string]int // stage name → index
}

// parse reads instructions as Docker does: comment lines dropped (also
// inside a continuation), lines ending in a backslash joined to the next.
func parse(src string) *dockerfile {
	d := &dockerfile{names: map[string]int{}}
	var cur strings.Builder
	start := 0
	sc := bufio.NewScanner(strings.NewReader(src))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || trimmed == "" {
			continue // an empty line inside a continuation is skipped too
		}
		if cur.Len() == 0 {
			start = n
		}
		if body, ok := strings.CutSuffix(strings.TrimRight(line, " \t"), `\`); ok {
			cur.WriteString(body)
			continue
		}
		cur.WriteString(line)
		d.add(start, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		d.add(start, cur.String())
	}
	return d
}

func (d *dockerfile) add(line int, text string) {
	cmd, args, _ := strings.Cut(strings.TrimSpace(text), " ")
	in := instruction{line: line, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args), stage: d.stages - 1}
	if in.cmd == "FROM" {
		in.stage = d.stages
		f := strings.Fields(in.args)
		if len(f) >= 3 && strings.EqualFold(f[len(f)-2], "AS") {
			d.names[strings.ToLower(f[len(f)-1])] = d.stages
		}
		d.stages++
	}
	d.instructions = append(d.instructions, in)
}

func (d *dockerfile) stage(i int) []instruction {
	var out []instruction
	for _, in := range d.instructions {
		if in.stage == i {
			out = append(out, in)
		}
	}
	return out
}

// goBuild is the RUN of the build stage that runs go build.
func (d *dockerfile) goBuild() (instruction, bool) {
	for _, in := range d.instructions {
		if in.cmd == "RUN" && strings.Contains(in.args, "go build") {
			return in, true
		}
	}
	return instruction{}, false
}

var outFlag = regexp.MustCompile(`(^|\s)-o(\s+|=)(\S+)`)

// buildCommand is the go build RUN's command with its -o path replaced.
func (d *dockerfile) buildCommand(out string) string {
	in, _ := d.goBuild()
	return outFlag.ReplaceAllString(in.args, "${1}-o${2}"+out)
}

var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

// check returns one "line: problem" string per problem.
func check(d *dockerfile) []string {
	var problems []string
	bad := func(line int, format string, args ...any) {
		problems = append(problems, fmt.Sprintf("%d: %s", line, fmt.Sprintf(format, args...)))
	}
	if d.stages < 2 {
		bad(1, "want a build stage and a runtime stage, found %d stage(s)", d.stages)
		return problems
	}
	for _, in := range d.instructions {
		if in.cmd != "FROM" {
			continue
		}
		image := ""
		for _, f := range strings.Fields(in.args) {
			if !strings.HasPrefix(f, "--") {
				image = f
				break
			}
		}
		if _, isStage := d.names[strings.ToLower(image)]; isStage {
			continue
		}
		slash, colon := strings.LastIndex(image, "/"), strings.LastIndex(image, ":")
		if !strings.Contains(image, "@sha256:") && (colon <= slash || strings.HasSuffix(image, ":latest")) {
			bad(in.line, "FROM %s: pin the image to a tag (not latest) or a digest", image)
		}
	}

	// The build stage: a static, trimmed binary with the version stamped.
	build, ok := d.goBuild()
	if !ok {
		bad(1, "no RUN with go build")
		return problems
	}
	args := map[string]bool{}
	for _, in := range d.stage(build.stage) {
		if in.cmd == "ARG" && in.line < build.line {
			for _, a := range strings.Fields(in.args) {
				name, _, _ := strings.Cut(a, "=")
				args[name] = true
			}
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags"} {
		if !strings.Contains(build.args, want) {
			bad(build.line, "go build without %s", want)
		}
	}
	for _, v := range []string{"Version", "Commit", "Date"} {
		if !strings.Contains(build.args, "-X "+versionPkg+"."+v+"=") {
			bad(build.line, "go build does not stamp %s.%s (-X %s.%s=...)", versionPkg, v, versionPkg, v)
		}
	}
	for _, m := range varRef.FindAllStringSubmatch(build.args, -1) {
		if !args[m[1]] {
			bad(build.line, "go build uses $%s, which no ARG of its stage declares before it (it would be empty)", m[1])
		}
	}
	m := outFlag.FindStringSubmatch(build.args)
	if m == nil {
		bad(build.line, "go build without -o PATH")
		return problems
	}
	binOut := m[3]

	// The runtime stage.
	last := d.stages - 1
	if last == build.stage {
		bad(build.line, "the last stage builds: the image would hold the Go toolchain")
		return problems
	}
	var (
		binary, user, addrPort string
		exposed                []string
		seen                   = map[string]int{}
	)
	for _, in := range d.stage(last) {
		seen[in.cmd]++
		f := strings.Fields(in.args)
		switch in.cmd {
		case "FROM":
			if !strings.Contains(in.args, "distroless/static") {
				bad(in.line, "the runtime image is not distroless static: %s", in.args)
			}
		case "COPY":
			from := ""
			var paths []string
			for _, a := range f {
				if v, ok := strings.CutPrefix(a, "--from="); ok {
					from = v
				} else if !strings.HasPrefix(a, "--") {
					paths = append(paths, a)
				}
			}
			idx, named := d.names[strings.ToLower(from)]
			if (named && idx == build.stage || from == fmt.Sprint(build.stage)) && len(paths) == 2 && paths[0] == binOut {
				binary = paths[1]
			}
		case "USER":
			user, _, _ = strings.Cut(in.args, ":")
		case "EXPOSE":
			for _, p := range f {
				port, _, _ := strings.Cut(p, "/")
				exposed = append(exposed, port)
			}
		case "ENV":
			for _, kv := range f {
				if v, ok := strings.CutPrefix(kv, addrEnv+"="); ok {
					_, port, err := net.SplitHostPort(strings.Trim(v, `"`))
					if err != nil {
						bad(in.line, "ENV %s=%s is not host:port", addrEnv, v)
					}
					addrPort = port
				}
			}
		}
	}
	if binary == "" {
		bad(build.line, "the last stage does not COPY --from the build stage's %s", binOut)
	}
	if user == "" || user == "root" || user == "0" {
		bad(1, "the last stage runs as root: want USER nonroot (or a uid other than 0)")
	}
	switch {
	case addrPort == "":
		bad(1, "the last stage sets no ENV %s: the program's default, 127.0.0.1, is unreachable from outside the container", addrEnv)
	case !slices.Contains(exposed, addrPort):
		bad(1, "EXPOSE %v does not include %s's port %s", exposed, addrEnv, addrPort)
	}
	for _, cmd := range []string{"ENTRYPOINT", "HEALTHCHECK", "USER", "EXPOSE"} {
		if seen[cmd] != 1 {
			bad(1, "the last stage has %d %s instructions, want 1", seen[cmd], cmd)
		}
	}
	for _, in := range d.stage(last) {
		switch in.cmd {
		case "ENTRYPOINT":
			if argv, ok := execForm(in.args); !ok || len(argv) == 0 || argv[0] != binary {
				bad(in.line, "ENTRYPOINT %s: want exec form [%q] (the image has no shell)", in.args, binary)
			}
		case "HEALTHCHECK":
			_, cmdArgs, ok := strings.Cut(" "+in.args+" ", " CMD ")
			argv, isExec := execForm(strings.TrimSpace(cmdArgs))
			if !ok || !isExec || len(argv) < 2 || argv[0] != binary || argv[1] != "healthcheck" {
				bad(in.line, "HEALTHCHECK %s: want CMD [%q, \"healthcheck\"] in exec form (the image has no shell)", in.args, binary)
			}
		}
	}
	return problems
}

// execForm decodes a JSON array of strings, as Docker's exec form.
func execForm(s string) ([]string, bool) {
	var argv []string
	if !strings.HasPrefix(strings.TrimSpace(s), "[") || json.Unmarshal([]byte(s), &argv) != nil {
		return nil, false
	}
	return argv, true
}
