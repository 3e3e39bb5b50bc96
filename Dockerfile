# syntax=docker/dockerfile:1
# symcache sidecar image. Build (values are stamped into `sidecar version`):
#   docker build -t symcache:0.2.0 --build-arg VERSION=0.2.0 \
#     --build-arg COMMIT="$(git rev-parse HEAD)" --build-arg DATE="$(date -u +%Y-%m-%dT%H:%M:%SZ)" .
# No engine runs where this project is developed: scripts/check-dockerfile.sh
# (make check-dockerfile) lints this file and runs its `go build` line as is.

# Build: a static binary, no cgo, paths trimmed, version stamped.
FROM golang:1.26-bookworm AS build
ARG VERSION=dev
ARG COMMIT=""
ARG DATE=""
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath \
      -ldflags "-s -w -X github.com/symcache/symcache/version.Version=${VERSION} -X github.com/symcache/symcache/version.Commit=${COMMIT} -X github.com/symcache/symcache/version.Date=${DATE}" \
      -o /out/sidecar ./cmd/sidecar

# Run: distroless static (no shell, no package manager), non-root (uid 65532),
# listening on all interfaces of the container. In a Kubernetes pod next to an
# app, set SYMCACHE_ADDR=127.0.0.1:8080 instead (deploy/kubernetes/).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sidecar /sidecar
ENV SYMCACHE_ADDR=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
# `sidecar healthcheck` GETs /readyz on SYMCACHE_ADDR's port (on 127.0.0.1):
# healthy once every market can be served. The first fetch from Binance can
# take a while, hence the start period. Set the address with SYMCACHE_ADDR,
# not -addr, or the check probes the wrong port. Kubernetes ignores
# HEALTHCHECK: deploy/kubernetes/ runs the same command as exec probes.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 CMD ["/sidecar", "healthcheck"]
ENTRYPOINT ["/sidecar"]
