"""A stand-in for a fine-tuning run (configs/finetune.yml), so the
fine-tuning benchmark's shape runs on a machine without GPUs.

It takes the trainer's arguments as `--name value` pairs (those it does not
know are accepted and ignored, as a wrapper script would pass them on), holds
memory in proportion to the model and batch size for a moment, and writes the
metrics a Hugging Face Trainer saves with `trainer.save_metrics("train", ...)`
to <output_dir>/train_results.json: train_runtime, train_samples_per_second,
train_steps_per_second, train_tokens_per_second, train_loss, and
train_tokens (tokens seen: samples × max_seq_length).
"""

import argparse
import json
import os
import time

SIZES = {"tiny-llama": 16, "tiny-mistral": 24}  # MiB held per sample in a batch


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model_name_or_path", required=True)
    p.add_argument("--output_dir", required=True)
    p.add_argument("--num_gpus", type=int, default=1)
    p.add_argument("--per_device_train_batch_size", type=int, default=4)
    p.add_argument("--max_steps", type=int, default=5)
    p.add_argument("--max_seq_length", type=int, default=512)
    p.add_argument("--step_s", type=float, default=0.05)
    a, _ignored = p.parse_known_args()

    mib = SIZES.get(a.model_name_or_path.split("/")[-1], 8) * a.per_device_train_batch_size
    held = bytearray(b"\x01") * (mib << 20)  # written, so resident
    start = time.perf_counter()
    for _ in range(a.max_steps):
        time.sleep(a.step_s / a.num_gpus)
    runtime = time.perf_counter() - start
    samples = a.max_steps * a.per_device_train_batch_size * a.num_gpus
    metrics = {
        "train_runtime": runtime,
        "train_samples_per_second": samples / runtime,
        "train_steps_per_second": a.max_steps / runtime,
        "train_tokens_per_second": samples * a.max_seq_length / runtime,
        "train_tokens": samples * a.max_seq_length,
        "train_loss": 2.0 / (1 + a.max_steps),
    }
    os.makedirs(a.output_dir, exist_ok=True)
    with open(os.path.join(a.output_dir, "train_results.json"), "w") as f:
        json.dump(metrics, f)
    print(f"***** train metrics ***** {len(held) >> 20} MiB held")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
