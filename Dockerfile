# One image for all four Kokeilu services; SERVICE picks which one a container runs.
#   docker build -t kokeilu .
#   docker run -e SERVICE=catalogue -e KOKEILU_ADMIN_TOKEN=... kokeilu
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# Dependencies first, so code changes do not reinstall them.
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt

COPY kokeilu/ kokeilu/
COPY services/ services/
COPY schemas/ schemas/

# Run unprivileged. The data folder only matters when no DATABASE_URL is given
# (the SQLite fallback); docker-compose always gives one.
RUN useradd --system --uid 10001 --user-group --no-create-home --home-dir /app kokeilu \
    && mkdir -p /var/lib/kokeilu \
    && chown kokeilu:kokeilu /var/lib/kokeilu
# Logs as JSON lines (kokeilu/logs.py); EVENTLET_TESTS is eventlet's one switch for the
# multi-line deprecation banner it prints on import, before logging starts, which would be
# the only lines of a container's log that are not JSON (it changes nothing else in 0.41).
ENV KOKEILU_DATA_DIR=/var/lib/kokeilu \
    KOKEILU_LOG_FORMAT=json \
    EVENTLET_TESTS=1 \
    SERVICE=proposals
USER kokeilu

# proposals 8001, evaluation 8002, notifications 8003, catalogue 8004
EXPOSE 8001 8002 8003 8004

# Shell form so ${SERVICE} expands; `exec` makes nameko PID 1, so SIGTERM reaches it
# directly and the service shuts down gracefully (finishes its batch, flushes the outbox).
CMD exec nameko run --config services/${SERVICE}/config.yaml services.${SERVICE}.service
