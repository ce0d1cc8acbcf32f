# syntax=docker/dockerfile:1
#
# Multi-stage build for the gateway and the demo upstream used by
# docker-compose.yml. Both final images are distroless "static" (no shell,
# no package manager) and run as the unprivileged nonroot user (UID 65532).
#
#   docker build --target gateway -t gateway .
#   docker build --target demo-service -t demo-service .
#
# compose_test.go checks this file against the code: stages, targets,
# copied paths and the Go version.

FROM golang:1.26 AS build
WORKDIR /src
# Static binaries: the final images have no libc. The image pins
# GOTOOLCHAIN=local; auto lets an older 1.26.x image fetch the patch
# release go.mod asks for instead of failing.
ENV CGO_ENABLED=0 GOTOOLCHAIN=auto
# Dependencies first, so editing code does not re-download modules.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags="-s -w" -o /out/gateway . && \
    go build -trimpath -ldflags="-s -w" -o /out/demo-service ./examples/demo-service

FROM gcr.io/distroless/static-debian12:nonroot AS demo-service
COPY --from=build /out/demo-service /usr/local/bin/demo-service
USER nonroot:nonroot
EXPOSE 9000
ENTRYPOINT ["/usr/local/bin/demo-service"]

# Last stage, so a plain `docker build .` produces the gateway.
FROM gcr.io/distroless/static-debian12:nonroot AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
USER nonroot:nonroot
# 8080 public traffic, 8443 HTTPS (with -tls-listen), 8081 admin
# (/health, /routes, /metrics, dashboard).
EXPOSE 8080 8443 8081
ENTRYPOINT ["/usr/local/bin/gateway"]
