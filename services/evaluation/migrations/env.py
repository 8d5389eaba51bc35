from kokeilu.store.migrations_env import run
from services.evaluation.store import metadata

run(metadata)
