"""A tiny discord.py bot that proves the fake Discord (and gives bench/e2e.py its baseline).

Run with the shim on PYTHONPATH (see `FakeDiscord.env()`): `python testkit/fakediscord/demo_bot.py`.
Commands: /hello (instant answer), /draw (defer, then a followup with a PNG and a persistent
DynamicItem button), /slow (answers after DEMO_SLOW_S seconds), /pick (autocomplete),
/echo (attachment option: answers with the attachment's bytes), /ask (opens a modal),
/where (which process and shard answered, and how many guilds that process knows).

`DEMO_SHARD_COUNT=N` (with `DEMO_SHARD_IDS=I,J` for a slice) makes it an AutoShardedBot
holding those shards; without them it is a plain Bot on one unsharded session.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import struct
import zlib

import discord
from discord import app_commands
from discord.ext import commands

FRUITS = [f"fruit-{i:02d}" for i in range(40)]


def tiny_png(n: int) -> bytes:
    """A valid 1x1 PNG whose colour depends on n."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    pixel = bytes([0, n % 256, (n * 7) % 256, (n * 13) % 256])
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(pixel)) + chunk(b"IEND", b""))


class Again(discord.ui.DynamicItem[discord.ui.Button], template=r"demo:again:(?P<n>[0-9]+)"):
    """A button that survives restarts: its state (n) is in the custom_id."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="Again", emoji="🎲", custom_id=f"demo:again:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]):
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        n = self.n + 1
        view = result_view(n)
        first = interaction.message.interaction_metadata  # who ran the command this button is under
        await interaction.followup.send(f"again {n} (pid {os.getpid()}, under {first.user.name}'s message)",
                                        file=discord.File(io.BytesIO(tiny_png(n)), "again.png"), view=view)


class Swap(discord.ui.DynamicItem[discord.ui.Button], template=r"demo:swap:(?P<n>[0-9]+)"):
    """Edits the message it is on: deferred update, then a new picture in place of the old one."""

    def __init__(self, n: int) -> None:
        super().__init__(discord.ui.Button(label="Swap", custom_id=f"demo:swap:{n}"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str]):
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer()
        n = self.n + 1
        await interaction.edit_original_response(content=f"swapped {n}", view=result_view(n),
                                                 attachments=[discord.File(io.BytesIO(tiny_png(n)), "swap.png")])


class Size(discord.ui.DynamicItem[discord.ui.Select], template=r"demo:size:(?P<n>[0-9]+)"):
    """A persistent select menu; answers by updating its message (callback type 7)."""

    def __init__(self, n: int) -> None:
        options = [discord.SelectOption(label=s, value=s) for s in ("small", "large")]
        super().__init__(discord.ui.Select(custom_id=f"demo:size:{n}", options=options, placeholder="size"))
        self.n = n

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str]):
        return cls(int(match["n"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await interaction.response.edit_message(content=f"{self.item.values[0]} {self.n}")


def result_view(n: int) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for item in (Again(n), Swap(n), Size(n)):
        view.add_item(item)
    return view


class Ask(discord.ui.Modal, title="Ask"):
    question = discord.ui.TextInput(label="Question", custom_id="demo:question")

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"you asked: {self.question.value}", ephemeral=True)


SHARD_COUNT = int(os.environ.get("DEMO_SHARD_COUNT") or 0)


class DemoBot(commands.AutoShardedBot if SHARD_COUNT else commands.Bot):  # type: ignore[misc]
    def __init__(self) -> None:
        shards = {}
        if SHARD_COUNT:
            ids = os.environ.get("DEMO_SHARD_IDS")
            shards = {"shard_count": SHARD_COUNT, "shard_ids": [int(i) for i in ids.split(",")] if ids else None}
        super().__init__(command_prefix=commands.when_mentioned, intents=discord.Intents.default(), **shards)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(Again, Swap, Size)
        if not os.environ.get("MOE_DEV_GUILD_ID"):
            await self.tree.sync()  # global commands: every guild sees them
            return
        guild = discord.Object(int(os.environ["MOE_DEV_GUILD_ID"]))
        self.tree.copy_global_to(guild=guild)
        await self.tree.sync(guild=guild)


bot = DemoBot()


@bot.tree.command()
async def hello(interaction: discord.Interaction) -> None:
    """Answer at once."""
    await interaction.response.send_message(f"hello {interaction.user.name}")


@bot.tree.command()
async def where(interaction: discord.Interaction) -> None:
    """Say which process and shard answered."""
    shard = interaction.guild.shard_id if interaction.guild else 0
    await interaction.response.send_message(f"pid {os.getpid()} shard {shard} guilds {len(bot.guilds)}")


@bot.tree.command()
@app_commands.describe(n="a number", shape="a shape", seed="ignored (benchmarks send one)")
@app_commands.choices(shape=[app_commands.Choice(name="Circle", value="circle"),
                             app_commands.Choice(name="Square", value="square")])
async def draw(interaction: discord.Interaction, n: app_commands.Range[int, 0, 99] = 1, shape: str = "circle",
               seed: int | None = None) -> None:
    """Defer, then send a PNG with a persistent button."""
    await interaction.response.defer(thinking=True)
    view = result_view(n)
    admin = interaction.permissions.manage_guild
    await interaction.followup.send(f"{shape} {n} admin={admin}", file=discord.File(io.BytesIO(tiny_png(n)), "draw.png"),
                                    view=view)


@bot.tree.command()
async def slow(interaction: discord.Interaction) -> None:
    """Answer too late."""
    await asyncio.sleep(float(os.environ.get("DEMO_SLOW_S", "0.5")))
    try:
        await interaction.response.send_message("too late")
    except discord.NotFound as e:
        logging.getLogger("demo").info("late answer rejected: %s", e)


@bot.tree.command()
async def pick(interaction: discord.Interaction, fruit: str) -> None:
    """Choose from more than 25 values."""
    await interaction.response.send_message(f"picked {fruit}", ephemeral=True)


@pick.autocomplete("fruit")
async def pick_fruit(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
    return [app_commands.Choice(name=f, value=f) for f in FRUITS if current in f][:25]


@bot.tree.command()
async def echo(interaction: discord.Interaction, image: discord.Attachment) -> None:
    """Send the attachment back."""
    data = await image.read()
    await interaction.response.send_message(f"{image.filename} {len(data)} bytes",
                                            file=discord.File(io.BytesIO(data), image.filename))


@bot.tree.command()
async def ask(interaction: discord.Interaction) -> None:
    """Open a modal."""
    await interaction.response.send_modal(Ask())


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    bot.run(os.environ["MOE_DISCORD_TOKEN"], log_handler=None)
