# One image for both components: `passops gateway`, `passops controller` (default), `passops migrate`.
#   docker build -t passops:0.1.0 .
# Needs BuildKit (the default builder of Docker 23+). No secret is baked in: credentials come
# from the environment (the Helm chart's existingSecret).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
# crds/ is the target of the passops/crds symlink: the wheel ships the CRD through it.
COPY crds/ crds/
COPY passops/ passops/
COPY controller/ controller/
COPY webhook_gateway/ webhook_gateway/
# The wheel of passops and of every dependency, so that the runtime stage installs offline.
RUN pip wheel --wheel-dir /wheels . \
 && python -c "import glob, zipfile; \
names = zipfile.ZipFile(glob.glob('/wheels/passops-*.whl')[0]).namelist(); \
assert 'passops/crds/passpurchase.yaml' in names, 'the wheel lacks the CRD'"

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="passops" \
      org.opencontainers.image.description="Every paid Stripe Checkout becomes exactly one subscription row, visible in Kubernetes." \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links /wheels passops \
 && groupadd --gid 10001 passops \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin passops \
 && passops --help >/dev/null
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["passops"]
CMD ["controller"]
