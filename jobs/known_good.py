"""The image each service last ran healthily with: `<state_dir>/known-good.json`.

{"petclinic": {"image_id": "sha256:...", "image": "local/petclinic:latest", "at": "...Z"}}
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from .fsutil import atomic_write_bytes, ensure_dir

FILE_NAME = "known-good.json"


class KnownGood:
    """Read and record known-good image ids, one small JSON file per state directory."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / FILE_NAME

    def _load(self) -> dict:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a damaged state file only loses the rollback target, never the service
        return data if isinstance(data, dict) else {}

    def get(self, service: str) -> str | None:
        """The known-good image id of `service`, or None."""
        entry = self._load().get(service)
        return entry.get("image_id") if isinstance(entry, dict) else None

    def record(self, service: str, image_id: str, image: str | None) -> None:
        """Remember `image_id` as good for `service`."""
        data = self._load()
        data[service] = {
            "image_id": image_id,
            "image": image,
            "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        ensure_dir(self.path.parent)
        atomic_write_bytes(self.path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
