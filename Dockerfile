# One image for the three services and the console; the command picks one (`avisa serve events`).
FROM python:3.11-slim AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY common ./common
COPY services ./services
COPY avisa ./avisa
COPY examples ./examples
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 avisa \
    && mkdir -p /app/var && chown avisa /app/var

USER avisa
EXPOSE 8000 8001 8002 8003
ENTRYPOINT ["avisa"]
CMD ["serve", "events", "--host", "0.0.0.0"]
