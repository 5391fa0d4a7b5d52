# The voice-agent worker (docs/operations.md#the-image), from the wheel: scripts/image builds
# the wheel (with the console's pages) into dist/, then this file with podman, buildah or docker.
#
#   scripts/image                                   # = podman build -t voxkeep .
#   docker run --env-file .env -v voxkeep-data:/data voxkeep
#
# BASE is any Debian bookworm image: Docker Hub's by default, or one made from Debian's own
# archive with debootstrap (scripts/image --base-from-debian). Compose examples beside LiveKit's
# own server: config/compose.dev.yaml, config/compose.postgres.yaml.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}

# Debian's Python 3.11, and pg_dump for `voxkeepctl db backup` on PostgreSQL (PostgreSQL 15's:
# it dumps servers up to 15). No compiler, no dev tools.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv postgresql-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/voxkeep/bin:$PATH

# The wheel with the extras the image serves (EXTRAS: postgres and the console by default; add
# providers, e.g. scripts/image --extras postgres,console,deepgram), at the versions pinned in
# requirements.lock, from the wheels scripts/image collected into dist/wheels: the build itself
# reaches no package index. No dev extra.
# (Mounted, not copied: the wheels leave no layer behind.)
ARG EXTRAS=postgres,console
RUN --mount=type=bind,source=dist,target=/tmp/dist \
    --mount=type=bind,source=requirements.lock,target=/tmp/requirements.lock \
    python3 -m venv /opt/voxkeep \
 && pip install --no-index --find-links /tmp/dist --find-links /tmp/dist/wheels \
      -c /tmp/requirements.lock "voxkeep[${EXTRAS}]"

# A user of its own; the store and the writer's journal live on a volume it owns.
RUN useradd --create-home --uid 10001 voxkeep \
 && mkdir -p /data \
 && chown voxkeep:voxkeep /data
USER voxkeep
WORKDIR /home/voxkeep

# Model files fetched at build time (LiveKit's download-files), never at call time; with
# --build-arg VOXKEEP_TURN_DETECTION=multilingual (and EXTRAS=…,turn-detector), the text turn
# detector's too.
ARG VOXKEEP_TURN_DETECTION=vad
RUN python -m voxkeep download-files

ENV VOXKEEP_DB_URL=sqlite:////data/voxkeep.db \
    VOXKEEP_JOURNAL_DIR=/data/journal \
    VOXKEEP_LOG_FORMAT=json
VOLUME ["/data"]

# LiveKit's worker answers its health check on this port under `start`.
EXPOSE 8081
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/', timeout=4)"]

# Migrate the schema (a no-op when current; safe with several workers at once), then run.
CMD ["sh", "-c", "voxkeepctl db migrate && exec python -m voxkeep start"]
