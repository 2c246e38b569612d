# One image, five services: /usr/local/bin/ingest, harvester, archiver, auditor and ledger
# (the Deployments in deploy/k8s choose with `command`), and the operator
# command /usr/local/bin/faceharvest (kubectl exec or a Job). Static binaries on a
# distroless base, running as the non-root user 65532.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The build context has no .git (.dockerignore), so the version and revision
# that --version and faceharvest_build_info report are passed in (make image
# does: git describe, git rev-parse).
ARG VERSION=""
ARG REVISION=""
RUN CGO_ENABLED=0 go build -trimpath \
    -ldflags="-s -w -X github.com/faceharvest/faceharvest/pkg/buildinfo.version=${VERSION} -X github.com/faceharvest/faceharvest/pkg/buildinfo.revision=${REVISION}" \
    -o /out/ ./cmd/ingest ./cmd/harvester ./cmd/archiver ./cmd/auditor ./cmd/ledger ./cmd/faceharvest

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/ingest /out/harvester /out/archiver /out/auditor /out/ledger /out/faceharvest /usr/local/bin/
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/ingest"]
