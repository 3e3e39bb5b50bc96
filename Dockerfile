# syntax=docker/dockerfile:1
# Build: a static binary, no cgo, paths trimmed.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/sidecar ./cmd/sidecar

# Run: distroless static, non-root, listening on all interfaces of the pod.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/sidecar /sidecar
ENV SYMCACHE_ADDR=0.0.0.0:8080
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/sidecar"]
