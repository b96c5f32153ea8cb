# syntax=docker/dockerfile:1
#
# Floe broker image: a static binary (Pebble is pure Go with CGO_ENABLED=0)
# on a distroless base, running as the non-root user 65532.
#
#   docker build -t floe .
#   docker run -v floe-data:/data -p 9249-9253:9249-9253 -e FLOE_ADVERTISED_HOST=localhost floe
#
# Settings come from FLOE_* variables, flags after the image name, or a
# config file (FLOE_CONFIG); see `docker run --rm floe --help`.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION} AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
# Modules first, so that this layer stays cached until go.mod or go.sum
# change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/floe ./cmd/floe \
    && mkdir -p /out/data

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/floe /usr/local/bin/floe
# An empty /data owned by the runtime user: a new named volume takes this
# ownership. (On Kubernetes, fsGroup 65532 does the same for the claim.)
COPY --from=build --chown=65532:65532 /out/data /data
ENV FLOE_DATA_DIR=/data
VOLUME ["/data"]
# gRPC, discovery, producer, consumer, metrics.
EXPOSE 9249 9250 9251 9252 9253
USER 65532:65532
# floe is PID 1 and handles SIGTERM itself (graceful shutdown, bounded by
# FLOE_SHUTDOWN_TIMEOUT, 30s by default: give `docker stop` a longer -t).
ENTRYPOINT ["/usr/local/bin/floe"]
