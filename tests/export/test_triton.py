"""The Triton model repository matches the ONNX graphs it serves."""

from __future__ import annotations

import hashlib
import re

import pytest

onnx = pytest.importorskip("onnx")

from export.triton import write_triton_repo  # noqa: E402

ONNX_TO_TRITON = {onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.INT64: "TYPE_INT64",
                  onnx.TensorProto.UINT8: "TYPE_UINT8"}
TOKEN = re.compile(r'"[^"]*"|[{}\[\]:,]|[^\s{}\[\]:,"]+')


def parse_pbtxt(text: str) -> dict:
    """A small protobuf text-format reader for the subset config.pbtxt uses: scalars,
    messages, lists of scalars or messages. Repeated fields become lists."""
    tokens = TOKEN.findall(text)
    pos = 0

    def value():
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok == "{":
            return message("}")
        if tok == "[":
            items = []
            while tokens[pos] != "]":
                items.append(value())
                if tokens[pos] == ",":
                    pos += 1
            pos += 1
            return items
        if tok.startswith('"'):
            return tok[1:-1]
        return int(tok) if re.fullmatch(r"-?\d+", tok) else tok

    def message(end):
        nonlocal pos
        out: dict = {}
        while pos < len(tokens) and tokens[pos] != end:
            key = tokens[pos]
            pos += 1
            if tokens[pos] == ":":
                pos += 1
            out[key] = value()
        pos += 1
        return out

    return message(None)


def _graph_io(values):
    out = []
    for v in values:
        dims = v.type.tensor_type.shape.dim
        assert dims[0].dim_param and not dims[0].dim_value, f"{v.name}: batch axis is not dynamic"
        out.append((v.name, ONNX_TO_TRITON[v.type.tensor_type.elem_type], [d.dim_value for d in dims[1:]]))
    return out


def _config_io(tensors):
    return [(t["name"], t["data_type"], [] if "reshape" in t else t["dims"]) for t in tensors]


def test_triton_configs_match_the_onnx_graphs(tiny_pack, tmp_path):
    names = write_triton_repo(tiny_pack, tmp_path / "repo", max_batch_size=32)
    roles = ("generator", "discriminator", "encoder", "decoder")
    assert sorted(names) == sorted([f"tiny_{r}" for r in roles] + [f"tiny_{r}_fp16" for r in roles])
    for name in names:
        role, fp16 = name.removeprefix("tiny_").removesuffix("_fp16"), name.endswith("_fp16")
        cfg = parse_pbtxt((tmp_path / "repo" / name / "config.pbtxt").read_text())
        model_file = tmp_path / "repo" / name / "1" / "model.onnx"
        source = tiny_pack / f"{role}{'.fp16' if fp16 else ''}.onnx"
        assert hashlib.sha256(model_file.read_bytes()).digest() == hashlib.sha256(source.read_bytes()).digest()
        assert cfg["name"] == name and cfg["platform"] == "onnxruntime_onnx" and cfg["max_batch_size"] == 32
        assert "dynamic_batching" in cfg
        graph = onnx.load(model_file).graph
        assert _config_io(cfg["input"]) == _graph_io(graph.input)
        assert _config_io(cfg["output"]) == _graph_io(graph.output)


def test_scalar_per_item_outputs_are_reshaped(tiny_pack, tmp_path):
    write_triton_repo(tiny_pack, tmp_path)
    score = parse_pbtxt((tmp_path / "tiny_discriminator" / "config.pbtxt").read_text())["output"]
    assert score == [{"name": "score", "data_type": "TYPE_FP32", "dims": [1], "reshape": {"shape": []}}]
