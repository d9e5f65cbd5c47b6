"""Image folders -> ArrayRecord shards, for fast reads from GCS and network disks.

    python -m mim_jax.data.convert --src=/data/imagenet --dst=/data/imagenet_ar \
        --splits=train,val --workers=16

reads `src/<split>/<class>/<image>`, checks every image decodes (unreadable ones are
skipped and listed), and writes `dst/<split>.array_record-XXXXX-of-YYYYY` (records:
msgpack {"encoded": the original file bytes, "label", "path"}) plus `dst/dataset_info.json`
(classes, per-split example counts, files, skipped). Train with
`--config.data.name=array_record --config.data.root=DST` (copy DST to a bucket with
`gcloud storage cp -r` to read it from there).
"""

import json
import multiprocessing
import os
from pathlib import Path

from absl import app, flags, logging
from array_record.python.array_record_module import ArrayRecordWriter

from mim_jax.data import decode, sources

_SRC = flags.DEFINE_string("src", None, "Folder holding <split>/<class>/<image>.")
_DST = flags.DEFINE_string("dst", None, "Output directory.")
_SPLITS = flags.DEFINE_list("splits", ["train", "val"], "Split subdirectories of --src.")
_SHARD_MB = flags.DEFINE_float("shard_mb", 1024, "Approximate size of one shard file (MB).")
_WORKERS = flags.DEFINE_integer("workers", os.cpu_count() or 1, "Processes checking images.")
_VERIFY = flags.DEFINE_bool("verify", True, "Fully decode every image (skip the bad ones).")


def _read_checked(args: tuple[str, bool]) -> tuple[bytes | None, str | None]:
    """(file bytes, None), or (None, why it is unusable)."""
    path, verify = args
    try:
        data = Path(path).read_bytes()
        if verify:
            decode.decode(data)
        else:
            decode.size(data)
        return data, None
    except (OSError, decode.DecodeError) as e:
        return None, str(e)


def convert_split(
    directory: Path,
    dst: Path,
    split: str,
    classes: list[str],
    shard_bytes: int,
    workers: int,
    verify: bool = True,
) -> dict:
    """Writes one split's shards; returns its dataset_info entry."""
    found, paths, labels = sources.list_class_files(directory)
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ValueError(f"{directory}: classes {unknown[:5]} are not in the first split")
    if not paths:
        raise FileNotFoundError(f"No images under {directory}/<class>/")
    index = {name: i for i, name in enumerate(classes)}
    labels = [index[found[i]] for i in labels]
    total = sum(os.path.getsize(directory / p) for p in paths)
    num_shards = min(len(paths), max(1, -(-total // max(shard_bytes, 1))))
    names = [f"{split}.array_record-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]
    per_shard = -(-len(paths) // num_shards)
    skipped, counts = [], [0] * num_shards
    jobs = [(str(directory / p), verify) for p in paths]
    with multiprocessing.get_context("spawn").Pool(max(workers, 1)) as pool:  # no fork of JAX
        results = pool.imap(_read_checked, jobs, chunksize=64)
        writer, shard = None, -1
        for i, (data, error) in enumerate(results):
            if i // per_shard != shard:
                if writer is not None:
                    writer.close()
                shard = i // per_shard
                writer = ArrayRecordWriter(str(dst / names[shard]), "group_size:1")
            if error is not None:
                skipped.append({"path": paths[i], "error": error})
                logging.warning("Skipping %s: %s", directory / paths[i], error)
                continue
            writer.write(sources.pack_record(data, labels[i], paths[i]))
            counts[shard] += 1
        writer.close()
    logging.info(
        "%s: %d images in %d shards, %d skipped", split, sum(counts), num_shards, len(skipped)
    )
    return {"num_examples": sum(counts), "files": names, "skipped": skipped}


def convert(src: str, dst: str, splits: list[str], shard_mb: float, workers: int, verify: bool):
    src_dir, dst_dir = Path(src), Path(dst)
    missing = [s for s in splits if not (src_dir / s).is_dir()]
    if missing:
        raise FileNotFoundError(f"--src={src}: no split directories {missing}")
    dst_dir.mkdir(parents=True, exist_ok=True)
    classes, _, _ = sources.list_class_files(src_dir / splits[0])
    info = {"source": str(src_dir.absolute()), "classes": classes, "splits": {}}
    for split in splits:
        info["splits"][split] = convert_split(
            src_dir / split, dst_dir, split, classes, int(shard_mb * 2**20), workers, verify
        )
    (dst_dir / "dataset_info.json").write_text(json.dumps(info, indent=1))
    return info


def main(argv):
    del argv
    convert(_SRC.value, _DST.value, _SPLITS.value, _SHARD_MB.value, _WORKERS.value, _VERIFY.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["src", "dst"])
    app.run(main)
