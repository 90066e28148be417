"""The national grid's actors and plain objects. Read ``gateway`` (authenticated HTTPS ingest that
appends to the durable log itself), then ``registry`` and ``ca`` (credentials), ``alerts`` (the
real-time consumer group) and ``daily`` (the job that moves each day of the log into the database).
"""

from actors.grid.alerts import AlertConsumer, AlertConsumption, AlertRules, stored_alerts
from actors.grid.ca import GridCA
from actors.grid.daily import DailyJob, DailyJobActor
from actors.grid.gateway import GatewayServer, GridGateway
from actors.grid.registry import Authenticator, SensorRegistry, hash_token
from actors.grid.store import fates, open_log

__all__ = ["AlertConsumer", "AlertConsumption", "AlertRules", "Authenticator", "DailyJob",
           "DailyJobActor", "GatewayServer", "GridCA", "GridGateway", "SensorRegistry", "fates",
           "hash_token", "open_log", "stored_alerts"]
