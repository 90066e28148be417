"""The smart home's actors (System 1). Read ``ingest`` first (how a reading enters), then
``analyzers`` (statistics and alerts) and ``writer`` (the database); ``state`` and ``store`` are the
plain objects they wrap, ``api`` the query API, ``mqtt`` the MQTT edge, ``simulator`` the house.

How a reading travels. The HTTPS edge (``actors.edges.http_edge.HttpEdgeActor``) or the MQTT edge
validates it and hands the ingest one ``EdgeBatch`` per drained batch. The ingest refuses readings
of unknown sensors or impossible times (400 naming the field), then, by mode:

* **broker** (default): appends the batch to the broker's ``readings`` topic in one transaction and
  only then answers, so a 200 means "persisted". The writer and each analyzer consume the topic at
  their own committed offsets: killing either (even with SIGKILL) loses nothing, the restarted one
  resumes where it had finished, and the database keys make a replay store nothing twice.
* **direct**: the edge answers 202 at once and the ingest hands the batch in memory to the writer
  and the analyzer of each kind. Lower latency, but what a dying actor held is gone.

Storage faults of the outside world (disk full, a read-only file, PostgreSQL or NATS gone: a
``StorageUnavailableError``) are not crashes: each actor keeps a ``StorageBackoff``, refuses work
with the reason meanwhile (the ingest answers 503, which the edge sends on with ``Retry-After``;
the writer and the analyzers stop consuming) and tries the store again 0.1 s, 0.2 s, ... 2 s
later, so an outage spends no restart intensity and ends by itself when the store is back. Nothing
moves past a failure: the ingest remembers a reading only once it is appended, consumers commit
an offset only after what it produced is stored. Any other error is a bug and crashes the actor;
the supervisor restarts it and ``on_start`` rebuilds it from the stores.
"""

from actors.smart_home._shared import WRITER_GROUP, analyzer_group
from actors.smart_home.analyzers import KindAnalyzer
from actors.smart_home.ingest import ReadingIngest
from actors.smart_home.writer import ReadingWriter

__all__ = ["KindAnalyzer", "ReadingIngest", "ReadingWriter", "WRITER_GROUP", "analyzer_group"]
