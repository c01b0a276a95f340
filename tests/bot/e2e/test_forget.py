"""End to end: `/avatars forget` deletes a member's data on every server after a confirmation, spares
other members' data (and the uploads their saved avatars need), and refuses anyone else's press."""

from __future__ import annotations

import pytest
from PIL import Image

from engine import Recipe
from tests.bot.e2e.support import check_result, code_of, create_saved, done, png_bytes

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="package")]

TABLES = ("saved_avatars", "usage", "buckets", "latents")


def counts(world, where: str, uid: int) -> dict[str, int]:
    return {t: world.rows(f"SELECT count(*) FROM {t} WHERE member_id {where} ?", uid)[0][0] for t in TABLES}


async def test_forget_deletes_a_members_data_on_every_server_after_confirming(world):
    fake, dana, dana_there, carol = world.fake, world.dana, world.dana_strict, world.carol
    uid = dana.user.id
    for member, seed in ((dana, 401), (dana_there, 402)):  # one Discord user, two servers
        await create_saved(world, member, seed=seed)
    remixes = []
    for colour in ((201, 33, 150), (17, 99, 222)):  # two uploads (no other test's); carol builds on the first
        picture = png_bytes(Image.new("RGB", (44, 44), colour))
        remixes.append(await done(await fake.slash(dana, "avatar-remix", image=("me.png", picture, "image/png"))))
    await done(await fake.click(dana, remixes[0], emoji="💾"))
    grid = await done(await fake.click(carol, remixes[0], emoji="✨"))
    carols = await done(await fake.click(carol, grid, label="1"))
    await done(await fake.click(carol, carols, emoji="💾"))  # carol's saved avatar needs dana's upload
    upload = Recipe.from_code(code_of(remixes[0])).latent.id

    before = counts(world, "=", uid)
    assert before["saved_avatars"] == 3 and before["latents"] == 2 and before["usage"] == 2 and before["buckets"] == 2
    assert {g for (g,) in world.rows("SELECT guild_id FROM usage WHERE member_id = ?", uid)} == \
        {world.club.id, world.strict.id}
    others = counts(world, "<>", uid)

    ask = await done(await fake.slash(dana_there, "avatars forget"))  # asked on the other server
    assert ask.ephemeral and "on every server (2): 3 saved avatar(s)" in ask.content, ask.content
    assert "1 uploaded picture(s)" in ask.content and "1 of your uploaded picture(s) stay" in ask.content
    assert "2 day(s) of usage counts and 2 rate-limit record(s)" in ask.content  # one per server
    [button] = ask.buttons
    assert button["custom_id"] == f"moe:forget:{uid}" and button["label"] == "Forget me"
    assert counts(world, "=", uid) == before  # only counted

    # someone else pressing it (a modified client: the message is dana's alone) is refused
    refused = await done(await fake.forged_click(world.eve, ask, f"moe:forget:{uid}"))
    assert refused.ephemeral and "Only the member who asked" in refused.content
    assert counts(world, "=", uid) == before

    # a restart in between: the button names the member, nothing lives in memory
    await world.bot.restart()
    press = await fake.click(dana_there, ask, label="Forget me")
    answer = await done(press)
    assert press.deferred and answer is ask and not ask.buttons
    assert ask.content.startswith("Done. Deleted, on 2 server(s): 3 saved avatar(s)"), ask.content
    assert "1 of your uploaded picture(s) stay" in ask.content
    assert counts(world, "=", uid) == {"saved_avatars": 0, "usage": 0, "buckets": 0, "latents": 1}
    assert world.rows("SELECT id FROM latents WHERE member_id = ?", uid) == [(upload,)]  # carol's avatar needs it
    assert counts(world, "<>", uid) == others  # nobody else lost anything

    # carol's avatar still draws from dana's picture (export redraws it)
    [(carol_id,)] = world.rows("SELECT max(id) FROM saved_avatars WHERE member_id = ?", carol.user.id)
    exported = await done(await fake.slash(carol, "avatars export", size=128, avatar=carol_id))
    assert exported.files and exported.ephemeral, exported.content
    again = await done(await fake.slash(dana, "avatars forget"))  # nothing left to delete: no button
    assert again.ephemeral and "I keep nothing about you that I can delete" in again.content and not again.buttons
    assert "1 of your uploaded picture(s) stay" in again.content
    # dana's own old buttons say plainly what is gone; a new avatar works as before
    gone = await done(await fake.click(dana, remixes[1], emoji="✨"))  # variations need the forgotten upload
    assert gone.ephemeral and not gone.files and "no longer stored" in gone.content, gone.content
    check_result(await done(await fake.click(dana, remixes[0], emoji="🎲")), dana)  # a fresh seed: drawn

