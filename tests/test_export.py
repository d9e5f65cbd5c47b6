"""`--mode=export`: weights to a local dir and to gs:// (a GCS emulator on 127.0.0.1),
loaded back with the same features."""

import json
import socket
from http import HTTPStatus

import jax
import numpy as np
import pytest
import safetensors.numpy
from ml_collections import ConfigDict

from mim_jax import checkpoint, export, methods
from tests import runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    out = runs.run(workdir, "--config.total_steps=3")
    assert out.returncode == 0, out.stderr[-3000:]
    return workdir


def _features_match(trained, exported_uri) -> None:
    """Features of the run's encoder == features of a fresh model initialised from the export."""
    config = ConfigDict(json.loads((trained / "config.json").read_text()))
    method = methods.build(config)
    images = jax.random.normal(jax.random.PRNGKey(0), (4, 28, 28, 1))
    original = runs.saved_params(trained)
    fresh = method.init(jax.random.PRNGKey(1), {"image": images})
    loaded, report = checkpoint.restore_params(exported_uri, fresh)
    assert not report["skipped"]
    assert all(k.split("/")[0] in method.encoder_keys for k in report["loaded"])
    assert all(k.split("/")[0] not in method.encoder_keys for k in report["reinitialized"])
    for pool in ("cls", "mean"):
        np.testing.assert_array_equal(
            method.features(loaded, images, pool), method.features(original, images, pool)
        )


def test_export_to_a_local_dir(trained, tmp_path):
    out = runs.run_main("--mode=export", f"--workdir={trained}", f"--export_to={tmp_path}/x")
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads((tmp_path / "x" / "export.json").read_text())
    assert info["step"] == 3 and info["parts"] == ["encoder"]
    tensors = safetensors.numpy.load_file(str(tmp_path / "x" / "params.safetensors"))
    original = runs.saved_params(trained)
    np.testing.assert_array_equal(
        tensors["encoder.blocks_0.attn.qkv.kernel"],
        original["encoder"]["blocks_0"]["attn"]["qkv"]["kernel"],
    )
    assert not any(k.startswith("decoder") for k in tensors)
    assert sum(v.size for v in tensors.values()) == info["num_params"]
    params, config = export.load(str(tmp_path / "x"))
    assert config.method == "mae" and set(params) == {"patch_embed", "cls_token", "encoder"}
    _features_match(trained, str(tmp_path / "x"))


def test_export_with_the_decoder(trained, tmp_path):
    out = runs.run_main(
        "--mode=export", f"--workdir={trained}", f"--export_to={tmp_path}/x", "--export_decoder"
    )
    assert out.returncode == 0, out.stderr[-3000:]
    params, _ = export.load(str(tmp_path / "x"))
    runs.assert_trees_equal(params, runs.saved_params(trained))


def test_export_refuses_to_overwrite_and_names_missing_runs(trained, tmp_path):
    assert (
        runs.run_main("--mode=export", f"--workdir={trained}", f"--export_to={tmp_path}").returncode
        == 0
    )
    again = runs.run_main("--mode=export", f"--workdir={trained}", f"--export_to={tmp_path}")
    assert again.returncode != 0 and "already holds an export" in again.stderr
    missing = runs.run_main(
        "--mode=export", f"--workdir={tmp_path}/nope", f"--export_to={tmp_path}/y"
    )
    assert missing.returncode != 0 and "no config.json" in missing.stderr


def _send_generation_on_downloads(monkeypatch) -> None:
    """Real GCS sends `x-goog-generation` with every object download; the emulator does not.
    tensorstore reads it whenever it re-reads an object (an OCDBT manifest after a retried
    conditional write) and fails with "Malformed StorageGeneration" without it, which made
    the GCS export test fail now and then."""
    from gcp_storage_emulator import server as emulator
    from gcp_storage_emulator.handlers import objects

    original = objects.download

    def download(request, response, storage, *args, **kwargs):
        original(request, response, storage, *args, **kwargs)
        if response.status in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
            params = request.params
            obj = storage.get_file_obj(params["bucket_name"], params["object_id"])
            response["x-goog-generation"] = obj["generation"]
            response["x-goog-metageneration"] = obj["metageneration"]

    for _, handlers in emulator.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is original:
                monkeypatch.setitem(handlers, method, download)


@pytest.fixture
def gcs(monkeypatch):
    """A GCS-protocol server (gcp-storage-emulator) on 127.0.0.1 with bucket `mimjax`; the
    environment points tensorstore (Orbax), gcsfs (etils) and subprocesses at it."""
    from gcp_storage_emulator.server import create_server

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _send_generation_on_downloads(monkeypatch)
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="mimjax")
    server.start()
    url = f"http://127.0.0.1:{port}"
    env = {
        "TENSORSTORE_GCS_HTTP_URL": url,
        "STORAGE_EMULATOR_HOST": url,
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test",
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
    }
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env
    server.stop()


def test_export_to_gcs_and_load_back(trained, gcs):
    out = runs.run_main(
        "--mode=export",
        f"--workdir={trained}",
        "--export_to=gs://mimjax/exports/mae",
        extra_env=gcs,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    params, config = export.load("gs://mimjax/exports/mae")
    assert config.method == "mae"
    original = runs.saved_params(trained)
    runs.assert_trees_equal(params, {k: original[k] for k in params})
    _features_match(trained, "gs://mimjax/exports/mae")
