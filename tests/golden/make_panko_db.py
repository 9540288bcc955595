"""Run with the reference Panko venv's python: create a Panko 10 database at argv[1] with
panko's own schema upgrade and record_events, loaded with panko10_events.jsonl."""

import datetime
import json
import sys
from pathlib import Path

from oslo_config import cfg
from panko import service, storage
from panko.storage import models

conf = service.prepare_service(argv=[], config_files=[])
conf.set_override("connection", f"sqlite:///{sys.argv[1]}", group="database")
conn = storage.get_connection_from_config(conf)
conn.upgrade()
events = []
for line in (Path(__file__).parent / "panko10_events.jsonl").read_text().splitlines():
    if not line.strip():
        continue
    doc = json.loads(line)
    traits = []
    for name, dtype, value in doc["traits"]:
        typed = datetime.datetime.fromisoformat(value) if dtype == 4 else value
        traits.append(models.Trait(name, dtype, typed))
    events.append(
        models.Event(
            doc["message_id"],
            doc["event_type"],
            datetime.datetime.fromisoformat(doc["generated"]),
            traits,
            doc.get("raw", {}),
        )
    )
conn.record_events(events)
print(len(events), "events recorded", file=sys.stderr)
_ = cfg
