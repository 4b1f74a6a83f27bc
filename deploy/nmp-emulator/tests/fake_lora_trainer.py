"""A stand-in for the trainer venv's Python in the real training's fast tests. Run as
`PYTHON -u train_lora.py CONFIG` it trains nothing: it reports the plan, one step every
FAKE_TRAIN_STEP_S seconds with a falling loss, and saves an adapter folder; run as
`PYTHON convert_lora_to_gguf.py ... --outfile OUT ADAPTER` it writes OUT. FAKE_TRAIN_MODE=crash
makes training exit with an error on its log; FAKE_TRAIN_MODE=hang makes it ignore SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path


def train(config_path: str) -> int:
    config = json.loads(Path(config_path).read_text())
    if os.environ.get("FAKE_TRAIN_MODE") == "crash":
        print("RuntimeError: out of memory", flush=True)
        return 3
    if os.environ.get("FAKE_TRAIN_MODE") == "hang":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    examples = sum(1 for line in Path(config["examples"]).read_text().splitlines() if line)
    step_s = float(os.environ.get("FAKE_TRAIN_STEP_S", "0.05"))
    total = int(config["total_steps"])
    per_epoch = -(-examples // int(config["batch_size"]))
    with Path(config["progress"]).open("a") as out:

        def emit(record: dict[str, object]) -> None:
            out.write(json.dumps(record) + "\n")
            out.flush()

        emit({"kind": "plan", "examples": examples, "total_steps": total})
        for step in range(1, total + 1):
            time.sleep(step_s)
            loss = 2.0 / step
            emit(
                {
                    "kind": "step",
                    "step": step,
                    "epoch": step / per_epoch,
                    "loss": loss,
                    "seconds": step_s,
                }
            )
        folder = Path(config["output_dir"])
        (folder / "adapter").mkdir(parents=True, exist_ok=True)
        (folder / "adapter" / "adapter_config.json").write_text(json.dumps(config))
        emit({"kind": "saved"})
    return 0


def convert(argv: list[str]) -> int:
    out = Path(argv[argv.index("--outfile") + 1])
    out.write_bytes(b"GGUF fake adapter of " + argv[-1].encode())
    return 0


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "-u"]
    if args[0].endswith("convert_lora_to_gguf.py"):
        sys.exit(convert(args))
    sys.exit(train(args[-1]))
