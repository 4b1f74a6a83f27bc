"""Request bodies whose fields callers choose, with the contract's defaults (nmp-contract.md)."""

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomizationConfigSpec(_Spec):
    """C1's tunables: where to train and with how much hardware."""

    target: str = Field(description="Customizer target, e.g. 'meta/llama-3.2-1b-instruct@2.0'.")
    training_type: str = "sft"
    finetuning_type: str = "lora"
    num_gpus: int = Field(1, ge=1)
    num_nodes: int = Field(1, ge=1)
    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    use_sequence_parallel: bool = False
    micro_batch_size: int = Field(1, ge=1)
    training_precision: str = "bf16-mixed"
    max_seq_length: int = Field(4096, ge=1)


class LoraParams(_Spec):
    adapter_dim: int = Field(32, ge=1)
    adapter_dropout: float = Field(0.1, ge=0, lt=1)


class Hyperparameters(_Spec):
    """C2's ``hyperparameters`` object, sent as is."""

    training_type: str = "sft"
    finetuning_type: str = "lora"
    epochs: int = Field(2, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(0.0001, gt=0)
    lora: LoraParams = LoraParams()


class NimDeploymentSpec(_Spec):
    """M1's ``nim_deployment`` tunables; the image name is derived from the model."""

    image_tag: str
    gpus: int = Field(1, ge=0)
    pvc_size: str = "25Gi"
    registry_base: str = "nvcr.io/nim"
    additional_envs: dict[str, str] = Field(
        default_factory=lambda: {"NIM_GUIDED_DECODING_BACKEND": "outlines"}
    )
