"""PyTorch models -> ONNX graphs with the pack's wire format.

The wrappers put the serving contract into the graph itself: uint8 NHWC images in and
out, int64 condition indices, a blend of two conditions for the generator, so the engine
does no float pre/post-processing in Python. Exported in eval mode with the legacy
TorchScript exporter (fast and reliable for these convnets), dynamic batch axis.

Needs torch and onnx (the `train` extra).
"""

from __future__ import annotations

import copy
import io
import logging
import warnings
from dataclasses import dataclass

import onnx
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.spectral_norm import SpectralNorm, remove_spectral_norm

from trainer.models.gan import UpBlock, up_kernel

__all__ = [
    "OPSET",
    "GraphSpec",
    "GeneratorGraph",
    "DiscriminatorGraph",
    "EncoderGraph",
    "UpscalerGraph",
    "freeze",
    "wrap",
    "inference_form",
    "to_onnx",
    "to_fp16",
]

log = logging.getLogger(__name__)

OPSET = 17


def _from_uint8(image: torch.Tensor) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) in [-1, 1]."""
    return image.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def _to_uint8(x: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    x = ((x + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1)


class GeneratorGraph(nn.Module):
    """generator.onnx / decoder.onnx: (z, cond, cond_b, mix) -> image uint8 NHWC.

    The embedding is `(1 - mix) * embed(cond) + mix * embed(cond_b)`; with mix = 0 it is
    exactly `G(z, cond)`.
    """

    def __init__(self, generator: nn.Module):
        super().__init__()
        self.g = generator

    def forward(self, z, cond, cond_b, mix):
        e = (1.0 - mix) * self.g.embed(cond) + mix * self.g.embed(cond_b)  # (N, E)
        x = self.g.synthesize(z, e)  # (N, 3, H, W)
        return _to_uint8(x)


class DiscriminatorGraph(nn.Module):
    """discriminator.onnx: (image uint8 NHWC, cond) -> score (N,) float32."""

    def __init__(self, discriminator: nn.Module):
        super().__init__()
        self.d = discriminator

    def forward(self, image, cond):
        return self.d(_from_uint8(image), cond).reshape(-1)  # (N,)


class EncoderGraph(nn.Module):
    """encoder.onnx: image uint8 NHWC -> (mu, logvar), each (N, Z) float32."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.e = encoder

    def forward(self, image):
        return self.e(_from_uint8(image))  # (N, Z), (N, Z)


class UpscalerGraph(nn.Module):
    """upscaler.onnx: image uint8 NHWC (N, r, r, 3) -> upscaled uint8 NHWC (N, s*r, s*r, 3)."""

    def __init__(self, upscaler: nn.Module):
        super().__init__()
        self.u = upscaler

    def forward(self, image):
        return _to_uint8(self.u(_from_uint8(image)))  # (N, sH, sW, 3)


@dataclass(frozen=True)
class GraphSpec:
    """What one pack model looks like on the wire (mirrors the manifest entry)."""

    role: str  # generator | discriminator | encoder | decoder | upscaler
    inputs: tuple[tuple[str, str, tuple], ...]  # (name, dtype, shape with "N" for batch)
    outputs: tuple[tuple[str, str, tuple], ...]

    @classmethod
    def for_role(cls, role: str, *, z_dim: int, n_attrs: int, res: int, out_res: int | None = None) -> GraphSpec:
        """`out_res`: the upscaler's output side (its input is `res`)."""
        image = ("image", "uint8", ("N", res, res, 3))
        cond = ("cond", "int64", ("N", n_attrs))
        if role in ("generator", "decoder"):
            ins = (("z", "float32", ("N", z_dim)), cond, ("cond_b", "int64", ("N", n_attrs)),
                   ("mix", "float32", ("N", 1)))
            return cls(role, ins, (image,))
        if role == "discriminator":
            return cls(role, (image, cond), (("score", "float32", ("N",)),))
        if role == "encoder":
            return cls(role, (image,), (("mu", "float32", ("N", z_dim)), ("logvar", "float32", ("N", z_dim))))
        if role == "upscaler":
            if out_res is None:
                raise ValueError("the upscaler's graph needs out_res")
            return cls(role, (image,), (("upscaled", "uint8", ("N", out_res, out_res, 3)),))
        raise ValueError(f"unknown model role {role!r}")

    def to_manifest(self) -> tuple[list[dict], list[dict]]:
        def doc(items):
            return [{"name": n, "dtype": d, "shape": list(s)} for n, d, s in items]

        return doc(self.inputs), doc(self.outputs)


def _bake_parametrizations(module: nn.Module) -> None:
    """Replace each parametrized tensor (e.g. spectral norm's weight) with its current
    value as a plain parameter, in place on this instance only.

    `torch.nn.utils.parametrize.remove_parametrizations` is not used: it deletes the
    property from the parametrized class, which a deep copy shares with the original."""
    values = {name: getattr(module, name).detach().clone() for name in module.parametrizations}
    del module._modules["parametrizations"]
    module.__class__ = module.__class__.__bases__[0]  # ParametrizedConv2d -> Conv2d
    for name, value in values.items():
        module.register_parameter(name, nn.Parameter(value, requires_grad=False))


def freeze(model: nn.Module) -> nn.Module:
    """A detached eval-mode copy with fixed weights: BatchNorm uses running stats and
    spectral norm (either torch API) is baked into plain weights with its stored vectors,
    no power iteration."""
    # Tensors computed in a forward pass (old-style spectral norm's `weight`) cannot be
    # deep-copied; copy them detached.
    memo = {id(v): v.detach().clone() for m in model.modules() for v in vars(m).values()
            if isinstance(v, torch.Tensor) and not v.is_leaf}
    model = copy.deepcopy(model, memo).eval()
    with torch.no_grad():
        for module in list(model.modules()):
            if parametrize.is_parametrized(module):
                _bake_parametrizations(module)
            for hook in list(module._forward_pre_hooks.values()):
                if isinstance(hook, SpectralNorm):
                    remove_spectral_norm(module, name=hook.name)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class FusedUpBlock(nn.Module):
    """The inference form of the generator's `UpBlock` (nearest 2x upsample and 3x3 conv, which the
    block already runs as one stride-2 transposed conv, -> eval BatchNorm -> conditional gain/bias
    -> ReLU): the BatchNorm's running statistics folded into the transposed conv's weight and bias.
    One Conv op per block in the graph, no BatchNormalization node."""

    def __init__(self, block: UpBlock):
        super().__init__()
        bn = block.bn.bn  # affine-free BatchNorm: running statistics only
        scale = torch.rsqrt(bn.running_var + bn.eps)  # (Cout,)
        w = up_kernel(block.conv.weight * scale[:, None, None, None])  # (Cin, Cout, 4, 4)
        self.up = nn.ConvTranspose2d(w.shape[0], w.shape[1], 4, stride=2, padding=1)
        self.up.weight = nn.Parameter(w.contiguous(), requires_grad=False)
        self.up.bias = nn.Parameter(-bn.running_mean * scale, requires_grad=False)
        self.gain, self.bias = block.bn.gain, block.bn.bias

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = self.up(x)  # (B, Cout, 2H, 2W), normalised
        return F.relu(y * (1 + self.gain(w))[:, :, None, None] + self.bias(w)[:, :, None, None])


def inference_form(graph: nn.Module) -> nn.Module:
    """A copy of a frozen graph with each `UpBlock` replaced by its `FusedUpBlock` (what gets exported;
    the graph with separate BatchNorms stays the parity reference)."""
    graph = copy.deepcopy(graph)
    for parent in list(graph.modules()):
        for name, child in parent.named_children():
            if isinstance(child, UpBlock):
                with torch.no_grad():
                    parent._modules[name] = FusedUpBlock(child)
    return graph


def wrap(role: str, model: nn.Module) -> nn.Module:
    """The graph module for `role` around a frozen copy of `model`."""
    frozen = freeze(model)
    if role in ("generator", "decoder"):
        return GeneratorGraph(frozen).eval()
    if role == "discriminator":
        return DiscriminatorGraph(frozen).eval()
    if role == "encoder":
        return EncoderGraph(frozen).eval()
    if role == "upscaler":
        return UpscalerGraph(frozen).eval()
    raise ValueError(f"unknown model role {role!r}")


_TORCH_DTYPES = {"float32": torch.float32, "int64": torch.int64, "uint8": torch.uint8}


def example_inputs(spec: GraphSpec, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """Valid dummy inputs for tracing (zeros are valid condition indices; batch 2 so no
    size-1 batch axis gets specialised)."""
    return tuple(
        torch.zeros((batch, *shape[1:]), dtype=_TORCH_DTYPES[dtype]) for _, dtype, shape in spec.inputs
    )


def to_onnx(graph: nn.Module, spec: GraphSpec, opset: int = OPSET) -> onnx.ModelProto:
    """Trace `graph` (from `wrap`), in its `inference_form`, to a checked ONNX model with a dynamic
    batch axis."""
    graph = inference_form(graph)
    names_in = [n for n, _, _ in spec.inputs]
    names_out = [n for n, _, _ in spec.outputs]
    buf = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # the models' shape checks are constant for a fixed resolution; the legacy
        # exporter's deprecation notice is expected (it is the one we choose)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            graph,
            example_inputs(spec),
            buf,
            dynamo=False,
            opset_version=opset,
            input_names=names_in,
            output_names=names_out,
            dynamic_axes={n: {0: "N"} for n in names_in + names_out},
            do_constant_folding=True,
        )
    model = onnx.load_from_string(buf.getvalue())
    model.doc_string = f"moe-avatar {spec.role}"
    _declare_shapes(model.graph, spec)
    onnx.checker.check_model(model, full_check=True)
    return model


def _declare_shapes(graph: onnx.GraphProto, spec: GraphSpec) -> None:
    """Write the contract's shapes into the graph's inputs/outputs: the tracer leaves some
    output dims symbolic (e.g. after `chunk`), and Triton and readers want them fixed."""
    for values, specs in ((graph.input, spec.inputs), (graph.output, spec.outputs)):
        for value, (name, _, shape) in zip(values, specs):
            if value.name != name:
                raise ValueError(f"graph {spec.role}: expected {name!r}, the exporter named it {value.name!r}")
            dims = value.type.tensor_type.shape.dim
            del dims[:]
            for d in shape:
                dim = dims.add()
                if isinstance(d, int):
                    dim.dim_value = d
                else:
                    dim.dim_param = d


def _toposort(graph: onnx.GraphProto) -> None:
    """Reorder nodes so every input is produced before use (the float16 converter
    appends its input casts at the end)."""
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(i in known for i in n.input)]
        if not ready:
            raise ValueError("graph has a cycle or an undefined input: " + ", ".join(n.name for n in pending[:3]))
        for n in ready:
            known.update(n.output)
        ordered += ready
        done = {id(n) for n in ready}
        pending = [n for n in pending if id(n) not in done]
    del graph.node[:]
    graph.node.extend(ordered)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half-precision weights and activations, same input/output names and types (casts
    at the edges). Uses the float16 converter that ships inside onnxruntime (no extra
    dependency); ops that need float32 inputs (e.g. Resize scales) are kept float32."""
    from onnxruntime.transformers.float16 import convert_float_to_float16

    half = convert_float_to_float16(model, keep_io_types=True)
    _toposort(half.graph)
    half.doc_string = model.doc_string + " fp16"
    onnx.checker.check_model(half, full_check=True)
    return half
