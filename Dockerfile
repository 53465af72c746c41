# omniroute: slim Python image, non-root user, `omniroute serve`.
# Point it at PostgreSQL with DATABASE_URL (the embedded server is for
# development; in a container, use a managed or separate PostgreSQL).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

RUN useradd --create-home --uid 10001 omniroute
WORKDIR /app

COPY pyproject.toml README.md ./
COPY router ./router
COPY adapters ./adapters
RUN pip install .

COPY config ./config
COPY rules ./rules

USER omniroute
ENV OMNIROUTE_HTTP__HOST=0.0.0.0 \
    OMNIROUTE_DATABASE__EMBEDDED_DIR=/home/omniroute/data/postgres
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["omniroute", "serve", "--config", "/app/config/omniroute.yaml"]
