"""What an indexing run did: counts, failures with reasons, time. Printed as a summary and written as JSON."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class IndexReport:
    indexed: int = 0  # files written this run (a duplicate's second path counts under duplicates)
    skipped: int = 0  # already indexed and unchanged: not read again
    duplicates: int = 0  # files whose content was already stored under another path
    failed: list[dict] = field(default_factory=list)  # [{"path", "reason", "detail"}]
    pruned: int = 0  # points deleted because none of their files exists any more
    seconds: float = 0.0
    collection: str = ""
    model_id: str = ""
    runner: str = ""

    def fail(self, path: str, reason: str, detail: str = "") -> None:
        self.failed.append({"path": path, "reason": reason, "detail": detail})

    def summary(self) -> str:
        rate = (self.indexed + self.duplicates) / self.seconds if self.seconds else 0.0
        text = (f"indexed {self.indexed}, duplicates {self.duplicates}, skipped (unchanged) {self.skipped}, "
                f"failed {len(self.failed)}, pruned {self.pruned} in {self.seconds:.1f} s ({rate:.1f} images/s) "
                f"into {self.collection}")
        if self.failed:
            reasons = Counter(f["reason"] for f in self.failed)
            text += "\n  failures by reason: " + ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        return text

    def to_json(self) -> dict:
        return asdict(self)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_json(), indent=2))
