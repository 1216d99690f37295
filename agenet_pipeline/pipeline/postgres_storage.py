"""The cluster instance's Postgres storage (deploy/dagster.yaml), refused at once when Postgres is unreachable.

dagster-postgres retries a refused connection and then fails without the address; this names the service and
its address first. Imported only by deploy/dagster.yaml: dagster-postgres is in the `cluster` extra.
"""

from dagster_postgres import DagsterPostgresStorage

from agenet_pipeline.core.services import require_reachable


class CheckedPostgresStorage(DagsterPostgresStorage):
    """DagsterPostgresStorage (the same config), after checking that Postgres accepts connections."""

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        database = config_value["postgres_db"]
        url = f"postgresql://{database['hostname']}:{database.get('port', 5432)}"
        require_reachable("Postgres (the Dagster instance's storage)", url)
        return super().from_config_value(inst_data, config_value)
