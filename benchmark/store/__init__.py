"""The results store: Parquet files, one per trial (see store.py for the layout and rules)."""

from benchmark.store.schema import PREDICTION_SCHEMA, SCHEMA_VERSION, TRIAL_SCHEMA, safe_name
from benchmark.store.store import Store

__all__ = ["PREDICTION_SCHEMA", "SCHEMA_VERSION", "TRIAL_SCHEMA", "Store", "safe_name"]
