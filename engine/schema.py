"""The attribute schema: the condition contract shared by datasets, checkpoints and packs.

A schema is an ordered tuple of categorical attributes, each an ordered tuple of values.
A *condition* is one value per attribute; on the wire (ONNX inputs, recipes) it is the
tuple of value indices in schema order. Pure Python: importable without numpy or torch.

Words for people are presentation, outside the fingerprint: an attribute's `labels` and
`description` (English), and optional `translations`, one `Translation` per locale (Discord's
locale codes: `zh-CN`, `ja`, ...) naming the attribute and some or all of its values in that
language. The bot picks among them (`bot.i18n.value_label`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["Attribute", "Schema", "SchemaError", "Translation"]


class SchemaError(ValueError):
    """A condition or schema document that does not fit the schema; the message names what.

    For an unknown attribute or value, `attribute` and `value` name it and `choices` lists
    what was expected (all the values, or the attribute names), so an interface can word it
    in its user's language; the English message is unchanged."""

    def __init__(self, message: str, *, attribute: str | None = None, value: str | None = None,
                 choices: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.attribute, self.value, self.choices = attribute, value, tuple(choices)


@dataclass(frozen=True)
class Translation:
    """One locale's words for an attribute: its name, its description and labels of some of
    its values ({value: label}); empty ones are left to the next fallback."""

    name: str = ""
    description: str = ""
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict:
        doc: dict = {"name": self.name, "description": self.description, "labels": dict(self.labels)}
        return {k: v for k, v in doc.items() if v}

    @classmethod
    def from_dict(cls, doc: Mapping) -> Translation:
        labels = doc.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise TypeError(f"translation labels must map values to labels, not {type(labels).__name__}")
        return cls(name=str(doc.get("name") or ""), description=str(doc.get("description") or ""),
                   labels={str(k): str(v) for k, v in labels.items()})


@dataclass(frozen=True)
class Attribute:
    name: str
    values: tuple[str, ...]
    default: str | None = None  # None: random when unset
    labels: tuple[str, ...] = ()  # display labels, same order as values; empty = values
    description: str = ""
    translations: Mapping[str, Translation] = field(default_factory=dict, hash=False)  # locale -> words

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise SchemaError(f"attribute name {self.name!r} must be a non-empty identifier")
        if len(self.values) < 1:
            raise SchemaError(f"attribute {self.name!r} has no values")
        if len(set(self.values)) != len(self.values):
            raise SchemaError(f"attribute {self.name!r} has duplicate values")
        if self.default is not None and self.default not in self.values:
            raise SchemaError(f"default {self.default!r} of {self.name!r} is not one of its values")
        if self.labels and len(self.labels) != len(self.values):
            raise SchemaError(f"attribute {self.name!r}: labels and values differ in length")
        for locale, words in self.translations.items():
            if not locale or not isinstance(words, Translation):
                raise SchemaError(f"attribute {self.name!r}: translations map locale codes to Translation")
            unknown = [v for v in words.labels if v not in self.values]
            if unknown:
                raise SchemaError(f"attribute {self.name!r}: {locale} labels unknown values {unknown}")
            if any(not label.strip() for label in words.labels.values()):
                raise SchemaError(f"attribute {self.name!r}: an empty {locale} label")

    @property
    def cardinality(self) -> int:
        return len(self.values)

    def label(self, value: str) -> str:
        return self.labels[self.index(value)] if self.labels else value

    def index(self, value: str) -> int:
        try:
            return self.values.index(value)
        except ValueError:
            shown = ", ".join(self.values[:12]) + (", ..." if len(self.values) > 12 else "")
            raise SchemaError(f"unknown {self.name} {value!r}; choose one of: {shown}",
                              attribute=self.name, value=value, choices=self.values) from None


@dataclass(frozen=True)
class Schema:
    attributes: tuple[Attribute, ...]
    name: str = ""
    attributes_by_name: dict[str, Attribute] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [a.name for a in self.attributes]
        if not names:
            raise SchemaError("a schema needs at least one attribute")
        if len(set(names)) != len(names):
            raise SchemaError(f"duplicate attribute names in {names}")
        object.__setattr__(self, "attributes_by_name", {a.name: a for a in self.attributes})

    # -- shape --------------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes)

    @property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(a.cardinality for a in self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)

    def __getitem__(self, name: str) -> Attribute:
        try:
            return self.attributes_by_name[name]
        except KeyError:
            raise SchemaError(f"unknown attribute {name!r}; known: {', '.join(self.names)}",
                              attribute=name, choices=self.names) from None

    # -- conditions -----------------------------------------------------------------------
    def encode(self, condition: Mapping[str, str]) -> tuple[int, ...]:
        """Complete condition {name: value} -> indices in schema order."""
        unknown = set(condition) - set(self.names)
        if unknown:
            self[sorted(unknown)[0]]  # raises with the list of known attributes
        missing = [n for n in self.names if n not in condition]
        if missing:
            raise SchemaError(f"condition is missing {', '.join(missing)}")
        return tuple(self[n].index(condition[n]) for n in self.names)

    def decode(self, indices: Sequence[int]) -> dict[str, str]:
        """Indices in schema order -> {name: value}; out-of-range indices are a SchemaError."""
        if len(indices) != len(self.attributes):
            raise SchemaError(f"expected {len(self.attributes)} condition indices, got {len(indices)}")
        out = {}
        for a, i in zip(self.attributes, indices):
            if not 0 <= int(i) < a.cardinality:
                raise SchemaError(f"index {i} out of range for {a.name} ({a.cardinality} values)")
            out[a.name] = a.values[int(i)]
        return out

    def complete(self, partial: Mapping[str, str | None] | None, draws: Sequence[int]) -> tuple[int, ...]:
        """A partial condition {name: value} -> indices in schema order. An attribute left
        out (or None) takes its default, else `draws[i] % cardinality`: `draws` holds one
        random integer per attribute in schema order (the caller's seeded randomness), so
        setting one attribute never changes the random choice of another. An unknown
        attribute or value is a SchemaError that lists the choices."""
        if len(draws) != len(self.attributes):
            raise SchemaError(f"expected {len(self.attributes)} draws, one per attribute, got {len(draws)}")
        given: dict[str, int | None] = dict.fromkeys(self.names)
        for name, value in (partial or {}).items():
            attr = self[name]
            given[attr.name] = None if value is None else attr.index(value)
        out = []
        for a, index, draw in zip(self.attributes, given.values(), draws):
            if index is None:
                index = a.index(a.default) if a.default is not None else draw % a.cardinality
            out.append(index)
        return tuple(out)

    # -- documents ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The manifest's `schema` document; `translations` only where an attribute has some,
        so schemas without them write exactly what they always did."""
        attributes = []
        for a in self.attributes:
            doc = {"name": a.name, "values": list(a.values), "default": a.default,
                   "labels": list(a.labels) if a.labels else list(a.values), "description": a.description}
            if a.translations:
                doc["translations"] = {loc: words.to_dict() for loc, words in a.translations.items()}
            attributes.append(doc)
        return {"name": self.name, "attributes": attributes}

    @classmethod
    def from_dict(cls, doc: Mapping) -> Schema:
        try:
            attrs = tuple(
                Attribute(
                    name=str(a["name"]),
                    values=tuple(str(v) for v in a["values"]),
                    default=a.get("default"),
                    labels=tuple(str(v) for v in a.get("labels") or ()),
                    description=str(a.get("description", "")),
                    translations={str(loc): Translation.from_dict(words)
                                  for loc, words in (a.get("translations") or {}).items()},
                )
                for a in doc["attributes"]
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise SchemaError(f"malformed schema document: {e!r}") from None
        return cls(attributes=attrs, name=str(doc.get("name", "")))

    def fingerprint(self) -> str:
        """Stable hash of names and ordered values (labels/defaults excluded): two schemas
        with the same fingerprint index conditions identically."""
        core = [[a.name, list(a.values)] for a in self.attributes]
        return hashlib.sha256(json.dumps(core, separators=(",", ":")).encode()).hexdigest()[:16]
