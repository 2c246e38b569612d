# One image, three entrypoints: /usr/local/bin/ingest, harvester and archiver
# (the Deployments in deploy/k8s choose with `command`). Static binaries on a
# distroless base, running as the non-root user 65532.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/ ./cmd/ingest ./cmd/harvester ./cmd/archiver

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingest /out/harvester /out/archiver /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ingest"]
