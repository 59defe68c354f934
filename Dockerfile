# syntax=docker/dockerfile:1
# The image of one function: `docker build --build-arg FUNCTION=create_task -t todo-create-task .`
# FUNCTION is the folder under functions/. Every image carries the whole shared package (the migration Job
# runs from any of them) but only its own function's folder.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG FUNCTION
RUN test -n "${FUNCTION}" || { echo "build with --build-arg FUNCTION=<folder under functions/>" >&2; exit 1; }
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
# The runtime environment lives at the same path in both stages: a virtualenv is not relocatable.
RUN python -m venv /opt/venv
WORKDIR /src
COPY pyproject.toml ./
COPY shared/ shared/
# The package and its runtime dependencies; never the `dev` extra (test and local-stack tools).
RUN /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall --yes pip setuptools
WORKDIR /app
COPY functions/${FUNCTION}/ functions/${FUNCTION}/
# The start command, written from the catalog (fails the build if FUNCTION is not a catalog function).
RUN /opt/venv/bin/python -m todo_backend.deploy launcher "${FUNCTION}" > /app/start \
    && chmod 0555 /app/start \
    && /opt/venv/bin/python -m compileall -q -j 0 /opt/venv/lib /app/functions

FROM ${PYTHON_IMAGE}
ARG FUNCTION
LABEL org.opencontainers.image.title="todo-backend function ${FUNCTION}"
# No compiler, no pip: only the interpreter from the base image, the venv and the function.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /app /app
WORKDIR /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=8080
USER 10001:10001
EXPOSE 8080
CMD ["/app/start"]
