# The voice-agent worker (docs/operations.md). Build: docker build -t voxkeep .
# Run:   docker run --env-file .env -v voxkeep-data:/data voxkeep
# Compose examples beside LiveKit's own server: config/compose.dev.yaml, config/compose.postgres.yaml
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# espeak-ng: `voxkeepctl simulate --offline` speaks with it (the worker itself does not need it).
RUN apt-get update \
 && apt-get install -y --no-install-recommends espeak-ng \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# The runtime dependencies first (pyproject's, at the versions pinned in requirements.lock; no
# dev tools), so a code change does not reinstall them; then the project itself. EXTRAS adds
# optional providers (docs/providers.md), e.g. --build-arg EXTRAS=deepgram,cartesia.
ARG EXTRAS=""
COPY pyproject.toml requirements.lock README.md ./
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print('\n'.join(p['dependencies'] + [d for e in os.environ['EXTRAS'].split(',') if e for d in p['optional-dependencies'][e]]))" > /tmp/deps.txt \
 && pip install -c requirements.lock -r /tmp/deps.txt \
 && rm /tmp/deps.txt
COPY voxkeep ./voxkeep
COPY config ./config
RUN pip install --no-deps .

# A user of its own; the store and the writer's journal live on a volume it owns.
RUN useradd --create-home --uid 10001 voxkeep \
 && mkdir -p /data \
 && chown voxkeep:voxkeep /data
USER voxkeep

# Model files fetched at build time (LiveKit's download-files), never at call time; with
# --build-arg VOXKEEP_TURN_DETECTION=multilingual (and EXTRAS=turn-detector), the text turn
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
