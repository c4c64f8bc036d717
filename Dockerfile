# syntax=docker/dockerfile:1
#
# The wecom-archive worker (and, with the command `serve`, its HTTP gateway).
#
# The Finance SDK (libWeWorkFinanceSdk_C.so) is never baked into this image: Tencent's licence
# does not allow redistributing it, so each user mounts their own copy at /opt/wecom (see
# docker-compose.yml) and WECOM_SDK_LIB points there. Nor is the project's emulator of it in
# here: it is a test double, and a worker that loaded it by mistake would "archive" fake data.
#
# Two ways to build it:
# - the default: the binary is compiled in the `builder` stage (needs the rust:1-bookworm image);
#     docker build -t wecom-archive .
# - `--target prebuilt`: the image takes a binary built on a bookworm host (the same glibc),
#   for machines that cannot pull a Rust image; the build context is a folder holding only that
#   binary, named wecom-archive (scripts/compose-test does this with podman):
#     docker build -t wecom-archive --target prebuilt -f Dockerfile DIR

FROM rust:1-bookworm AS builder
# aws-lc-sys (under aws-lc-rs) compiles AWS-LC's C code with the image's gcc through the cc
# crate; cmake is there for its CMake builder, which some targets and features fall back to.
# No clang: the bindings for Linux x86-64 and aarch64 ship pre-generated.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /build
# The whole workspace, since cargo loads every member's manifest (and the benches, emulator and
# sdk-format crates they name) even to build one package; .dockerignore keeps target/ and the
# real SDK's download folder out.
COPY . .
# Cache mounts keep the crate downloads and compiled dependencies from one build to the next,
# so a source change rebuilds only this package: no dummy-source layer to keep in step with the
# workspace's targets. The binary is copied out because the mounted target/ is not in the layer.
# Only -p wecom-archive: the emulator, which builds a libWeWorkFinanceSdk_C.so, is a
# dev-dependency and so is never built here.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/build/target \
    cargo build --release --locked -p wecom-archive \
 && install -m 0755 target/release/wecom-archive /usr/local/bin/wecom-archive \
 && objcopy --strip-debug /usr/local/bin/wecom-archive
# --strip-debug drops the line tables (most of the release binary's size) and keeps the symbol
# names, so a backtrace still names its functions.

FROM debian:bookworm-slim AS runtime
# Same Debian release as the builder, so the binary finds the glibc it was linked against.
# The real SDK needs only glibc and libz (its OpenSSL, curl and C++ runtime are linked in);
# ca-certificates is for amqps:// brokers.
# apt's lists, caches and downloaded packages go in the same layer (a base image without
# Debian's docker-clean settings keeps them otherwise, about 90 MB).
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates zlib1g \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin
# A fixed uid, so files in the media volume keep one owner across rebuilds and hosts. The media
# directory is created and owned here, before VOLUME: a new named volume copies that ownership.
RUN groupadd --system --gid 10001 wecom \
 && useradd --system --uid 10001 --gid wecom --home-dir /var/lib/wecom-archive \
      --no-create-home --shell /usr/sbin/nologin wecom \
 && mkdir -p /var/lib/wecom-archive/media /opt/wecom \
 && chown -R wecom:wecom /var/lib/wecom-archive
# /opt/wecom stays empty in the image: mount the directory holding your copy of the SDK there,
# read-only (docker run -v /path/to/sdk:/opt/wecom:ro ...).
# MALLOC_ARENA_MAX: glibc gives each thread that allocates an arena of its own (up to 8 per
# core); the worker's async, blocking and decrypting threads would keep several MiB each that a
# long catch-up freed long ago. Two arenas cost nothing measurable (BENCHMARKS.md, chat-pages).
ENV WECOM_SDK_LIB=/opt/wecom/libWeWorkFinanceSdk_C.so \
    WECOM_MEDIA_DIR=/var/lib/wecom-archive/media \
    MALLOC_ARENA_MAX=2
# Downloaded media, and the partial files interrupted downloads resume from: keep it across
# container restarts, or every retry starts its file over.
VOLUME ["/var/lib/wecom-archive/media"]
USER wecom
WORKDIR /var/lib/wecom-archive
# `serve` (the HTTP gateway) listens here when WECOM_HTTP_LISTEN says 0.0.0.0:8000.
EXPOSE 8000
ENTRYPOINT ["wecom-archive"]
CMD ["worker"]

# A binary built elsewhere (see the top of this file).
FROM runtime AS prebuilt
COPY wecom-archive /usr/local/bin/wecom-archive

# The default: the binary compiled in the builder stage.
FROM runtime
COPY --from=builder /usr/local/bin/wecom-archive /usr/local/bin/wecom-archive
