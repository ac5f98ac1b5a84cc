"""Read what wandb wrote for offline runs: the run folders and the config each run recorded.

The sweep tests import this file by name from their own folder (which they put on ``sys.path``).
"""
import glob
import json
import os
import struct

import wandb


def offline_run_dirs(root):
    return sorted(glob.glob(os.path.join(str(root), "wandb", "offline-run-*")))


def wandb_records(path):
    """Decode a wandb transaction log (.wandb: LevelDB-style 32 KiB blocks of protobuf Records)."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    position, pending, block = 7, b"", 32768
    while position + 7 <= len(data):
        if block - position % block < 7:
            position += block - position % block
            continue
        length, kind = struct.unpack("<HB", data[position + 4:position + 7])
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def offline_run_config(run_dir):
    """The config wandb recorded for an offline run (what `wandb sync` would upload)."""
    wandb.teardown()  # wandb-core may still be writing the log after run.finish(); this waits for it
    (log,) = glob.glob(os.path.join(run_dir, "*.wandb"))
    config = {}
    for record in wandb_records(log):
        kind = record.WhichOneof("record_type")
        items = record.run.config.update if kind == "run" else record.config.update if kind == "config" else []
        config.update({item.key: json.loads(item.value_json) for item in items})
    return {key: value for key, value in config.items() if not key.startswith("_")}


def offline_run_history(run_dir):
    """The rows an offline run logged with ``run.log`` (what `wandb sync` would upload as its history)."""
    wandb.teardown()
    (log,) = glob.glob(os.path.join(run_dir, "*.wandb"))
    rows = []
    for record in wandb_records(log):
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            rows.append({key: value for key, value in items.items() if not key.startswith("_")})
    return rows
