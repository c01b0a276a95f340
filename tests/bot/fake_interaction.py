"""A stand-in for the parts of `discord.Interaction` a handler touches: it records every answer."""

from __future__ import annotations

from types import SimpleNamespace

GUILD, MEMBER = 1, 5


class Itx:
    """Answers land in `sent` as dicts (`content` plus the keyword arguments of the call)."""

    def __init__(self, bot, guild=None, permissions=None, app_permissions=None, *, guild_id: int = GUILD,
                 user_id: int = MEMBER, locale: str = "en-US") -> None:
        self.client, self.guild, self.guild_id, self.channel_id = bot, guild, guild_id, 2
        self.locale = self.guild_locale = locale
        self.permissions, self.app_permissions = permissions, app_permissions
        self.channel = SimpleNamespace(id=2)
        self.user = SimpleNamespace(id=user_id, mention=f"<@{user_id}>")
        self.sent: list[dict] = []
        outer = self

        class Response:
            type = None

            def is_done(self):
                return self.type is not None

            async def defer(self, **kw):
                self.type = "deferred"

            async def send_message(self, content, **kw):
                self.type = "message"
                outer.sent.append({"content": content, **kw})

        self.response = Response()
        self.followup = SimpleNamespace(send=self._send)

    async def _send(self, content=None, **kw):
        self.sent.append({"content": content, **kw})

    async def delete_original_response(self):
        pass
