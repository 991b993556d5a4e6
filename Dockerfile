# threadcast: one image for every role (worker, scheduler, api, login, sim, flower).
#   docker build -t threadcast .        docker run --rm threadcast --help
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid: named volumes (the simulator's CA) keep one owner across rebuilds.
RUN groupadd --system --gid 10001 threadcast \
 && useradd --system --uid 10001 --gid threadcast --create-home --home-dir /home/threadcast threadcast

WORKDIR /opt/threadcast

# Dependencies first, from pyproject.toml alone: editing the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['flower']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

COPY README.md ./
COPY producer ./producer
COPY worker ./worker
COPY threadcast ./threadcast
COPY simulator ./simulator
RUN pip install --no-deps .

# Mount points owned by the user before any volume is created: Docker initialises a new
# named volume with the image's ownership of that path.
RUN mkdir -p /sim /var/lib/threadcast \
 && chown threadcast:threadcast /sim /var/lib/threadcast

USER threadcast
# A writable working directory: the default SQLite ledger and a .env would live here.
WORKDIR /var/lib/threadcast
EXPOSE 8000 8443 9100 5555
ENTRYPOINT ["threadcast"]
CMD ["--help"]
