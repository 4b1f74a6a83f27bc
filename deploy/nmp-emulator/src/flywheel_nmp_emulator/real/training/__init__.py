"""Real LoRA training of the real model for customization jobs (opt-in: the real backend with
`NMP_EMULATOR_REAL__TRAINER_PYTHON` set).

A job trains in a subprocess of its own, run by the trainer venv's Python (PyTorch,
transformers, peft: too heavy for the emulator's environment), then llama.cpp's
`convert_lora_to_gguf.py` turns the adapter into GGUF, and `real/adapters.py` makes the
customized model servable. `chat_format.py` turns training records into what the model must
learn, `plan.py` the job's hyperparameters into a capped plan, `command.py` both command lines,
`progress.py` reads the trainer's progress, `runs.py` owns the processes and `lifecycle.py`
moves the job along. `train_lora.py` is the trainer itself: it runs in the other venv and
imports nothing from this package.
"""
