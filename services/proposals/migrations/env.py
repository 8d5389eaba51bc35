from kokeilu.store.migrations_env import run
from services.proposals.store import metadata

run(metadata)
