# autopublish in a container. Build and run with compose: docs/running-as-a-service.md
#   docker compose -f deploy/compose.yaml up -d
# The config is mounted at /app/config/autopublish.toml (read only), the state lives in the
# /app/queue volume, secrets come from the environment (compose: env_file).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    AUTOPUBLISH_CONFIG=/app/config/autopublish.toml

WORKDIR /app

# Only what the package needs (pyproject names README.md as its readme).
COPY pyproject.toml README.md ./
COPY autopublish ./autopublish
RUN pip install . \
    && rm -rf build autopublish.egg-info \
    && groupadd --system --gid 10001 autopublish \
    && useradd --system --uid 10001 --gid autopublish --home-dir /app --no-create-home --shell /usr/sbin/nologin autopublish \
    && mkdir -p /app/queue /app/config \
    && chown autopublish:autopublish /app/queue

USER autopublish:autopublish

# state_dir = "queue" (relative to /app) or "/app/queue": the state database, lock, outbox, backups.
VOLUME ["/app/queue"]

# [daemon] metrics = "127.0.0.1:9464" serves /healthz and /metrics inside the container, which is
# all the health check needs; use "0.0.0.0:9464" and publish the port only for an outside scraper.
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request\ntry:\n    sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)\nexcept Exception:\n    sys.exit(1)"]

# SIGTERM (docker stop) finishes the post in flight; give it time: docker stop -t 90 / stop_grace_period.
STOPSIGNAL SIGTERM
CMD ["autopublish", "run"]
