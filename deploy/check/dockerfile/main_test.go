package main

import (
	"os"
	"strings"
	"testing"
)

func readDockerfile(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestCheck_Dockerfile(t *testing.T) {
	d := parse(readDockerfile(t))
	if problems := check(d); len(problems) != 0 {
		t.Errorf("check(Dockerfile) = %q, want no problem", problems)
	}
	cmd := d.buildCommand("/tmp/x/sidecar")
	for _, want := range []string{"CGO_ENABLED=0 go build", "-o /tmp/x/sidecar ./cmd/sidecar", "version.Version=${VERSION}"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("buildCommand = %q, want %q in it", cmd, want)
		}
	}
	if strings.Contains(cmd, "/out/") || strings.Contains(cmd, `\`) {
		t.Errorf("buildCommand = %q, want the -o path replaced and lines joined", cmd)
	}
}

// Each edit of the real Dockerfile breaks one rule.
func TestCheck_Edits(t *testing.T) {
	tests := []struct {
		name, old, new, want string
	}{
		{"unpinned build image", "FROM golang:1.26-bookworm AS build", "FROM golang AS build", "pin the image"},
		{"latest runtime image", "static-debian12:nonroot", "static-debian12:latest", "pin the image"},
		{"cgo", "CGO_ENABLED=0 go build", "go build", "without CGO_ENABLED=0"},
		{"no trimpath", "go build -trimpath", "go build", "without -trimpath"},
		{"version not stamped", "-X github.com/symcache/symcache/version.Commit=${COMMIT} ", "", "does not stamp github.com/symcache/symcache/version.Commit"},
		{"undeclared ARG", "ARG DATE=\"\"\n", "", "$DATE, which no ARG"},
		{"ARG after the build", "ARG DATE=\"\"\n", "", "$DATE"},
		{"binary not copied", "COPY --from=build /out/sidecar /sidecar", "COPY --from=build /out/other /sidecar", "does not COPY --from"},
		{"root", "USER nonroot:nonroot", "USER root", "runs as root"},
		{"no user", "USER nonroot:nonroot\n", "", "runs as root"},
		{"port mismatch", "EXPOSE 8080", "EXPOSE 9090", "does not include SYMCACHE_ADDR's port 8080"},
		{"no address", "ENV SYMCACHE_ADDR=0.0.0.0:8080\n", "", "sets no ENV SYMCACHE_ADDR"},
		{"shell-form healthcheck", `CMD ["/sidecar", "healthcheck"]`, `CMD /sidecar healthcheck`, "exec form"},
		{"healthcheck of something else", `CMD ["/sidecar", "healthcheck"]`, `CMD ["/bin/curl", "-f", "http://127.0.0.1:8080/readyz"]`, "HEALTHCHECK"},
		{"no healthcheck", "HEALTHCHECK --interval", "# HEALTHCHECK --interval", "0 HEALTHCHECK instructions"},
		{"shell-form entrypoint", `ENTRYPOINT ["/sidecar"]`, `ENTRYPOINT /sidecar`, "ENTRYPOINT /sidecar: want exec form"},
		{"not distroless", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:12-slim", "not distroless static"},
	}
	src := readDockerfile(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(src, tt.old) {
				t.Fatalf("the Dockerfile lacks %q: fix the test's edit", tt.old)
			}
			problems := check(parse(strings.Replace(src, tt.old, tt.new, 1)))
			for _, p := range problems {
				if strings.Contains(p, tt.want) {
					return
				}
			}
			t.Errorf("check(edited Dockerfile) = %q, want a problem saying %q", problems, tt.want)
		})
	}
}

func TestParse(t *testing.T) {
	d := parse("# syntax=docker/dockerfile:1\nARG X=1\nFROM a:1 AS one\nRUN echo \\\n  # a comment inside\n  two \\\n\n  three\nfrom one\n")
	var got []string
	for _, in := range d.instructions {
		got = append(got, strings.Join([]string{in.cmd, in.args}, "|"))
	}
	want := []string{"ARG|X=1", "FROM|a:1 AS one", "RUN|echo   two   three", "FROM|one"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("parse = %q, want %q", got, want)
	}
	if d.stages != 2 || d.names["one"] != 0 || d.instructions[0].stage != -1 || d.instructions[2].stage != 0 || d.instructions[3].stage != 1 {
		t.Errorf("stages = %d, names %v, instructions %+v", d.stages, d.names, d.instructions)
	}
}
