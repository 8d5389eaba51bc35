from kokeilu.store.migrations_env import run
from services.notifications.store import metadata

run(metadata)
