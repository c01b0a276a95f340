"""Training defaults that fit the data: what `moe train gan|vae --data DIR` chooses by itself.

`choose(kind, stats, given)` is a pure function of the dataset's statistics (`DataStats`,
from `stats_of(dataset)`) and the flags the user gave: it returns the config values it chose
(never one the user gave) and one `Choice` per decision, each with the reason, for the command
to print. Two regimes by the number of images:

- few-shot (under FEW_SHOT): the discriminator's overfitting is the danger (Karras et al. 2020, Zhao et al.
  2020), so DiffAugment gets every op that keeps the labels true, cutout included; the VAE's classification
  term follows the images per value, as on thousands (off with a handful per value, which a classifier learns
  by heart; on where every value has PER_VALUE, as in a set of a few hundred with few values), while the GAN's is
  on with D reading real images at full weight, as on thousands (its D reads with the projection embeddings it
  needs anyway), in a pass of their own, hue-turned and never cut out, so that it learns a part's shape rather
  than the few pictures that show it; the GAN's mode-seeking term is on (few pictures per condition, and the
  generator draws one of them for every latent), a little stronger beside the classification term; the run
  starts from the shipped model's trained weights when they fit (`shipped`, Mo et al. 2020), else from scratch
  with D as wide as G.
  The VAE's Fader adversary is ten times stronger: a code that tells a hundred images apart also tells their
  labels, and at the usual weight the decoder draws the attributes from the code, not from the conditions;
  Few-shot GANs ramp their conditioning in (Shahbazi et al. 2022: conditioning from the start collapses small
  sets);
- large: the recipe measured on the built-in set (see README.md, docs/reports/README.md), the GAN
  conditioned from the start, and its D learning to read the attributes at full weight while G's
  classification term keeps the recipe's.

Whatever the regime, the GAN learns at twice the built-in set's rate, colour jitter is used only when no
attribute is colour-valued (a jittered tone is no longer the labelled tone; where the GAN's D classifies the
images it scores, as on thousands, it jitters brightness and contrast only), and the classification term
only when every value has enough images (PER_VALUE on average in the attribute with the most values).
Where an attribute has under THIN images per value, the folder shows each of its values beside few
others, so the GAN also trains on conditions drawn attribute by attribute (`--cond-mix`), and the command
says that more images would help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DataStats", "Shipped", "Choice", "choose", "stats_of", "regime", "FEW_SHOT", "PER_VALUE", "FEW_SHOT_FADER",
           "FEW_SHOT_MS", "THIN"]

FEW_SHOT = 1000  # fewer images: a few-shot set (also where the training loop ramps the GAN's conditioning in)
PER_VALUE = 30  # images per value, on average, that the classification term needs in every attribute
FOLDER_D_WIDTH = 24  # the GAN's discriminator width on a folder of thousands (1.5x the CPU generator's 16)
RECIPE_GAN_CLS, RECIPE_MS, RECIPE_VAE_CLS = 0.3, 0.03, 0.3
RECIPE_D_CLS = 1.0  # the GAN's --cls-d-weight on a folder of thousands (TrainConfig's default: --cls-weight)
RECIPE_VAE_FAKE = 1.0  # the VAE's --cls-fake-weight beside its classification term: decodes a class of their own
RECIPE_GAN_LR = 4e-4  # the GAN's Adam rate on any folder (TrainConfig's default: 2e-4)
FEW_SHOT_MS = 0.05  # the few-shot GAN's --ms-weight beside its classification term, at RECIPE_GAN_LR or faster
FEW_SHOT_FADER = 1000.0  # the VAE's --latent-adv-weight on a few-shot set (TrainConfig's default: 100)
THIN = 5  # images per value, on average, under which a model draws a value mostly in the combinations it saw
# (docs/reports/trainer-notes.md#combinations-a-few-shot-set-lacks-trainertrainfake_conditions---cond-mix)
THIN_MIX = 0.5  # the GAN's --cond-mix when an attribute is thin (TrainConfig's default: 0, the data's rows)


@dataclass(frozen=True)
class DataStats:
    """What the defaults look at: size, attributes and their values, which attributes are colours."""

    images: int
    names: tuple[str, ...]
    cardinalities: tuple[int, ...]
    colour: tuple[float, ...] = ()  # per attribute: how much of it a colour-only classifier gets (0..1)
    colour_valued: tuple[bool, ...] = ()  # per attribute: colour alone tells its values apart

    @property
    def per_value(self) -> float:
        """Images per value, on average, in the attribute with the most values."""
        return self.images / max(self.cardinalities)

    @property
    def thin(self) -> tuple[str, ...]:
        """The attributes with under THIN images per value on average."""
        return tuple(n for n, k in zip(self.names, self.cardinalities) if self.images < THIN * k)

    def thin_note(self) -> str:
        """A note on the thin attributes for the person training; '' if none."""
        values = dict(zip(self.names, self.cardinalities))
        few = [f"'{n}' ({values[n]} values, about {self.images / values[n]:.0f} images each)" for n in self.thin]
        return "" if not few else (f"{', '.join(few)}: under {THIN} images per value, a model learns a value "
                                    "mostly in the combinations with other attributes it saw it in; more images per "
                                    "value help")

    def describe(self) -> str:
        attrs = ", ".join(f"{n} {k}" for n, k in zip(self.names, self.cardinalities))
        return f"{self.images} images, {len(self.names)} attribute(s) ({attrs}): {regime(self.images)} set"


@dataclass(frozen=True)
class Shipped:
    """Trained weights the project ships for one kind, and the sizes a run needs to start from them."""

    name: str  # what --from takes: "moe-default"
    res: int
    width: int
    d_width: int  # 0: the generator's width
    z_dim: int

    def describe(self) -> str:
        d = f", --d-width {self.d_width}" if self.d_width else ""
        return f"--res {self.res}, --width {self.width}{d}, --z-dim {self.z_dim}"


FLAG_OF = {"init_from": "--from"}  # TrainConfig fields whose flag is not the field's name


@dataclass(frozen=True)
class Choice:
    """One decision: the flag, its value, whether the user gave it, and why (for a chosen one)."""

    flag: str  # as on the command line: "--cls-weight"
    value: object
    given: bool
    why: str = ""

    def line(self) -> str:
        value = {"": "none", -1.0: "auto"}.get(self.value, self.value) if self.value is not None else "none"
        head = f"{'given ' if self.given else 'chosen'}  {self.flag[2:]} {value}"
        return f"{head}: {self.why}" if self.why and not self.given else head


def regime(images: int) -> str:
    """'few-shot' or 'large' (thousands of images)."""
    return "few-shot" if images < FEW_SHOT else "large"


def stats_of(dataset) -> DataStats:
    """The statistics of a loaded `trainer.data.Dataset` (colour scores as `trainer.augment` measures them)."""
    from trainer.augment import COLOUR_VALUED, colour_scores

    cards = tuple(dataset.schema.cardinalities)
    scores = colour_scores(dataset.images, dataset.labels, cards)
    return DataStats(images=len(dataset), names=tuple(dataset.schema.names), cardinalities=cards,
                     colour=tuple(round(float(s), 3) for s in scores),
                     colour_valued=tuple(bool(s >= COLOUR_VALUED) for s in scores))


def choose(kind: str, stats: DataStats, given: Mapping[str, object],
           shipped: Shipped | None = None) -> tuple[dict, list[Choice]]:
    """The config values to use for a `kind` ("gan" | "vae") run on data with `stats`, and one
    `Choice` per decision. `given` maps TrainConfig field names to the values the user gave; those
    are never chosen (their Choice is marked given), and the rest of the decisions take them into
    account (the mode-seeking term follows a given classification weight). `shipped` is the
    trained weights of this kind the project ships, if any (`trainer.transfer.shipped`)."""
    if kind not in ("gan", "vae"):
        raise ValueError(f"kind must be gan or vae, not {kind!r}")
    few = regime(stats.images) == "few-shot"
    values: dict = {}
    choices: list[Choice] = []

    transfer, no_transfer = _transfer(stats, given, shipped) if few else (None, "")

    def decide(field: str, value, why: str) -> None:
        flag = FLAG_OF.get(field, "--" + field.replace("_", "-"))
        if field in given:
            choices.append(Choice(flag, given[field], True))
        else:
            values[field] = value
            choices.append(Choice(flag, value, False, why))

    def in_force(field: str, default=None):
        """The value `field` takes: the one the user gave, else the one chosen so far."""
        return given.get(field, values.get(field, default))

    if kind == "gan":
        width = int(given.get("width") or 0)
        if given.get("init_from") not in (None, "", "none") and "d_width" not in given:
            choices.append(Choice("--d-width", "of --from", False, "D starts from those weights, so it takes their width"))
        elif transfer is not None:
            decide("d_width", transfer.d_width, f"{transfer.name}'s discriminator width, since D starts from its "
                   "weights")
        elif few:
            decide("d_width", 0, f"the generator's width: a wider D learns {stats.images} images by heart sooner "
                   "(not measured on few-shot sets)")
        else:
            decide("d_width", max(FOLDER_D_WIDTH, width), "a D wider than the CPU generator gives back variety the "
                   f"classification term takes; {FOLDER_D_WIDTH} draws as well as 32 on the tuning sets and steps "
                   "faster, so a time budget sees more images")
        decide("lr", RECIPE_GAN_LR, "twice the built-in set's rate: in a time budget it draws small parts sooner "
               f"(measured on the tuning {'sets faces-100 and pets-100' if few else 'set faces'})")
    decide("cls_weight", *_cls(kind, stats, few))
    cls_on = bool(in_force("cls_weight"))
    if kind == "gan":
        fast = float(in_force("lr", 0.0)) >= RECIPE_GAN_LR
        if cls_on and few and fast:
            decide("ms_weight", FEW_SHOT_MS, f"pairs with the classification term; with {stats.images} images and "
                   f"the faster rate, {RECIPE_MS} leaves too little variety within a condition (measured on the "
                   "tuning set faces-100)")
        elif cls_on:
            decide("ms_weight", RECIPE_MS, "pairs with the classification term, which alone collapses the variety "
                   "within a condition (measured: 0.03; 0.1 already strays from the conditions)")
        elif few:
            decide("ms_weight", RECIPE_MS, f"with {stats.images} images a generator draws one picture per "
                   "condition for every latent; the term keeps two latents' pictures apart (measured on the tuning "
                   "set faces-100)")
        else:
            decide("ms_weight", 0.0, "off with the classification term off (it gives back what that term takes)")
        if cls_on:
            decide("cls_augment", *_cls_augment(stats, few))
            sets = ("faces-100, checked on the held-out critters-100" if few
                    else "lorelei, checked on the held-out critters")
            decide("cls_d_weight", RECIPE_D_CLS, "D learns to read the attributes of real images at full weight, G is "
                   "pushed at the classification weight: D reads small parts sooner, so G learns to draw them sooner "
                   f"(measured on {sets})")
    if kind == "vae" and cls_on:
        decide("cls_fake_weight", RECIPE_VAE_FAKE, "the classifier also learns decodes as a class of their own, so "
               "marks only it reads do not meet the term (measured on the tuning set faces, checked on the held-out "
               "critters and lorelei)")
    # D's classification term reads the very images D scores (not a pass of its own)
    decide("augment", *_augment(stats, few, kind == "gan" and cls_on and not in_force("cls_augment")))
    if kind == "vae" and few:
        decide("latent_adv_weight", FEW_SHOT_FADER, f"ten times the usual: a code that tells {stats.images} images "
               "apart also tells their labels, and at 100 the decoder draws the attributes from it, not from the "
               "conditions")
    if kind == "gan":
        if stats.thin:
            decide("cond_mix", THIN_MIX, f"{', '.join(repr(n) for n in stats.thin)} under {THIN} images per value: "
                   f"{THIN_MIX:.0%} of G's conditions take each attribute from a row of its own, so G also learns "
                   "each value beside attributes it was never shown with (measured on the tuning set lorelei-100)")
        else:
            decide("cond_mix", 0.0, f"the data's rows: every attribute has {THIN} or more images per value")
        if few:
            decide("cond_ramp_kimg", -1.0, f"ramped in over a quarter of the run ({stats.images} images: "
                   "conditioning from the start collapses small sets, Shahbazi et al. 2022)")
        else:
            decide("cond_ramp_kimg", -1.0, f"no ramp ({stats.images} images: conditioned from the start, the measured "
                   "runs drew hair and glasses sooner)")
    if "init_from" in given:
        decide("init_from", None, "")
    elif transfer is not None:
        decide("init_from", transfer.name, f"{stats.images} images are few: the layers of {transfer.name} that know "
               "how to draw a face start trained, the parts that mean its schema start fresh (Mo et al. 2020)")
    elif few:
        choices.append(Choice("--from", None, False, f"from scratch: {no_transfer}"))
    return values, choices


def _cls(kind: str, stats: DataStats, few: bool) -> tuple[float, str]:
    """The classification term's weight and why."""
    widest = max(zip(stats.cardinalities, stats.names))[1]
    if few and kind == "gan":
        return RECIPE_GAN_CLS, (f"on even with {stats.images} images: D reads the attributes with its projection "
                                "embeddings, and reading real ones at full weight teaches G the small parts sooner")
    if stats.per_value < PER_VALUE:
        return 0.0, (f"off: '{widest}' has {max(stats.cardinalities)} values, about {stats.per_value:.0f} images each "
                     f"(under {PER_VALUE}), which a classifier learns by heart (on a hundred images the VAE "
                     "gained nothing from it)")
    recipe = RECIPE_GAN_CLS if kind == "gan" else RECIPE_VAE_CLS
    what = "D classifies with its projection embeddings" if kind == "gan" else "a classifier checks every decode"
    measured = ("the measured recipe for thousands of images" if not few else
                "the recipe for thousands; measured at 999 images of critters, where it drew the eyes")
    return recipe, (f"{len(stats.names)} attribute(s) with labels for every image, at least "
                    f"{stats.per_value:.0f} images per value ({what}; {measured})")


def _cls_augment(stats: DataStats, few: bool) -> tuple[str, str]:
    """What D's classification term reads, and why: on a few-shot set real images in a pass of their own,
    hue-turned unless an attribute is colour-valued, and never cut out; on thousands the images D scores."""
    if not few:
        return "", "the images D scores, in one pass (the measured recipe for thousands of images)"
    if any(stats.colour_valued):
        return "translation", ("real images in a D pass of their own, not cut out (a hidden part's label is a guess); "
                               "no hue turns or colour jitter, since an attribute is colour-valued")
    return "hue,color,translation", (f"real images in a D pass of their own, hue-turned and not cut out: with "
                                     f"{stats.images} images D's classifier learns the pictures, not their parts, "
                                     "unless their tones change (measured on the tuning set pets-100)")


def _augment(stats: DataStats, few: bool, d_classifies: bool) -> tuple[str, str]:
    """The DiffAugment policy and why: tones jittered only when no attribute is a colour, and not their
    saturation where D classifies the images it scores; cutout only on few-shot sets."""
    coloured = [(n, s) for n, s, c in zip(stats.names, stats.colour, stats.colour_valued) if c]
    ops = ["translation"]
    if coloured:
        why = (", ".join(f"'{n}'" for n, _ in coloured) + f" {'is' if len(coloured) == 1 else 'are'} colour-valued "
               f"(a colour-only classifier gets {', '.join(f'{s:.2f}' for _, s in coloured)}), so no colour jitter")
    elif d_classifies:
        ops[:0] = ["brightness", "contrast"]
        why = ("no attribute is colour-valued, so brightness and contrast jitter; not saturation: D's classification "
               "term reads the images D scores, and a small part set apart from its surround by its hue fades with "
               "the saturation (measured on the tuning set pets, checked on the held-out emoji)")
    else:
        ops.insert(0, "color")
        why = "no attribute is colour-valued, so colour jitter is safe"
    if few:
        ops.append("cutout")
        why += (f"; cutout, as DiffAugment's few-shot runs use it: with {stats.images} images D overfits sooner "
                "than it misses a hidden part")
    else:
        why += "; no cutout (it hid small parts from D a quarter of the time in the measured runs)"
    return ",".join(ops), why


def _transfer(stats: DataStats, given: Mapping[str, object], shipped: Shipped | None) -> tuple[Shipped | None, str]:
    """The shipped weights a few-shot run starts from, or None and why not: none shipped, the user chose,
    or a size the user gave does not fit them (transfer needs the same resolution, widths and z size)."""
    if "init_from" in given:
        return None, ""
    if shipped is None:
        return None, "no trained weights of this kind are installed to start from"
    sizes = {"res": shipped.res, "width": shipped.width, "d_width": shipped.d_width, "z_dim": shipped.z_dim}
    misfit = [f"--{k.replace('_', '-')} {given[k]}" for k, v in sizes.items() if k in given and given[k] not in (v, None)]
    if misfit:
        return None, f"{', '.join(misfit)} does not fit {shipped.name}'s weights ({shipped.describe()})"
    return shipped, ""
