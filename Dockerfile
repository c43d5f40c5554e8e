# One small, non-root image of the licenseops binary for every role
# (api, worker, migrate, …), chosen by the command.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/licenseops ./cmd/licenseops

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/licenseops /usr/local/bin/licenseops
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/licenseops"]
CMD ["all"]
