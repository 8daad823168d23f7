"""The training job's settings, one typed config (TRL's own names where TRL has the setting).

Its own module so that what reads it (train, grpo) imports it downhill, never from each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from .config import ConfigError, Job, setting



@dataclass(frozen=True)
class TrainConfig(Job):
    """One training job. Fields named as in TRL / transformers are passed through under the same name;
    `extra` passes anything else to TRL's DPOConfig / SFTConfig verbatim."""

    what: ClassVar[str] = "train config"

    method: str = setting("dpo", help="'dpo'; 'sft': learns the traces of `build.py sft-data` (prompt, response, "
                                       "tool_spans: tool results masked), or the chosen responses of dpo-data pairs; "
                                       "'grpo': TRL's GRPO on labelled problems with the kit's rewards (see aimokit.methods.grpo).")
    model: str = setting("", help="The base model directory; empty: the embedded default.")
    train_file: str = setting("runs/dpo-data/train.parquet", help="Pairs (dpo) or prompt/chosen rows (sft), parquet.")
    val_file: str = setting("", help="Optional; evaluated every eval_steps, or once at the end.")
    output_dir: str = setting("runs/train", help="Checkpoints, the adapter, the log and the curves go here.")
    init_adapter: str = setting("", help="Continue training this adapter (its base must be `model`).")
    finetune: str = setting("lora", help="'lora': a PEFT LoRA adapter (output_dir/adapter, the kernel's engine.lora); "
                                         "'full': every weight (output_dir/model, the kernel's engine.model; needs "
                                         "the memory of the weights, gradients and optimizer state: FSDP or ZeRO-3 "
                                         "past one GPU, see configs/accelerate/).")
    lora_r: int = setting(16, help="LoRA rank.")
    lora_alpha: int = setting(32, help="LoRA alpha (the update is scaled by alpha / r).")
    lora_dropout: float = setting(0.0, help="LoRA dropout.")
    target_modules: list[str] = setting(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                        help="The modules LoRA adapts.")
    learning_rate: float = setting(5e-5, help="TRL / transformers learning_rate.")
    lr_scheduler_type: str = setting("cosine", help="TRL / transformers lr_scheduler_type.")
    warmup_steps: float = setting(0.0, help="TRL / transformers warmup_steps: a count, or below 1 a fraction of the steps.")
    beta: float | None = setting(None, help="TRL beta: DPO's temperature, GRPO's KL coefficient; unset: TRL's default "
                                            "for the method (dpo 0.1, grpo 0: no reference model).")
    loss_type: list[str] = setting(
        default_factory=lambda: ["sigmoid", "sft"],
        help="TRL's DPO losses, summed: 'sigmoid' alone only widens the chosen-rejected margin (the chosen response's "
             "own likelihood can stay low, the journal's 18 %); adding 'sft' (RPO) makes it the mode. Also 'ipo', and "
             "'nca_pair' (AIMO-2's 2nd place, with pairs that prefer shorter correct answers: dpo-data prefer_shorter).")
    loss_weights: list[float] = setting(default_factory=list, help="One per loss_type; empty: all 1.")
    num_train_epochs: float = setting(1.0, help="TRL / transformers num_train_epochs.")
    max_steps: int = setting(-1, help="Above 0, overrides num_train_epochs.")
    per_device_train_batch_size: int = setting(4, help="Sequences per device and step (also used for evaluation).")
    gradient_accumulation_steps: int = setting(1, help="Steps whose gradients are summed before an update.")
    max_length: int = setting(1024, help="Prompt plus response tokens (the journal's pairs: at most 937).")
    packing: bool = setting(False, help="sft: TRL packing, several traces to one max_length sequence (labels kept).")
    gradient_checkpointing: bool = setting(False, help="Recompute activations in the backward pass: less memory, slower.")
    liger: bool = setting(False, help="Liger's fused Triton kernels (transformers use_liger_kernel: RMSNorm, RoPE, SwiGLU, "
                                      "fused linear cross-entropy): less memory at long sequences. Needs a CUDA GPU "
                                      "and `pip install liger-kernel`.")
    precompute_ref_log_probs: bool = setting(False, help="One pass of the frozen model up front instead of every step. "
                                                         "TRL first hashes every weight on the CPU to key its cache "
                                                         "(~50 s for a 7B model, measured): worth it only over several epochs.")
    dtype: str = setting("auto", help="'auto': bf16 on a GPU that has it, float32 on CPU.")
    logging_steps: int = setting(5, help="Steps between log lines (log.jsonl).")
    save_steps: int = setting(100, help="Steps between checkpoints.")
    save_total_limit: int = setting(2, help="Checkpoints kept.")
    eval_steps: int = setting(0, help="Steps between evaluations; 0: once at the end (when val_file is set).")
    seed: int = setting(0, help="TRL / transformers seed.")
    resume: bool = setting(True, help="Continue from the newest checkpoint in output_dir/checkpoints.")
    # grpo
    problems: str = setting("", help="grpo: labelled problems (csv, parquet or jsonl); empty: the 30 AIME 2024 problems.")
    limit: int = setting(0, help="grpo: only the first N problems; 0: all.")
    kernel_config: str = setting("", help="grpo: the kernel config whose protocol, prompt and competition render the "
                                          "problems and grade the answers; empty: the kernel defaults (fenced).")
    rewards: list[str] = setting(default_factory=lambda: ["correct", "format"],
                                 help="grpo: correct (the kernel's grader), format (a closed box where the protocol "
                                      "reads answers), length (a penalty past length_target), or module:function.")
    reward_weights: list[float] = setting(default_factory=list, help="grpo: one per reward; empty: all 1.")
    length_target: int = setting(1024, help="grpo: the length reward is 0 up to this many tokens, then -1 per as many more.")
    num_generations: int = setting(8, help="grpo: completions per prompt (TRL num_generations).")
    max_completion_length: int = setting(1024, help="grpo: tokens per completion (TRL max_completion_length).")
    temperature: float = setting(1.0, help="grpo: rollout sampling temperature.")
    use_vllm: bool = setting(False, help="grpo: roll out with vLLM (TRL's integration) instead of transformers generate.")
    vllm_mode: str = setting("colocate", help="grpo: 'colocate' (vLLM on the training GPU) or 'server' (trl vllm-serve).")
    vllm_gpu_memory_utilization: float = setting(0.3, help="grpo, colocate: the share of GPU memory vLLM takes.")
    dpo: dict[str, Any] = setting(default_factory=dict, help="[dpo]: any other field of TRL's DPOConfig, under TRL's "
                                                            "own name, passed verbatim when method = 'dpo'.")
    sft: dict[str, Any] = setting(default_factory=dict, help="[sft]: any other field of TRL's SFTConfig, verbatim, when "
                                                            "method = 'sft'.")
    grpo: dict[str, Any] = setting(default_factory=dict, help="[grpo]: any other field of TRL's GRPOConfig, verbatim, "
                                                             "when method = 'grpo' (loss_type = 'dapo', epsilon, "
                                                             "scale_rewards...).")
    extra: dict[str, Any] = setting(default_factory=dict, help="Old name of the method's section: still read, for the "
                                                              "method being trained; write [dpo], [sft] or [grpo].")

    def __post_init__(self) -> None:
        from . import registry

        try:
            method = registry.METHODS.get(self.method, "method")
        except registry.RegistryError as e:
            raise ConfigError(str(e)) from None
        if self.finetune not in ("lora", "full"):
            raise ConfigError(f"finetune = {self.finetune!r}: use 'lora' or 'full'")
        if self.finetune == "full" and self.init_adapter:
            raise ConfigError("init_adapter continues a LoRA; with finetune = 'full' set model to the weights to start from")
        method.check(self)  # the method's own settings (methods/<name>.py)
        if self.per_device_train_batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ConfigError("need per_device_train_batch_size >= 1 and gradient_accumulation_steps >= 1")
        section = self.method_args()
        clash = sorted(set(section) & (method.passes | _SET_BY_KIT))
        if clash:
            raise ConfigError(f"[{self.method}] sets {clash}, which the kit passes to TRL itself: set the field "
                              f"{'s' if len(clash) > 1 else ''} of the same name at the top of the train config instead")

    def method_args(self) -> dict[str, Any]:
        """The method's own section, passed verbatim to its TRL config (the old `extra` read as that section)."""
        return {**self.extra, **getattr(self, self.method)}


# TRL 1.16's DPO losses (DPOTrainer refuses any other name, but only once the model is loaded).
DPO_LOSSES = ("sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm")

# What the kit hands every method's TRL config itself (each method adds its own: methods/<name>.py `passes`);
# a method's section may not set these too.
COMMON = {"per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "lr_scheduler_type",
          "warmup_steps", "num_train_epochs", "max_steps", "logging_steps", "save_steps", "save_total_limit", "seed",
          "gradient_checkpointing", "max_length", "eval_steps"}

_SET_BY_KIT = {"output_dir", "report_to", "bf16", "use_cpu", "eval_strategy", "per_device_eval_batch_size",
               "completion_only_loss", "use_liger_kernel"}
