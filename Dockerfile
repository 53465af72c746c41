# omniroute: slim Python image, non-root user, `omniroute serve`.
#
# The image's configuration, config/omniroute.container.yaml, listens on every
# interface and reads every secret from the environment; the container refuses
# to start while one is missing. Give it:
#
#   DATABASE_URL               PostgreSQL (the embedded server is for trying
#                              the image; in production use a separate one)
#   OMNIROUTE_CHAT_SECRET, OMNIROUTE_EMAIL_SECRET, OMNIROUTE_VOICE_SECRET,
#   OMNIROUTE_SOCIAL_SECRET    signing secrets of the four generic adapters
#   OMNIROUTE_API_TOKEN        bearer token for the /v1 API and /metrics
#
# or mount a config of your own and set OMNIROUTE_CONFIG to its path. The
# local demo config (config/omniroute.yaml, published demo credentials) is
# refused on a non-loopback address.
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
ENV OMNIROUTE_CONFIG=/app/config/omniroute.container.yaml \
    OMNIROUTE_HTTP__HOST=0.0.0.0 \
    OMNIROUTE_DATABASE__EMBEDDED_DIR=/home/omniroute/data/postgres
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz').status != 200)"
CMD ["omniroute", "serve"]
