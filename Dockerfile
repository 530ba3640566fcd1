# syntax=docker/dockerfile:1
# mvgen as a `scratch` image holding one static-pie binary. TLS roots and the config flavors are
# compiled into it; DNS needs only the /etc/resolv.conf and /etc/hosts the runtime injects.
# tests/e2e/static_binary.rs runs the same layout in a chroot (no Docker engine is needed for that).
# Needs BuildKit (the default builder since Docker 23; older: DOCKER_BUILDKIT=1 docker build .): the
# build step uses cache mounts (RUN --mount), which the legacy builder refuses.
# deploy/compose.yaml runs it as two replicas behind nginx with PostgreSQL and an S3 store.

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
# The target dir is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build-static --locked --bin mvgen \
    && mkdir -p /out/data \
    && cp target/x86_64-unknown-linux-gnu/release/mvgen /out/mvgen

FROM scratch
COPY --from=build /out/mvgen /mvgen
# scratch has no directory a non-root user may write to: the output dir comes from the build stage,
# owned by the runtime user. A named volume mounted here starts with that ownership.
COPY --from=build --chown=65532:65532 /out/data /data
USER 65532:65532
ENV MVGEN_ADDR=0.0.0.0:8000 \
    MV_OUTPUT_DIR=/data
EXPOSE 8000
VOLUME ["/data"]
# No shell or curl in scratch: the binary checks itself (GET /health on MVGEN_ADDR, via loopback).
HEALTHCHECK --interval=30s --timeout=5s --start-period=5s --retries=3 CMD ["/mvgen", "healthcheck"]
ENTRYPOINT ["/mvgen"]
CMD ["serve"]
