"""Where a step's device time goes: reads a `jax.profiler` trace (XSpace `.xplane.pb`) and
sums the time of each executed XLA op, grouped by what the op does (matmul, attention,
layout copies, gathers, reductions, elementwise) and by phase (forward, backward, optimizer)
from the compiled HLO. Used by `python -m mim_jax.bench --profile_dir=DIR`."""

import collections
import dataclasses
import re
from pathlib import Path

# Opcodes that only move or re-view data: an op made of these alone is a layout change.
_LAYOUT = {
    "bitcast",
    "broadcast",
    "concatenate",
    "constant",
    "copy",
    "get-tuple-element",
    "iota",
    "pad",
    "parameter",
    "reshape",
    "reverse",
    "slice",
    "transpose",
    "tuple",
}
_GATHER = {"gather", "scatter", "dynamic-slice", "dynamic-update-slice", "sort"}
_CONTAINERS = {"while", "conditional", "call"}
_COLLECTIVE = ("all-reduce", "all-gather", "reduce-scatter", "collective-permute", "all-to-all")
CATEGORIES = (
    "matmul",
    "attention kernel",
    "reduction",
    "gather/scatter",
    "layout",
    "elementwise",
    "collective",
)
PHASES = ("forward", "backward", "optimizer", "unattributed")

_INSTR = re.compile(r"^\s*(?:ROOT\s+)?%?([\w.\-]+)\s*=\s*(.*)$")
_OPCODE = re.compile(r"(?<![\w\-.])([a-z][a-z0-9\-]*)\(")
_CALLS = re.compile(r"(?:calls|to_apply)=%?([\w.\-]+)")
_TARGET = re.compile(r'custom_call_target="([^"]+)"')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
# Ops that stop the device to talk to the host: Python callbacks (jax.debug.print,
# pure_callback, io_callback), in StableHLO or HLO text, and infeed/outfeed/send/recv.
_HOST = re.compile(
    r'custom_call @(\w*callback\w*)|custom_call_target="(\w*callback\w*)"'
    r"|stablehlo\.(infeed|outfeed|send|recv)\b|\s(infeed|outfeed|send|recv)\("
)


@dataclasses.dataclass(frozen=True)
class Instruction:
    opcode: str
    calls: tuple[str, ...]
    target: str  # custom_call_target ("" if none)
    op_name: str  # jax name stack of the op, from the HLO metadata


def parse_hlo(text: str) -> tuple[dict[str, Instruction], dict[str, list[str]]]:
    """Instructions by name and the instruction names of each computation, from HLO text
    (`compiled.as_text()`; with or without `%` sigils)."""
    instrs: dict[str, Instruction] = {}
    comps: dict[str, list[str]] = collections.defaultdict(list)
    comp = ""
    for line in text.splitlines():
        m = _INSTR.match(line)
        if m is None:  # a computation header, "}" or a module line
            header = line.strip()
            if header.endswith("{") and not header.startswith("HloModule"):
                comp = header.removeprefix("ENTRY").strip().lstrip("%").split(" ")[0]
            continue
        name, rest = m.groups()
        op = _OPCODE.search(rest)
        if op is None:
            continue
        target, op_name = _TARGET.search(rest), _OP_NAME.search(rest)
        instrs[name] = Instruction(
            op.group(1),
            tuple(_CALLS.findall(rest)),
            target.group(1) if target else "",
            op_name.group(1) if op_name else "",
        )
        comps[comp].append(name)
    return instrs, dict(comps)


def host_transfers(text: str) -> list[str]:
    """The host round trips (callbacks, infeed/outfeed/send/recv) in a lowered or compiled
    step's text; a training step should have none."""
    return [next(g for g in m.groups() if g) for m in _HOST.finditer(text)]


def _nested(name: str, instrs: dict, comps: dict) -> list[Instruction]:
    """`name` and every instruction of the computations it calls, recursively."""
    out, stack, seen = [], [name], set()
    while stack:
        n = stack.pop()
        if n in seen or n not in instrs:
            continue
        seen.add(n)
        out.append(instrs[n])
        for comp in instrs[n].calls:
            stack.extend(comps.get(comp, ()))
    return out


def _library_kernel(text: str) -> str | None:
    """The kind of a library call named in `text` (a custom-call target or kernel name)."""
    text = text.lower()
    if "fmha" in text or "flash" in text or "attention" in text:
        return "attention kernel"  # cuDNN fused attention (jax.nn.dot_product_attention)
    return "matmul" if "gemm" in text or "matmul" in text else None


def categorize(name: str, instrs: dict, comps: dict) -> str:
    """What the executed op `name` does, one of CATEGORIES ("elementwise" when unknown)."""
    if name not in instrs:  # e.g. a library kernel launched under another name
        lowered = name.lower()
        copy = "memcpy" in lowered or "memset" in lowered
        return _library_kernel(name) or ("layout" if copy else "elementwise")
    nested = _nested(name, instrs, comps)
    ops = {i.opcode for i in nested}
    library = _library_kernel(" ".join(i.target for i in nested))
    if library == "attention kernel":
        return library
    if ops & {"dot", "convolution"} or library == "matmul":
        return "matmul"
    if any(op.startswith(_COLLECTIVE) for op in ops):
        return "collective"
    if ops & _GATHER:
        return "gather/scatter"
    if ops & {"reduce", "reduce-window"}:
        return "reduction"  # layer norms, softmax, losses, global norms
    if ops <= _LAYOUT | {"fusion"}:
        return "layout"
    return "elementwise"


def phase(op_name: str) -> str:
    """forward / backward / optimizer from an op's jax name stack ("unattributed": none,
    e.g. a copy XLA inserted)."""
    if not op_name:
        return "unattributed"
    if "/optimizer/" in op_name or op_name.endswith("/optimizer"):
        return "optimizer"
    return "backward" if "transpose(" in op_name else "forward"


def op_phase(name: str, instrs: dict, comps: dict) -> str:
    """The phase of an executed op from all the instructions fused into it (a fusion's own
    metadata is its root's, e.g. the guard's select around an AdamW update): optimizer
    over backward over forward."""
    phases = {phase(i.op_name) for i in _nested(name, instrs, comps)}
    return next((p for p in ("optimizer", "backward", "forward") if p in phases), "unattributed")


def find_trace(trace_dir: str | Path) -> Path:
    """The newest `.xplane.pb` under `trace_dir` (where `jax.profiler.trace` wrote it)."""
    files = sorted(Path(trace_dir).rglob("*.xplane.pb"), key=lambda p: p.stat().st_mtime)
    if not files:
        raise FileNotFoundError(f"no *.xplane.pb under {trace_dir}: was the trace written?")
    return files[-1]


def load(trace: str | Path):
    """The trace file as a `jax.profiler.ProfileData`."""
    import jax

    return jax.profiler.ProfileData.from_file(str(trace))


def _plane_ops(plane, module: str, device: bool) -> dict[str, list]:
    """{op: [ns, executions]} of one plane. Device planes: the "XLA Ops" line where there is
    one (TPU), else the GPU stream lines; an event without an `hlo_op` stat (e.g. a kernel
    run from a CUDA graph) counts under its kernel name. Host planes: `hlo_op` events."""
    lines = list(plane.lines)
    names = [line.name for line in lines]
    if "XLA Ops" in names:
        lines = [line for line in lines if line.name == "XLA Ops"]
    elif device and any(n.startswith("Stream") for n in names):
        lines = [line for line in lines if line.name.startswith("Stream")]
    totals: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    for line in lines:
        for event in line.events:
            stats = dict(event.stats)
            op = stats.get("hlo_op") or (event.name if device else None)
            if not op or module not in str(stats.get("hlo_module", module)):
                continue
            totals[str(op)][0] += event.duration_ns
            totals[str(op)][1] += 1
    return totals


def op_times(data, module: str = "train_step") -> dict[str, tuple[float, int]]:
    """{op name: (total ns, executions)} of the XLA modules whose name contains `module`,
    summed over the device planes (GPU, TPU), or over the host CPU plane when no device
    plane ran any op. `data`: a `ProfileData` (see `load`)."""
    planes = list(data.planes)
    for prefix in ("/device:", "/host:CPU"):
        totals: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
        for plane in planes:
            if plane.name.startswith(prefix):
                for op, (ns, n) in _plane_ops(plane, module, prefix == "/device:").items():
                    totals[op][0] += ns
                    totals[op][1] += n
        if totals:
            return {op: (ns, n) for op, (ns, n) in totals.items()}
    raise ValueError(f"no XLA op of a module named like {module!r} in the trace")


def _instruction(op: str, instrs: dict) -> str:
    """The HLO instruction an executed op or kernel name stands for (kernels are named
    after their instruction with "." as "_": loop_add_fusion_3 -> loop_add_fusion.3)."""
    if op in instrs:
        return op
    head, _, tail = op.rpartition("_")
    return f"{head}.{tail}" if head and f"{head}.{tail}" in instrs else op


def summarize(trace: str | Path, hlo_text: str, steps: int, top: int = 15) -> dict:
    """Per-step device time of the traced steps (summed over the devices) by category, by
    phase, and the top ops; `hlo_text` is the step's compiled HLO (`compiled.as_text()`)."""
    instrs, comps = parse_hlo(hlo_text)
    times: dict[str, list] = collections.defaultdict(lambda: [0.0, 0])
    for op, (ns, n) in op_times(load(trace)).items():  # several kernels may share an op
        times[_instruction(op, instrs)][0] += ns
        times[_instruction(op, instrs)][1] += n
    by_cat = dict.fromkeys(CATEGORIES, 0.0)
    by_phase = dict.fromkeys(PHASES, 0.0)
    rows = []
    for op, (ns, n) in times.items():
        ms = ns / 1e6 / steps
        if op in instrs and instrs[op].opcode in _CONTAINERS:
            continue  # a loop or call: the ops of its body are traced and counted
        source = instrs[op].op_name if op in instrs else ""
        cat, ph = categorize(op, instrs, comps), op_phase(op, instrs, comps)
        by_cat[cat] += ms
        by_phase[ph] += ms
        rows.append(
            {"op": op, "ms": ms, "calls": n / steps, "category": cat, "phase": ph, "source": source}
        )
    total = sum(by_cat.values())
    rows.sort(key=lambda r: -r["ms"])
    return {
        "trace": str(trace),
        "steps": steps,
        "device_ms_per_step": total,
        "by_category_ms": {k: v for k, v in by_cat.items() if v},
        "by_phase_ms": {k: v for k, v in by_phase.items() if v},
        "top_ops": rows[:top],
        "ops": len(rows),
    }


def format_summary(s: dict) -> str:
    """The summary as a short text table (what the bench prints to stderr)."""
    total = s["device_ms_per_step"] or 1.0
    out = [f"device time per step: {s['device_ms_per_step']:.3f} ms over {s['ops']} ops"]
    for title, part in (("category", s["by_category_ms"]), ("phase", s["by_phase_ms"])):
        out.append(f"by {title}:")
        for k, v in sorted(part.items(), key=lambda kv: -kv[1]):
            out.append(f"  {k:<18} {v:9.3f} ms  {100 * v / total:5.1f}%")
    out.append("top ops:")
    for r in s["top_ops"]:
        out.append(
            f"  {r['ms']:9.3f} ms {100 * r['ms'] / total:5.1f}%  {r['category']:<16} "
            f"{r['phase']:<9} {r['op']}  {r['source'][-90:]}"
        )
    return "\n".join(out)
