"""What a conversion did with every tensor, for the user to read before trusting it."""

import dataclasses
import json


@dataclasses.dataclass
class Report:
    """Per-key outcome of converting `source` (read as `format`) into our params.

    loaded:     our param paths filled from the source (resampled ones included);
    reshaped:   "path <- key: how", tensors changed beyond the layout (pos_embed resampled);
    fixed:      their keys holding a table our model computes (checked, not loaded);
    missing:    our param paths with no source tensor (left at init, not written), with the
                key(s) that were looked for;
    mismatched: source tensors of the wrong shape (not loaded), with both shapes;
    unexpected: source keys nothing in our model maps to (not loaded).
    """

    source: str
    format: str
    method: str
    loaded: list[str] = dataclasses.field(default_factory=list)
    reshaped: list[str] = dataclasses.field(default_factory=list)
    fixed: list[str] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    mismatched: list[str] = dataclasses.field(default_factory=list)
    unexpected: list[str] = dataclasses.field(default_factory=list)

    @property
    def complete(self) -> bool:
        """Every param loaded and every source tensor used."""
        return not (self.missing or self.mismatched or self.unexpected)

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in _SECTIONS}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def __str__(self) -> str:
        lines = [
            f"{self.source} ({self.format} layout) -> mim_jax method {self.method!r}: "
            + ", ".join(f"{n} {k}" for k, n in self.counts().items())
        ]
        for section, meaning in _SECTIONS.items():
            items = getattr(self, section)
            if section == "loaded" or not items:
                continue
            lines.append(f"  {section} ({len(items)}; {meaning}):")
            lines.extend(f"    {item}" for item in items)
        return "\n".join(lines)


# Section -> what happened to its entries (shown in the printed report).
_SECTIONS = {
    "loaded": "converted",
    "reshaped": "loaded after resampling",
    "fixed": "fixed tables our model computes; checked, not loaded",
    "missing": "no source tensor: left at init, not written",
    "mismatched": "wrong shape: not loaded",
    "unexpected": "in the source, not in the model: not loaded",
}
