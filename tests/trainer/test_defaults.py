"""The defaults `moe train gan|vae --data DIR` chooses from the data, and how given flags override them."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.trainer.conftest import write_tiny_set
from trainer.defaults import FEW_SHOT, FEW_SHOT_FADER, FEW_SHOT_MS, RECIPE_GAN_LR, DataStats, Shipped, choose, regime

SHIPPED = Shipped("moe-default", res=64, width=16, d_width=32, z_dim=128)


def _stats(images: int, cards=(8, 9, 13, 8), colour_valued=(False, False, False, True)) -> DataStats:
    names = tuple(f"a{i}" for i in range(len(cards)))
    return DataStats(images, names, tuple(cards), tuple(0.9 if c else 0.1 for c in colour_valued), tuple(colour_valued))


def _by_flag(choices):
    return {c.flag: c for c in choices}


def test_thousands_of_images_get_the_folder_defaults_without_colour_jitter_on_a_colour():
    values, choices = choose("gan", _stats(12_000), {})
    assert values == {"d_width": 24, "lr": RECIPE_GAN_LR, "cls_weight": 0.3, "ms_weight": 0.03, "cls_augment": "",
                      "cls_d_weight": 1.0, "augment": "translation", "cond_mix": 0.0, "cond_ramp_kimg": -1.0}
    lines = {c.flag: c.line() for c in choices}
    assert lines["--cls-d-weight"].startswith("chosen  cls-d-weight 1.0: D learns to read the attributes")
    assert lines["--augment"].startswith("chosen  augment translation: 'a3' is colour-valued")
    assert "no cutout" in lines["--augment"] and "no ramp" in lines["--cond-ramp-kimg"]
    assert "--from" not in lines and not any(c.given for c in choices)


def test_colour_jitter_is_kept_when_no_attribute_is_a_colour_a_gan_on_thousands_less_saturation():
    values, choices = choose("gan", _stats(12_000, colour_valued=(False,) * 4), {})
    assert values["augment"] == "brightness,contrast,translation"
    assert "not saturation: D's classification term reads the images D scores" in _by_flag(choices)["--augment"].why
    values, _ = choose("vae", _stats(12_000, colour_valued=(False,) * 4), {})
    assert values["augment"] == "color,translation"  # the VAE's classifier reads images of its own, never recoloured
    for given in ({"cls_weight": 0.0}, {"cls_augment": "translation"}):  # D classifies nothing it scores
        assert choose("gan", _stats(12_000, colour_valued=(False,) * 4), given)[0]["augment"] == "color,translation"


def test_few_shot_sets_get_cutout_and_start_from_scratch_without_shipped_weights():
    values, choices = choose("vae", _stats(100, cards=(15, 15), colour_valued=(False, False)), {})
    assert values["cls_weight"] == 0.0 and "7 images each" in _by_flag(choices)["--cls-weight"].why
    values, choices = choose("gan", _stats(100, cards=(15, 15), colour_valued=(False, False)), {})
    assert values == {"d_width": 0, "lr": RECIPE_GAN_LR, "cls_weight": 0.3, "ms_weight": FEW_SHOT_MS,
                      "cls_augment": "hue,color,translation", "cls_d_weight": 1.0,
                      "augment": "color,translation,cutout", "cond_mix": 0.0, "cond_ramp_kimg": -1.0}
    assert FEW_SHOT_MS > 0.03 and "faces-100 and pets-100" in _by_flag(choices)["--lr"].why
    by = _by_flag(choices)
    assert by["--from"].value is None and "no trained weights of this kind are installed" in by["--from"].why
    assert "ramped in" in by["--cond-ramp-kimg"].why and "on even with 100 images" in by["--cls-weight"].why
    assert "faces-100" in by["--cls-d-weight"].why and "hue-turned and not cut out" in by["--cls-augment"].why
    values, choices = choose("gan", _stats(100, cards=(15, 15), colour_valued=(True, False)), {})
    assert values["cls_augment"] == "translation" and "no hue turns" in _by_flag(choices)["--cls-augment"].why


@pytest.mark.parametrize("kind", ["gan", "vae"])
def test_few_shot_sets_start_from_the_shipped_weights(kind):
    values, choices = choose(kind, _stats(100, cards=(15, 15), colour_valued=(False, False)), {}, SHIPPED)
    assert values["init_from"] == "moe-default" and values["cls_weight"] == (0.3 if kind == "gan" else 0.0)
    line = _by_flag(choices)["--from"].line()
    assert line.startswith("chosen  from moe-default: 100 images are few") and "start fresh" in line
    if kind == "gan":  # D starts from the shipped D, so it takes its width
        assert values["d_width"] == 32 and "moe-default's discriminator width" in _by_flag(choices)["--d-width"].why
        assert "latent_adv_weight" not in values and values["lr"] == RECIPE_GAN_LR  # fine-tuned at the folder rate
    else:  # a code that tells 100 images apart tells their labels: the Fader adversary must outweigh that
        assert values["latent_adv_weight"] == FEW_SHOT_FADER > 100
        assert "tells 100 images apart" in _by_flag(choices)["--latent-adv-weight"].why
    large, _ = choose(kind, _stats(12_000), {}, SHIPPED)
    assert "init_from" not in large and "latent_adv_weight" not in large  # thousands: from scratch, the usual Fader
    values, choices = choose(kind, _stats(100), {"latent_adv_weight": 10.0}, SHIPPED)
    assert "latent_adv_weight" not in values
    if kind == "vae":
        assert _by_flag(choices)["--latent-adv-weight"].line() == "given   latent-adv-weight 10.0"


def test_a_given_size_that_misfits_the_shipped_weights_trains_from_scratch_and_a_given_from_wins():
    values, choices = choose("gan", _stats(100), {"width": 32}, SHIPPED)
    assert "init_from" not in values and values["d_width"] == 0
    why = _by_flag(choices)["--from"].why
    assert why.startswith("from scratch: --width 32 does not fit moe-default's weights (--res 64, --width 16, --d-width 32")
    values, choices = choose("gan", _stats(100), {"init_from": "runs/00001-gan-x-64", "width": 16}, SHIPPED)
    assert "init_from" not in values and _by_flag(choices)["--from"].line() == "given   from runs/00001-gan-x-64"
    assert _by_flag(choices)["--d-width"].line() == "chosen  d-width of --from: D starts from those weights, so it takes their width"
    values, choices = choose("gan", _stats(100), {"init_from": "none"}, SHIPPED)  # from scratch, asked for
    assert values["d_width"] == 0 and _by_flag(choices)["--from"].line() == "given   from none"


def test_a_set_of_a_few_thousand_gets_the_recipe_without_the_ramp():
    values, choices = choose("gan", _stats(FEW_SHOT), {})
    assert values["cls_weight"] == 0.3 and values["augment"] == "translation" and values["lr"] == RECIPE_GAN_LR == 4e-4
    assert _by_flag(choices)["--cond-ramp-kimg"].why.startswith("no ramp (1000 images")


def test_a_few_shot_vae_with_enough_images_per_value_gets_the_classification_term():
    values, choices = choose("vae", _stats(999, cards=(6, 4, 5), colour_valued=(True, False, False)), {}, SHIPPED)
    assert values["cls_weight"] == 0.3 and values["cls_fake_weight"] == 1.0  # 166 images per value
    assert values["init_from"] == "moe-default" and values["latent_adv_weight"] == FEW_SHOT_FADER  # still few-shot
    assert "at least 166 images per value" in _by_flag(choices)["--cls-weight"].why
    assert "measured at 999 images of critters" in _by_flag(choices)["--cls-weight"].why
    values, _ = choose("vae", _stats(999, cards=(40, 4), colour_valued=(False, False)), {}, SHIPPED)
    assert values["cls_weight"] == 0.0 and "cls_fake_weight" not in values  # 25 per value


def test_too_few_images_per_value_turn_the_classification_term_off():
    values, choices = choose("vae", _stats(2000, cards=(100, 4), colour_valued=(False, False)), {})
    assert values["cls_weight"] == 0.0 and "'a0' has 100 values, about 20 images each" in _by_flag(choices)["--cls-weight"].why


def test_given_flags_are_never_chosen_and_the_others_follow_them():
    values, choices = choose("gan", _stats(12_000), {"cls_weight": 0.0, "augment": "", "width": 48, "lr": 1e-4})
    assert "cls_weight" not in values and "augment" not in values and "lr" not in values
    assert values["ms_weight"] == 0.0  # no mode seeking without the classification term
    assert "cls_d_weight" not in values and "--cls-d-weight" not in _by_flag(choices)  # ... and no D reading to weigh
    assert "--cls-augment" not in _by_flag(choices)
    assert values["d_width"] == 48  # never narrower than a given generator
    by = _by_flag(choices)
    assert by["--cls-weight"].given and by["--cls-weight"].line() == "given   cls-weight 0.0"
    assert by["--augment"].line() == "given   augment none" and by["--lr"].line() == "given   lr 0.0001"
    values, _ = choose("gan", _stats(100), {"cls_weight": 0.0})
    assert values["ms_weight"] == 0.03 and "cls_d_weight" not in values  # few images: mode seeking even without it
    values, _ = choose("gan", _stats(100), {"lr": 2e-4})
    assert values["ms_weight"] == 0.03  # 0.05 makes up for the faster rate; at the slower one 0.03 was measured
    values, choices = choose("gan", _stats(12_000), {"cls_d_weight": 0.3})
    assert "cls_d_weight" not in values and _by_flag(choices)["--cls-d-weight"].line() == "given   cls-d-weight 0.3"


def test_vae_chooses_only_its_own_terms():
    values, choices = choose("vae", _stats(12_000), {})
    assert values == {"cls_weight": 0.3, "cls_fake_weight": 1.0, "augment": "translation"}
    assert "a classifier checks every decode" in _by_flag(choices)["--cls-weight"].why
    assert "a class of their own" in _by_flag(choices)["--cls-fake-weight"].why
    values, choices = choose("vae", _stats(12_000), {"cls_weight": 0.0})
    assert "cls_fake_weight" not in values and "--cls-fake-weight" not in _by_flag(choices)  # no classifier to teach
    values, _ = choose("vae", _stats(100), {})
    assert values["cls_weight"] == 0.0 and "cls_fake_weight" not in values


def test_regimes():
    assert [regime(n) for n in (FEW_SHOT - 1, FEW_SHOT, 12_000)] == ["few-shot", "large", "large"]
    with pytest.raises(ValueError):
        choose("upscaler", _stats(100), {})


def test_stats_of_a_folder(tiny_set):
    from trainer.data import load_dataset
    from trainer.defaults import stats_of

    stats = stats_of(load_dataset(str(tiny_set), 16))
    assert (stats.images, stats.names, stats.cardinalities) == (16, ("color", "shape"), (2, 2))
    assert stats.colour_valued == (True, False)


def _moe(*args):
    from moe.cli import app

    r = CliRunner().invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.output, json.loads(r.stdout[r.stdout.index("{"):])


def test_cli_prints_the_choices_and_a_given_flag_wins(tiny_set, tmp_path):
    out, cfg = _moe("train", "gan", "--data", str(tiny_set), "--res", "16", "--dry-run", "--ms-weight", "0.2")
    assert "defaults for 16 images, 2 attribute(s) (color 2, shape 2): few-shot set" in out
    assert "chosen  augment translation,cutout: 'color' is colour-valued" in out
    assert "given   ms-weight 0.2" in out
    assert cfg["augment"] == "translation,cutout" and cfg["d_width"] == 0 and cfg["ms_weight"] == 0.2
    assert not (tmp_path / "runs").exists()
    out, cfg = _moe("train", "vae", "--dry-run")  # the built-in set keeps TrainConfig's defaults
    assert "defaults for" not in out and cfg["augment"] == "auto" and cfg["cls_weight"] == 0.0


def test_attributes_with_few_images_per_value_get_a_note(tmp_path):
    stats = _stats(100, cards=(24, 26, 44, 6))  # lorelei-100's schema
    assert stats.thin == ("a0", "a1", "a2")
    note = stats.thin_note()
    assert "'a2' (44 values, about 2 images each)" in note and "'a0'" in note and "'a3'" not in note
    emoji = _stats(100, cards=(15, 15), colour_valued=(False, False))  # the emoji faces: about 7 per value
    assert emoji.thin == () and emoji.thin_note() == ""
    values, choices = choose("gan", stats, {})
    assert values["cond_mix"] == 0.5 and "'a2' under 5 images per value" in _by_flag(choices)["--cond-mix"].why
    assert "cond_mix" not in choose("vae", stats, {})[0]  # the VAE's conditions are the data's rows
    out, _ = _moe("train", "gan", "--data", str(write_tiny_set(tmp_path / "four", n=4)), "--res", "16", "--dry-run")
    assert "note: 'color' (2 values, about 2 images each), 'shape' (2 values, about 2 images each): under 5" in out
