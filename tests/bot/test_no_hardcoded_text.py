"""No member-facing words outside the message catalogues: every string the bot's code hands to
Discord as a message, a label, a placeholder, a file or option description, or a `UserError`,
is a catalogue key (worded by `bot.i18n.t`) or holds no letters (emoji, `#12`, `<@1>`, custom_id
templates). The scanner walks the AST of bot/**/*.py; log messages, docstrings and command
metadata (names and descriptions in decorators, localized by the tree's translator) are not
what it looks at. Every catalogue key the code names must exist in English."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from bot import errors
from bot.i18n import FALLBACK, catalogue

BOT = Path(__file__).resolve().parents[2] / "bot"

# calls whose first positional argument (and `content=`) is a message shown to members
MESSAGE_CALLS = {"send", "send_message", "edit_message", "edit_original_response", "edit"}
# keywords that are member-facing text in any call, except command metadata (`app_commands.*`)
TEXT_KEYWORDS = {"content", "label", "placeholder", "note"}  # note: `bot.components.post_result`
# `description=` is member-facing on these (alt text of a file, a select option's second line)
DESCRIBED = {"File", "SelectOption"}
# class attributes that hold a catalogue key, used later by `t()` or an error
KEY_ATTRIBUTES = {"refusal", "label_key"}
_FENCE = re.compile(r"```[a-z]*")


def _user_errors() -> set[str]:
    """The UserError classes whose first argument is a catalogue key (those with their own
    `__init__`, such as `RateLimited(wait_s)`, build their key themselves)."""
    found, todo = set(), [errors.UserError]
    while todo:
        cls = todo.pop()
        if cls.__init__ is errors.UserError.__init__:
            found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return found


USER_ERRORS = _user_errors()


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _is_metadata(func: ast.expr) -> bool:
    """`app_commands.command(...)`, `app_commands.describe(...)`...: the translator's, not ours."""
    return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "app_commands"


def _has_letters(text: str) -> bool:
    return any(c.isalpha() for c in _FENCE.sub("", text))  # a code fence's language is no word


def _words(node: ast.expr, keys) -> list[str]:
    """The pieces of a text expression that are words, not keys: string constants with letters
    that are not catalogue keys, and the literal parts of f-strings that hold letters."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
        return [text] if _has_letters(text) and text not in keys else []
    if isinstance(node, ast.JoinedStr):
        return [v.value for v in node.values if isinstance(v, ast.Constant) and _has_letters(str(v.value))]
    if isinstance(node, ast.BinOp):
        return _words(node.left, keys) + _words(node.right, keys)
    if isinstance(node, ast.IfExp):
        return _words(node.body, keys) + _words(node.orelse, keys)
    if isinstance(node, ast.BoolOp):
        return [w for v in node.values for w in _words(v, keys)]
    return []


def _unknown_key(node: ast.expr | None, keys) -> list[str]:
    """A key argument (of `t` or an error) that is a string but not a catalogue key."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value not in keys:
        return [node.value]
    if isinstance(node, ast.JoinedStr | ast.BinOp):
        return [ast.unparse(node)]  # a key built at run time: not checkable, so not allowed
    return []


def findings(source: str, keys=None) -> list[str]:
    """`line: text` for each hard-coded member-facing text in `source` (Python code)."""
    keys = set(catalogue(FALLBACK)) if keys is None else keys
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id in KEY_ATTRIBUTES:
                    out += [(node.lineno, w) for w in _unknown_key(node.value, keys)]
        if not isinstance(node, ast.Call):
            continue
        name = _name(node.func)
        texts: list[ast.expr] = []
        if name in MESSAGE_CALLS and node.args:
            texts.append(node.args[0])
        if name in USER_ERRORS and node.args:  # the first argument is a key, the rest parameters
            out += [(node.lineno, w) for w in _unknown_key(node.args[0], keys)]
            texts += node.args[1:]
        if name == "t" and len(node.args) >= 2:
            out += [(node.lineno, w) for w in _unknown_key(node.args[1], keys)]
        if not _is_metadata(node.func):
            texts += [k.value for k in node.keywords if k.arg in TEXT_KEYWORDS
                      or (k.arg == "description" and name in DESCRIBED)]
        out += [(node.lineno, w) for text in texts for w in _words(text, keys)]
    return [f"{line}: {text!r}" for line, text in sorted(out)]


def test_the_bot_says_nothing_outside_the_catalogues():
    found = {str(path.relative_to(BOT.parent)): hits for path in sorted(BOT.rglob("*.py"))
             if (hits := findings(path.read_text(encoding="utf-8")))}
    assert not found, f"hard-coded member-facing text (use bot.i18n.t and a catalogue key): {found}"


@pytest.mark.parametrize("planted", [
    'await interaction.followup.send("Saved it for you!", ephemeral=True)',
    'await interaction.response.send_message(f"Avatar #{n} is gone.")',
    'await interaction.edit_original_response(content="Done.", view=None)',
    'raise UserError("That is not yours.")',
    'raise NotOwner(f"Only {who} can do that.")',
    'view.add_item(ui.Button(custom_id="moe:x", label="Press me"))',
    'ui.Select(custom_id="moe:y", placeholder="choose one")',
    'discord.File(buf, filename="a.png", description="a cute avatar")',
    'discord.SelectOption(label="#1", value="1", description="saved " + when)',
    'await channel.send("Hi " + name if hello else "Bye")',
    'refusal = "Only the owner can do that."',
    't(locale, "components.no_such_key")',
    'raise UserError("errors." + kind)',
])
def test_the_scanner_finds_planted_text(planted):
    assert findings(planted), planted


@pytest.mark.parametrize("clean", [
    'await interaction.followup.send(t(interaction.locale, "components.saved", avatar=1), ephemeral=True)',
    'raise UserError("errors.not_your_avatar", avatar=12)',
    'raise NotOwner("components.not_owner")',
    'ui.Button(custom_id=f"moe:r:{ref}", emoji="🎲", label=t(locale, "components.reroll"))',
    'discord.SelectOption(label=f"#{a.id}", value=str(a.id))',
    'discord.SelectOption(label="-", value="-")',
    'await interaction.followup.send(f"{interaction.user.mention} {words}{note}")',
    'await interaction.followup.send(t(locale, "admin.reloaded") + f"\\n```json\\n{report}\\n```")',
    'raise StorageUnavailable("cancelled")  # a kind, not a key: the class words itself',

    'log.warning("could not report an error to the member: %s", e)',
    '@app_commands.describe(member="whose saved avatars to show")\ndef f(): "A docstring."',
    'refusal = "forget.refusal"',
])
def test_the_scanner_lets_keys_and_symbols_through(clean):
    assert not findings(clean), clean
