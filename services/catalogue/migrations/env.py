from kokeilu.store.migrations_env import run
from services.catalogue.store import metadata

run(metadata)
