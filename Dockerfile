# Squall server image. Build: docker build -t squall .
# (CI on the development machine has no Docker engine; this file is checked
# by hand, see docs/DEPLOY.md.)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/squall
RUN useradd --system --home /opt/squall squall

# Dependencies first, so code changes do not re-install them (same pins as setup.cfg).
RUN pip install "tornado>=6.4,<7" "redis[hiredis]>=5" "msgpack>=1.0" "pymongo>=4.13" \
        "PyJWT[crypto]>=2.8" "prometheus-client>=0.20" "orjson>=3.9" "psutil>=5.9"

COPY run.py ./
COPY server ./server
COPY handlers ./handlers
COPY channels ./channels
COPY static ./static

# Multiprocess metrics directory (used when processes != 1); emptied at each start.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/squall-metrics
USER squall
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["/bin/sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec python run.py \"$@\"", "--"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
