from alembic import context

from common.db import run_migrations_online

run_migrations_online(context)
