"""A fake Discord (gateway + REST on 127.0.0.1) for end-to-end tests of the real bot.

See README.md in this folder for the driver API.
"""

from .driver import DEMO_BOT, REPO_ROOT, SHIM_DIR, FakeDiscord
from .interaction import Interaction, InteractionFailed, ResponseType
from .invoke import InvalidInvocation
from .process import BotProcess, moe_env
from .state import EPHEMERAL, Attachment, Channel, Guild, Member, Message, User, Violation

__all__ = [
    "FakeDiscord", "BotProcess", "moe_env", "Interaction", "InteractionFailed", "InvalidInvocation", "ResponseType",
    "Attachment", "Channel", "Guild", "Member", "Message", "User", "Violation", "EPHEMERAL",
    "REPO_ROOT", "SHIM_DIR", "DEMO_BOT",
]
