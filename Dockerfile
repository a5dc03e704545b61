# Squall server image. Build: docker build -t squall .
# Run:   docker run -p 8000:8000 -e SQUALL_API_KEY="$(openssl rand -hex 16)" squall
# (the demo configuration's API key 'demo' is refused on a non-loopback host,
# and the container listens on 0.0.0.0: give your own key, or a --config).
# CI on the development machine has no Docker engine; this file is checked
# by hand, see docs/DEPLOY.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

WORKDIR /opt/squall
RUN useradd --system --home /opt/squall squall

# Dependencies first, from setup.cfg's one list (as .ci/setup reads it), so
# code changes do not re-install them.
COPY setup.cfg ./
RUN python -c "import configparser; c = configparser.ConfigParser(); c.read('setup.cfg'); \
print('\n'.join(l.split('#')[0].strip() for l in c['options']['install_requires'].splitlines() if l.split('#')[0].strip()))" \
        > /tmp/requirements.txt && pip install -r /tmp/requirements.txt

# Then Squall itself, as the wheel a user would pip install: one import
# package `squall` and the `squall` command (docs/DEPENDENCIES.md, Packaging).
COPY pyproject.toml README.md ./
COPY server ./server
COPY handlers ./handlers
COPY channels ./channels
COPY loadtest ./loadtest
COPY static ./static
RUN pip install --no-deps . && rm -rf /opt/squall/* /tmp/requirements.txt

# Multiprocess metrics directory (used when processes != 1); emptied at each start.
ENV PROMETHEUS_MULTIPROC_DIR=/tmp/squall-metrics
USER squall
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2).status == 200 else 1)"
ENTRYPOINT ["/bin/sh", "-c", "rm -rf \"$PROMETHEUS_MULTIPROC_DIR\" && mkdir -p \"$PROMETHEUS_MULTIPROC_DIR\" && exec squall \"$@\"", "--"]
# Needs SQUALL_API_KEY (or --api-key, or a --config with api_key): see the top.
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
