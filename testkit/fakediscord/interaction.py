"""One interaction as the fake Discord sees it: what was sent, how and when the bot answered."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from .state import Member, Message

__all__ = ["Interaction", "InteractionFailed", "ResponseType"]


class ResponseType:
    """Interaction callback types (Discord API v10)."""

    PONG = 1
    MESSAGE = 4
    DEFERRED_MESSAGE = 5
    DEFERRED_UPDATE = 6
    UPDATE_MESSAGE = 7
    AUTOCOMPLETE = 8
    MODAL = 9


class InteractionFailed(AssertionError):
    """The interaction failed as a member would see it (no answer in time, rejected answer...)."""


@dataclass
class Interaction:
    """Handle returned by `FakeDiscord.slash/click/select/autocomplete/submit_modal`.

    Times are `time.monotonic()` seconds; latencies are measured from the moment the fake
    sent INTERACTION_CREATE on the gateway.
    """

    id: int
    token: str
    type: int  # 2 command, 3 component, 4 autocomplete, 5 modal submit
    payload: dict[str, Any]
    member: Member
    source: Message | None = None  # the message a component belongs to
    dispatched_at: float = 0.0
    acked_at: float | None = None
    done_at: float | None = None
    response_type: int | None = None
    original: Message | None = None  # what `@original` refers to
    messages: list[Message] = field(default_factory=list)  # created or edited by this interaction, in order
    choices: list[dict] | None = None  # autocomplete result
    modal: dict | None = None  # modal the bot opened
    failure: str | None = None
    _acked: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _done: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    _progress: asyncio.Event = field(default_factory=asyncio.Event, repr=False)  # set at each message or failure

    # -- what tests read -------------------------------------------------------------------

    @property
    def ack_latency(self) -> float | None:
        """Seconds from dispatch to the bot's first callback (message or deferral)."""
        return None if self.acked_at is None else self.acked_at - self.dispatched_at

    @property
    def final_latency(self) -> float | None:
        """Seconds from dispatch to the final answer (the message after a deferral)."""
        return None if self.done_at is None else self.done_at - self.dispatched_at

    @property
    def deferred(self) -> bool:
        return self.response_type in (ResponseType.DEFERRED_MESSAGE, ResponseType.DEFERRED_UPDATE)

    @property
    def message(self) -> Message | None:
        """The latest message this interaction created or edited."""
        return self.messages[-1] if self.messages else None

    async def wait_ack(self, timeout: float = 10.0) -> int:
        """Wait for the first callback; returns its type. Raises InteractionFailed."""
        await self._wait(self._acked, timeout, "acknowledgement")
        return self.response_type  # type: ignore[return-value]

    async def wait_done(self, timeout: float = 30.0) -> Any:
        """Wait for the final answer and return it.

        A Message for commands and components (after a deferral: the edited original or the
        first followup), the list of choices for autocomplete, the modal dict for a modal.
        """
        await self._wait(self._done, timeout, "final answer")
        if self.response_type == ResponseType.AUTOCOMPLETE:
            return self.choices
        if self.response_type == ResponseType.MODAL:
            return self.modal
        return self.message

    async def wait_messages(self, n: int, timeout: float = 30.0) -> list[Message]:
        """Wait until this interaction has created or edited `n` messages (e.g. a followup after the answer)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.messages) < n:
            if self.failure:
                raise InteractionFailed(f"interaction {self.id} ({self.describe()}): {self.failure}")
            self._progress.clear()
            try:
                await asyncio.wait_for(self._progress.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise asyncio.TimeoutError(f"interaction {self.id} ({self.describe()}): "
                                           f"{len(self.messages)} of {n} messages in {timeout} s") from None
        return self.messages[:n]

    async def _wait(self, event: asyncio.Event, timeout: float, what: str) -> None:
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            raise asyncio.TimeoutError(f"interaction {self.id} ({self.describe()}): no {what} in {timeout} s") from None
        if self.failure:
            raise InteractionFailed(f"interaction {self.id} ({self.describe()}): {self.failure}")

    def describe(self) -> str:
        data = self.payload.get("data", {})
        return data.get("name") or data.get("custom_id") or f"type {self.type}"

    # -- what the server records -----------------------------------------------------------

    def ack(self, response_type: int, now: float) -> None:
        self.response_type = response_type
        self.acked_at = now
        self._acked.set()

    def record(self, message: Message) -> None:
        """A message changed without being the answer (a "thinking..." placeholder deleted)."""
        self.messages.append(message)
        self._progress.set()

    def finish(self, now: float, message: Message | None = None) -> None:
        if message is not None:
            self.messages.append(message)
        if self.done_at is None:
            self.done_at = now
        self._done.set()
        self._progress.set()

    def fail(self, reason: str) -> None:
        if self.failure is None:
            self.failure = reason
        self._acked.set()
        self._done.set()
        self._progress.set()
