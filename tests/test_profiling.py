"""Profile summaries: HLO ops named in a trace are sorted into what they do and in which
phase of the step they run; a traced tiny MAE step is summarized end to end."""

import json
from pathlib import Path

import jax
import pytest

from configs import mae
from mim_jax import bench, profiling
from tests.test_flops import TINY

# The shape of XLA GPU's optimized HLO (fixtures/gpu_train_step.hlo): a cuDNN attention
# custom call, a Triton GEMM fusion, a cuBLAS call, a transpose fusion, a gather, a
# layer-norm reduction, an elementwise fusion, an all-reduce, and an AdamW update fusion
# under the "optimizer" scope whose root is the guard's select (outside it).
GPU_HLO = (Path(__file__).parent / "fixtures" / "gpu_train_step.hlo").read_text()

EXPECTED = {
    "custom-call.4": ("attention kernel", "forward"),
    "gemm_fusion_dot.3": ("matmul", "backward"),
    "cublas-gemm.1": ("matmul", "forward"),
    "transpose_fusion": ("layout", "forward"),
    "gather_fusion": ("gather/scatter", "forward"),
    "input_reduce_fusion": ("reduction", "forward"),
    "loop_subtract_fusion": ("elementwise", "optimizer"),
    "all-reduce.1": ("collective", "unattributed"),
    "copy.5": ("layout", "unattributed"),
}


@pytest.mark.parametrize("op", sorted(EXPECTED))
def test_gpu_hlo_ops_are_sorted_by_what_they_do_and_their_phase(op):
    instrs, comps = profiling.parse_hlo(GPU_HLO)
    assert (profiling.categorize(op, instrs, comps), profiling.op_phase(op, instrs, comps)) == (
        EXPECTED[op]
    )


def test_hlo_without_sigils_parses_alike():
    plain = GPU_HLO.replace("%", "")
    assert profiling.parse_hlo(plain) == profiling.parse_hlo(GPU_HLO)


def test_a_kernel_missing_from_the_hlo_is_named_by_its_kernel_name():
    assert profiling.categorize("sm90_xmma_gemm_bf16", {}, {}) == "matmul"
    assert profiling.categorize("cudnn_flash_fprop", {}, {}) == "attention kernel"
    assert profiling.categorize("some_kernel", {}, {}) == "elementwise"


def test_a_traced_tiny_mae_step_is_summarized_by_op(tmp_path):
    _, _, overrides = TINY["mae"]
    config = mae.get_config()
    for key, value in overrides.items():
        section, name = key.split(".")
        config[section][name] = value
    report = bench.run(
        config, steps=1, warmup=1, batch=8, profile_dir=str(tmp_path), profile_steps=2
    )
    summary = json.loads((tmp_path / "profile_summary.json").read_text())
    total = summary["device_ms_per_step"]
    assert total > 0 and report["profile_device_ms_per_step"] == pytest.approx(total)
    assert sum(summary["by_category_ms"].values()) == pytest.approx(total)
    assert sum(summary["by_phase_ms"].values()) == pytest.approx(total)
    # The trace's op names were found in the compiled HLO: matmuls, the backward pass and
    # the optimizer's named scope are all recognised.
    assert summary["by_category_ms"]["matmul"] > 0
    assert {"forward", "backward", "optimizer"} <= set(summary["by_phase_ms"])
    assert all(r["ms"] >= 0 and r["calls"] > 0 for r in summary["top_ops"])
    assert any("train_step" in r["source"] for r in summary["top_ops"])


def test_a_gpu_trace_counts_each_kernel_once_under_its_hlo_op(tmp_path):
    """Stream kernels by their hlo_op stat, a CUDA-graph kernel by its name; the derived
    "XLA Modules" line, another module's kernel and the host plane are not counted."""
    text = (Path(__file__).parent / "fixtures" / "gpu_trace.textproto").read_text()
    trace = tmp_path / "host.xplane.pb"
    trace.write_bytes(jax.profiler.ProfileData.text_proto_to_serialized_xspace(text))
    summary = profiling.summarize(profiling.find_trace(tmp_path), GPU_HLO, steps=2)
    assert summary["by_category_ms"] == pytest.approx(
        {"attention kernel": 0.003, "matmul": 0.005, "elementwise": 0.001}
    )
    assert summary["by_phase_ms"] == pytest.approx(
        {"forward": 0.003, "backward": 0.005, "optimizer": 0.001}
    )
    assert [(r["op"], r["calls"]) for r in summary["top_ops"]] == [
        ("gemm_fusion_dot.3", 1),
        ("custom-call.4", 1),
        ("loop_subtract_fusion", 1),
    ]
    assert summary["device_ms_per_step"] == pytest.approx(0.009)


def test_host_round_trips_are_found_in_lowered_and_compiled_steps():
    def step(x):
        jax.debug.print("{}", x.sum())
        y = jax.pure_callback(lambda a: a, jax.ShapeDtypeStruct((), x.dtype), x.sum())
        return x * 2 + y

    lowered = jax.jit(step).lower(jax.numpy.ones(3))
    assert len(profiling.host_transfers(lowered.as_text())) == 2
    assert len(profiling.host_transfers(lowered.compile().as_text())) == 2
    assert profiling.host_transfers(GPU_HLO) == []
    assert profiling.host_transfers("  %outfeed.1 = token[] outfeed(%x, %t)") == ["outfeed"]
