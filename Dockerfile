# syntax=docker/dockerfile:1
# cloudinfer-operator image: a wheel built in one stage, installed into a clean slim
# Python in the next. Runs as a numeric non-root user on a read-only root filesystem.
#   docker build -t cloudinfer-operator:0.1.0 .
# The base is pinned to an exact patch release so rebuilds are reproducible; bump it
# deliberately (and pin a digest too if your registry policy requires one).
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# constraints.txt pins every direct and transitive dependency; the same file constrains
# the install below, so the image runs exactly the versions the test suite ran.
COPY pyproject.toml constraints.txt README.md ./
COPY operator/ operator/
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c constraints.txt .

FROM ${PYTHON_IMAGE} AS runtime
# No .pyc writes at run time (the root filesystem is read-only; bytecode is compiled at
# install time instead), unbuffered logs, and nothing read from the user site.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONNOUSERSITE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    HOME=/tmp \
    USER=cloudinfer
COPY constraints.txt /tmp/constraints.txt
# Only the wheels directory is taken from the build stage: no compiler, no source tree.
# --no-index: the install cannot reach PyPI, so it uses exactly the wheels built above.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels \
        -c /tmp/constraints.txt /wheels/cloudinfer_operator-*.whl \
    && rm /tmp/constraints.txt
# 65532 is the conventional "nonroot" UID/GID (as in distroless); numeric so the kubelet
# can verify runAsNonRoot without an /etc/passwd entry. Kopf names its peering identity
# after getpass.getuser(), which fails for a UID without an entry (this one, or the random
# UID OpenShift assigns) unless USER is set: hence USER above.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["cloudinfer-operator"]
