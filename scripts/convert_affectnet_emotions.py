"""Convert Intel's emotions-recognition-retail-0003 (INT8 OpenVINO IR) into viper/assets/affectnet_emotions.npz, once.

Dev-time only. The IR (FP16-INT8.xml + .bin of Open Model Zoo's model, Apache-2.0) is parsed with the standard
library and numpy: openvino is never needed, nor imported. Every subgraph of the IR that depends on constants only
(int8 weights -> Convert -> Subtract zero point -> Multiply scale; fp16 BatchNorm and bias constants -> Convert;
FakeQuantize of a constant, if any) is folded into float32 arrays, computed in float32 as OpenVINO does, and the
arrays the network reads are written under the state_dict names of
viper.backbones.affectnet_emotions_net.AffectNetEmotions. Of the FakeQuantize nodes on activations only the range is
kept (`*.range`: the port clamps there and runs float activations; why, with figures, in the module's docstring).

The check (unless --no-check) runs the port against an independent reference: this file's interpreter of the IR
graph itself, node by node in float64 with torch.nn.functional, on random inputs and on real face crops of the
bundled RAVDESS clips; it must agree to 1e-5. --compare also prints how far the port is from the IR run with plain
float activations and with the FakeQuantize nodes applied whole (clamp and round).

    python scripts/convert_affectnet_emotions.py [path/to/FP16-INT8.xml]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_XML = REPO.parent / "shared" / "models" / "openvino-emotions-retail-0003" / "FP16-INT8.xml"
ASSETS = REPO / "src" / "viper" / "assets"
OUT = ASSETS / "affectnet_emotions.npz"
LICENSE_OUT = ASSETS / "AFFECTNET_EMOTIONS_LICENSE.txt"
APACHE_SOURCE = ASSETS / "RESEMBLYZER_LICENSE.txt"  # holds the unmodified Apache-2.0 terms, copied from there
DTYPES = {"f32": np.float32, "f16": np.float16, "i8": np.int8, "u8": np.uint8, "i32": np.int32, "i64": np.int64}

# IR node name -> state_dict name. A conv's bias is the constant of the Add that follows it; each block's "norm"
# is the BatchNorm (Multiply + Add) after the residual sum, the input's is the fused mean/scale of the pixels.
CONVS = {
    "Convolution1/WithoutBiases": "stem",
    "Convolution2": "blocks.0.conv1", "Convolution3": "blocks.0.conv2",
    "Convolution4": "blocks.1.conv1", "Convolution5": "blocks.1.conv2", "Convolution6": "blocks.1.shortcut",
    "Convolution7": "blocks.2.conv1", "Convolution8": "blocks.2.conv2", "Convolution9": "blocks.2.shortcut",
    "Convolution10": "blocks.3.conv1", "Convolution11": "blocks.3.conv2", "Convolution12": "blocks.3.shortcut",
    "emotion5_conv1/WithoutBiases": "head",
}
NORMS = {"BatchNorm1": "input_norm", "BatchNorm4": "blocks.0.norm", "BatchNorm6": "blocks.1.norm",
         "BatchNorm8": "blocks.2.norm", "BatchNorm10": "blocks.3.norm"}
# activation FakeQuantize node (named after the op it feeds) -> the Clamp that keeps its range; each block clamps
# its first conv's output (clamp1), its second's (clamp2), its shortcut conv's, the sum, and its ReLU output
CLAMPS = {
    "Convolution1/WithoutBiases/fq_input_0": "input_clamp", "Pooling1/fq_input_0": "stem_clamp",
    "Convolution3/fq_input_0": "blocks.0.clamp1", "Eltwise1/fq_input_0": "blocks.0.clamp2",
    "BatchNorm4/mean/Fused_Mul_/fq_input_0": "blocks.0.clamp_sum", "Convolution4/fq_input_0": "blocks.0.clamp_out",
    "Convolution5/fq_input_0": "blocks.1.clamp1", "Eltwise2/fq_input_0": "blocks.1.clamp2",
    "Eltwise2/fq_input_1": "blocks.1.clamp_shortcut",
    "BatchNorm6/mean/Fused_Mul_/fq_input_0": "blocks.1.clamp_sum", "Convolution7/fq_input_0": "blocks.1.clamp_out",
    "Convolution8/fq_input_0": "blocks.2.clamp1", "Eltwise3/fq_input_0": "blocks.2.clamp2",
    "Eltwise3/fq_input_1": "blocks.2.clamp_shortcut",
    "BatchNorm8/mean/Fused_Mul_/fq_input_0": "blocks.2.clamp_sum", "Convolution10/fq_input_0": "blocks.2.clamp_out",
    "Convolution11/fq_input_0": "blocks.3.clamp1", "Eltwise4/fq_input_0": "blocks.3.clamp2",
    "Eltwise4/fq_input_1": "blocks.3.clamp_shortcut",
    "BatchNorm10/mean/Fused_Mul_/fq_input_0": "blocks.3.clamp_sum",
    "emotion5_conv1/WithoutBiases/fq_input_0": "blocks.3.clamp_out",
}
MODES = ("clamp", "float", "fake-quantize")  # what the reference does at an activation FakeQuantize node

HEADER = """\
affectnet_emotions.npz: the weights of Intel's facial-expression classifier emotions-recognition-retail-0003
(Open Model Zoo, https://github.com/openvinotoolkit/open_model_zoo, models/intel/emotions-recognition-retail-0003;
"0003_EmoNet_ResNet10", trained on AffectNet; 5 classes: neutral, happy, sad, surprise, anger),
Copyright Intel Corporation, Apache-2.0.

Converted from the INT8 OpenVINO IR of that model:
  FP16-INT8.xml sha256 {xml_sha256}
  FP16-INT8.bin sha256 {bin_sha256}
(byte-identical to model/intel/emotions-recognition-retail-0003/FP16-INT8/ of the public repository
kodamap/object_detection_demo at commit 460e6ba5da68b5852d4b17dd18c486b55ef2051c).

Modification: viper's scripts/convert_affectnet_emotions.py folded the IR's constant subgraphs into float32
arrays (int8 convolution weights dequantised as (w - zero_point) * scale per output channel; fp16 BatchNorm
multipliers, BatchNorm shifts and biases widened to float32) and stored the {count} arrays the network reads
under PyTorch state_dict names; of the 21 FakeQuantize nodes on activations only their ranges were kept (the
port clamps activations there; it does not round them to 256 levels, it runs float32). Nothing was retrained.

The Apache License 2.0 follows.

-------------------------------------------------------------------------------
"""
NOTICE = """

   Copyright Intel Corporation

   Licensed under the Apache License, Version 2.0 (the "License");
   you may not use this file except in compliance with the License.
   You may obtain a copy of the License at

       http://www.apache.org/licenses/LICENSE-2.0

   Unless required by applicable law or agreed to in writing, software
   distributed under the License is distributed on an "AS IS" BASIS,
   WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
   See the License for the specific language governing permissions and
   limitations under the License.
"""


@dataclass
class Node:
    id: str
    type: str
    name: str
    attrs: dict[str, str]
    inputs: list[str] = field(default_factory=list)  # producing node ids, by input port


@dataclass
class Graph:
    nodes: dict[str, Node]  # in the file's order, which is topological
    values: dict[str, np.ndarray]  # node id -> folded constant value

    def by_name(self, name: str) -> Node:
        return next(node for node in self.nodes.values() if node.name == name)

    def consumers(self, node_id: str) -> list[Node]:
        return [node for node in self.nodes.values() if node_id in node.inputs]


def fake_quantize(x, low, high, out_low, out_high, levels: int, xp=np):
    """OpenVINO FakeQuantize (opset 1): clamp to [low, high], snap to `levels` levels, map to the output range."""
    q = xp.round((x - low) / (high - low) * (levels - 1)) / (levels - 1) * (out_high - out_low) + out_low
    return xp.where(x <= xp.minimum(low, high), out_low, xp.where(x > xp.maximum(low, high), out_high, q))


def fold(node: Node, args: list[np.ndarray]) -> np.ndarray:
    """A constant-only node evaluated in float32 (OpenVINO's constant folding)."""
    if node.type == "Convert":
        return args[0].astype(DTYPES[node.attrs["destination_type"]])
    if node.type in ("Add", "Subtract", "Multiply"):
        op = {"Add": np.add, "Subtract": np.subtract, "Multiply": np.multiply}[node.type]
        return op(args[0], args[1], dtype=np.result_type(args[0], args[1]))
    if node.type == "FakeQuantize":
        return fake_quantize(*args, levels=int(node.attrs["levels"])).astype(args[0].dtype)
    raise ValueError(f"cannot fold {node.type} {node.name!r}")


def read_ir(xml: Path) -> Graph:
    """Nodes, edges and constants of an IR v10/v11 file; every constant subgraph folded to one array."""
    blob = xml.with_suffix(".bin").read_bytes()
    root = ET.parse(xml).getroot()
    nodes = {}
    for layer in root.iter("layer"):
        data = layer.find("data")
        nodes[layer.get("id")] = Node(layer.get("id"), layer.get("type"), layer.get("name"),
                                      dict(data.attrib) if data is not None else {})
    ports: dict[str, dict[int, str]] = defaultdict(dict)
    for edge in root.iter("edge"):
        ports[edge.get("to-layer")][int(edge.get("to-port"))] = edge.get("from-layer")
    values = {}
    for node in nodes.values():
        node.inputs = [ports[node.id][port] for port in sorted(ports[node.id])]
        if node.type == "Const":
            dtype = np.dtype(DTYPES[node.attrs["element_type"]])
            shape = [int(s) for s in node.attrs["shape"].split(",")] if node.attrs["shape"] else []
            count, offset = int(node.attrs["size"]) // dtype.itemsize, int(node.attrs["offset"])
            values[node.id] = np.frombuffer(blob, dtype, count, offset).reshape(shape).copy()
        elif node.inputs and all(i in values for i in node.inputs):
            values[node.id] = fold(node, [values[i] for i in node.inputs])
    return Graph(nodes, values)


def const_input(graph: Graph, node: Node) -> np.ndarray:
    """The one folded-constant input of a binary node."""
    (value,) = [graph.values[i] for i in node.inputs if i in graph.values]
    return value


def state_dict(graph: Graph) -> dict[str, np.ndarray]:
    """The float32 arrays AffectNetEmotions reads, from the folded IR."""
    state = {}
    for ir_name, name in CONVS.items():
        conv = graph.by_name(ir_name)
        assert conv.type == "Convolution" and conv.inputs[1] in graph.values, ir_name
        assert conv.attrs["pads_begin"] == conv.attrs["pads_end"] and conv.attrs["dilations"] == "1,1", ir_name
        (bias,) = [n for n in graph.consumers(conv.id) if n.type == "Add"]
        state[f"{name}.weight"] = graph.values[conv.inputs[1]]
        state[f"{name}.bias"] = const_input(graph, bias).reshape(-1)
    for ir_name, name in NORMS.items():
        scale = graph.by_name(f"{ir_name}/mean/Fused_Mul_")
        (shift,) = graph.consumers(scale.id)
        assert shift.type == "Add" and shift.name == f"{ir_name}/variance/Fused_Add_", ir_name
        state[f"{name}.weight"] = const_input(graph, scale).reshape(-1)
        state[f"{name}.bias"] = const_input(graph, shift).reshape(-1)
    quantized = {n.name for n in graph.nodes.values() if n.type == "FakeQuantize" and n.id not in graph.values}
    assert quantized == set(CLAMPS), sorted(quantized ^ set(CLAMPS))
    for ir_name, name in CLAMPS.items():
        node = graph.by_name(ir_name)
        low, high, out_low, out_high = (float(graph.values[i]) for i in node.inputs[1:])
        assert (low, high) == (out_low, out_high) and low < high, ir_name  # it rounds, but keeps the range
        state[f"{name}.range"] = np.array([low, high])
    return {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in state.items()}


def reference(graph: Graph, x, mode: str = "clamp"):
    """The IR evaluated node by node from the graph (float64 torch): (B, 3, 64, 64) BGR 0-255 -> probabilities.

    Independent of the hand-written port: it reads the topology, paddings and strides from the XML. An activation
    FakeQuantize clamps to its range (mode "clamp", the port's choice), does nothing ("float") or is applied whole
    ("fake-quantize": clamp and round to its 256 levels, as the INT8 model computes)."""
    import torch
    import torch.nn.functional as F

    def const(node_id: str) -> torch.Tensor:
        return torch.from_numpy(graph.values[node_id].astype(np.float64))

    out: dict[str, torch.Tensor] = {}
    for node in graph.nodes.values():
        if node.id in graph.values or node.type == "Const":
            continue
        args = [out[i] if i in out else const(i) for i in node.inputs]
        a = node.attrs
        if node.type == "Parameter":
            y = x.double()
        elif node.type in ("Add", "Subtract", "Multiply"):
            y = {"Add": torch.add, "Subtract": torch.sub, "Multiply": torch.mul}[node.type](args[0], args[1])
        elif node.type == "FakeQuantize":
            if mode == "fake-quantize":
                y = fake_quantize(*args, levels=int(a["levels"]), xp=torch)
            else:
                y = torch.clamp(args[0], args[1], args[2]) if mode == "clamp" else args[0]
        elif node.type == "Convolution":
            pads = [int(p) for p in a["pads_begin"].split(",")]
            assert a["pads_begin"] == a["pads_end"] and a["auto_pad"] == "explicit"
            y = F.conv2d(args[0], args[1], stride=[int(s) for s in a["strides"].split(",")], padding=pads)
        elif node.type == "ReLU":
            y = F.relu(args[0])
        elif node.type == "MaxPool":
            assert a["pads_begin"] == a["pads_end"] == "0,0"
            kernel, stride = ([int(v) for v in a[key].split(",")] for key in ("kernel", "strides"))
            y = F.max_pool2d(args[0], kernel, stride, ceil_mode=a["rounding_type"] == "ceil")
        elif node.type == "SoftMax":
            y = torch.softmax(args[0], dim=int(a["axis"]))
        elif node.type == "Result":
            return args[0].flatten(1)
        else:
            raise ValueError(f"node type {node.type} not handled")
        out[node.id] = y
    raise ValueError("the graph has no Result")


def demo_faces(per_clip: int = 4, margin: float = 0.1) -> list[np.ndarray]:
    """RGB face crops of the bundled RAVDESS actor-05 clips, found by viper's face detector."""
    from viper.backbones.affectnet_emotions import INPUT_SIZE
    from viper.faces import create_face_detector, crop_square
    from viper.jobs.demo import demo_clips
    from viper.sampled_video import sample_video

    detector = create_face_detector()
    faces = []
    for path in sorted(demo_clips().glob("*.mp4")):
        clip = sample_video(path, per_clip, detector)
        faces += [crop_square(frame, box, margin, INPUT_SIZE)
                  for frame, box, ok in zip(clip.frames, clip.face_boxes, clip.face_mask, strict=True) if ok]
    return faces


def check(graph: Graph, weights: Path, mode: str = "clamp") -> float:
    """Max |port - reference| of the probabilities over random inputs and real faces, printed with the argmax
    agreement."""
    import torch

    from viper.backbones.affectnet_emotions import preprocess
    from viper.backbones.affectnet_emotions_net import AffectNetEmotions

    model = AffectNetEmotions()
    with np.load(weights) as arrays:
        model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    model.eval()
    rng = np.random.default_rng(0)
    inputs = {"random": torch.from_numpy(rng.uniform(0, 255, (16, 3, 64, 64)).astype(np.float32)),
              "faces": torch.from_numpy(preprocess(demo_faces()))}
    worst = 0.0
    for label, x in inputs.items():
        with torch.no_grad():
            probs = torch.softmax(model(x), dim=1).double()
        ref = reference(graph, x, mode)
        diff = (probs - ref).abs().max().item()
        agree = (probs.argmax(1) == ref.argmax(1)).sum().item()
        worst = max(worst, diff)
        print(f"{label}: {len(x)} inputs, max |port - IR reference ({mode})| {diff:.1e}, same class {agree}/{len(x)}")
    return worst


def apache_terms(path: Path) -> str:
    """The Apache-2.0 terms (title to END OF TERMS AND CONDITIONS) from a file that holds them unmodified."""
    text, last = path.read_text(), "END OF TERMS AND CONDITIONS"
    start, end = text.index("                                 Apache License"), text.index(last) + len(last)
    return text[start:end] + "\n"


def convert(xml: Path, out: Path = OUT, license_out: Path = LICENSE_OUT, apache: Path = APACHE_SOURCE) -> Graph:
    graph = read_ir(xml)
    state = state_dict(graph)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **state)
    count = sum(array.size for array in state.values())
    print(f"wrote {out}: {len(state)} arrays, {count:,} weights, {out.stat().st_size / 1e6:.2f} MB")
    sha = {kind: hashlib.sha256(xml.with_suffix(f".{kind}").read_bytes()).hexdigest() for kind in ("xml", "bin")}
    license_out.write_text(HEADER.format(xml_sha256=sha["xml"], bin_sha256=sha["bin"], count=len(state))
                           + apache_terms(apache) + NOTICE)
    print(f"wrote {license_out} (Apache-2.0; .bin sha256 {sha['bin'][:12]}..., .xml {sha['xml'][:12]}...)")
    return graph


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("xml", type=Path, nargs="?", default=DEFAULT_XML, help="FP16-INT8.xml (its .bin beside it)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--license-out", type=Path, default=LICENSE_OUT)
    parser.add_argument("--apache", type=Path, default=APACHE_SOURCE, help="a file with the Apache-2.0 terms")
    parser.add_argument("--no-check", action="store_true", help="skip the check against the IR interpreter")
    parser.add_argument("--compare", action="store_true", help="also compare with float and fake-quantized IR")
    args = parser.parse_args(argv)
    graph = convert(args.xml, args.out, args.license_out, args.apache)
    if args.no_check:
        return 0
    worst = check(graph, args.out)
    for mode in MODES[1:] if args.compare else ():
        check(graph, args.out, mode)
    return 0 if worst < 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
