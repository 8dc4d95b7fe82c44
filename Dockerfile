# syntax=docker/dockerfile:1
# The gpupool image: one image for every part the Helm chart runs
# (deploy/helm/gpupool): `gpupool agent`, `sched`, `webhook`, `scaler`,
# and libgpupool.so, which the agent's init container installs on the node.
#
#   docker build -t REGISTRY/gpupool:TAG .
#   helm install gpupool deploy/helm/gpupool --set image.repository=REGISTRY/gpupool \
#     --set image.tag=TAG
#
# In the image:
#   /usr/local/gpupool/gpupool         the command (/usr/local/bin/gpupool links to it)
#   /usr/local/gpupool/libgpupool.so   the interposition library, beside the command
#                                      (where `gpupool agent --device-plugin` and
#                                      `gpupool run` look for it)
#
# CUDA headers.  The build needs the CUDA toolkit's cuda.h (DESIGN.md: the
# driver API's types) and nothing else of CUDA: no libraries, no nvcc.  They
# are copied from NVIDIA's CUDA development image, named by CUDA_IMAGE (any
# tag of nvidia/cuda with -devel, or an image of your own with the toolkit in
# /usr/local/cuda):
#
#   docker build --build-arg CUDA_IMAGE=nvidia/cuda:12.8.1-devel-ubuntu24.04 .
#
# Only /usr/local/cuda/include is taken from it; the build itself runs on
# Debian 12, like the project's own machines.  The runtime stage is
# debian:bookworm-slim with exactly the shared libraries `gpupool` links
# (tests/python/test_helm.py checks this list against `ldd build/gpupool`).
ARG CUDA_IMAGE=nvidia/cuda:12.6.3-devel-ubuntu22.04
ARG BUILD_IMAGE=debian:bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${CUDA_IMAGE} AS cuda

# --- build ---------------------------------------------------------------------
FROM ${BUILD_IMAGE} AS build
# The build's Debian packages: scripts/install-deps's list less what only the
# tests, benchmarks and fuzzing use.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential \
      libevent-dev \
      libjansson-dev \
      libcurl4-openssl-dev \
      libnghttp2-dev \
      libprotobuf-c-dev \
      librabbitmq-dev \
      libyaml-dev \
      protobuf-c-compiler \
      libssl-dev \
 && rm -rf /var/lib/apt/lists/*
COPY --from=cuda /usr/local/cuda/include/ /usr/local/cuda/include/
WORKDIR /src
COPY Makefile ./
COPY scripts/install-deps scripts/
COPY include/ include/
COPY proto/ proto/
COPY src/ src/
# The packages are installed above, so the Makefile's dependency step
# (scripts/install-deps, which would also install the test suite's
# packages) is marked done.  Only the two shipped files are built.
ARG MAKE_JOBS=4
RUN mkdir -p build \
 && touch build/.deps-ok \
 && make -j"${MAKE_JOBS}" CUDA_HOME=/usr/local/cuda build/gpupool build/libgpupool.so \
 && strip --strip-unneeded build/gpupool build/libgpupool.so

# --- runtime -------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
# The libraries `gpupool` links (objdump -p build/gpupool | grep NEEDED) and
# their Debian packages; libc6 is in the base image.  libevent's OpenSSL
# glue and libssl3 serve the webhook's HTTPS; ca-certificates lets the
# scaler reach an https broker with a public certificate; librabbitmq4 is
# gpupool engine's AMQP consumer.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates \
      libcurl4 \
      libevent-2.1-7 \
      libevent-openssl-2.1-7 \
      libevent-pthreads-2.1-7 \
      libjansson4 \
      libnghttp2-14 \
      libprotobuf-c1 \
      librabbitmq4 \
      libssl3 \
      libyaml-0-2 \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/build/gpupool /src/build/libgpupool.so /usr/local/gpupool/
RUN chmod 0755 /usr/local/gpupool/gpupool \
 && chmod 0644 /usr/local/gpupool/libgpupool.so \
 && ln -s ../gpupool/gpupool /usr/local/bin/gpupool \
 && gpupool --help >/dev/null
# The daemons run unprivileged unless the chart says otherwise (the node
# agent and its init container run as root: they write host paths).
USER 65532:65532
ENTRYPOINT ["gpupool"]
CMD ["--help"]
