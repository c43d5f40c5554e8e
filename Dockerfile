# syntax=docker/dockerfile:1
# One small, non-root image of the licenseops binary for every role
# (api, worker, scheduler, migrate, token …), chosen by the command.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
# Static (no cgo: lib/pq and go-redis are pure Go), so it runs on distroless/static.
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/licenseops ./cmd/licenseops

# CA certificates (Microsoft Graph over TLS), tzdata (cleanup policies' time
# zones) and the nonroot user (65532) come with the base image; no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/licenseops /usr/local/bin/licenseops
USER nonroot:nonroot
# api (LICENSEOPS_ADDR) and a worker's /metrics (LICENSEOPS_METRICS_ADDR).
EXPOSE 8080 9091
ENTRYPOINT ["/usr/local/bin/licenseops"]
CMD ["all"]
