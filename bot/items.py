"""`MoeItem`: the mixin of every restart-proof button and select (`bot.components`, `bot.sheet`),
and `RefButton`, the one of the buttons under a result whose state is a recipe reference (`REF`).

In a module of its own so that item modules which `bot.components` lists in `ITEMS` (such as
`bot.sheet`) can use them without importing `bot.components` back.
"""

from __future__ import annotations

import discord
from discord import ui

from bot.actions import REF_PATTERN
from bot.errors import report_error
from bot.i18n import t

__all__ = ["MoeItem", "REF", "RefButton"]

REF = rf"(?P<ref>{REF_PATTERN})"  # a template's recipe reference

_NUMBERS = frozenset({"uid", "index", "page"})  # template groups that are integers


class MoeItem:
    """Mixin for every item: rebuild it from its custom_id, run `handle`, and answer any
    error the member's way (discord.py would only log errors raised by a DynamicItem's
    callback, leaving the member with 'interaction failed').

    The template's named groups are the constructor's keyword arguments (`uid`, `index`
    and `page` as integers); whatever else the constructor takes keeps its default, as
    Discord sends the item's own copy of labels and options with the interaction."""

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: ui.Item, match):
        return cls(**{k: int(v) if k in _NUMBERS else v for k, v in match.groupdict().items()})

    async def callback(self, interaction: discord.Interaction) -> None:
        try:
            await self.handle(interaction)
        except Exception as e:  # reported to the member; unexpected ones logged with traceback
            await report_error(interaction, e)

    async def handle(self, interaction: discord.Interaction) -> None:
        raise NotImplementedError


class RefButton(MoeItem):
    """Mixin for the result buttons `moe:<verb>:<ref>`: the recipe reference is all their state;
    `label_key` is the catalogue key of the button's label."""

    verb: str
    emoji: str
    label_key: str
    row = 0

    def __init__(self, ref: str, locale: object = None) -> None:
        super().__init__(ui.Button(custom_id=f"moe:{self.verb}:{ref}", emoji=self.emoji, label=t(locale, self.label_key),
                                   style=discord.ButtonStyle.secondary, row=self.row))
        self.ref = ref
