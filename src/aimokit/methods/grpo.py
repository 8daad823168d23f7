"""`train` method `grpo`: TRL's GRPOTrainer on labelled problems, rendered and graded as the kernel does.

The prompts are the kernel's own: the kernel config's protocol renders each problem through the model's
chat template (`ToolProtocol.prompt`), and the rewards read completions through the same protocol and grade
them with the kernel's grader (`rewards`). Rollouts are TRL's: transformers `generate` by default (CPU
included), or vLLM colocated on the training GPU (`use_vllm = true`, `vllm_mode = "colocate"`).

Tool use during rollouts: TRL's GRPOTrainer runs tools itself (`tools=`: Python functions the chat template
declares, called in-process up to `max_tool_calling_iterations`; or `environment_factory` / `rollout_func`,
marked experimental in TRL 1.16). None of these calls the kit's sandbox, and an in-process tool would run
model-written code unsandboxed, so rollouts here are single-turn: the model reasons and answers without
running code. Traces with tool calls are trained through `sft` on the kernel's own transcripts instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..config import ConfigError
from ..registry import METHODS
from ..train_config import COMMON

if TYPE_CHECKING:
    from ..train_config import TrainConfig


def prompts(cfg: "TrainConfig", tokenizer: Any):
    """The problems as a datasets.Dataset of (prompt, answer), prompts rendered as the kernel renders them."""
    from datasets import Dataset

    from ..config import KernelConfig
    from ..engine.chat import TokenizerRenderer
    from ..problems import load_problems, sample_problems
    from ..protocols import get_protocol

    kernel = KernelConfig.load(cfg.kernel_config)  # empty: the defaults
    protocol = get_protocol(kernel.solver.protocol, kernel.solver)
    problems = load_problems(cfg.problems or sample_problems(), kernel.competition)
    if cfg.limit:
        problems = problems[: cfg.limit]
    renderer = TokenizerRenderer(tokenizer)
    rows = [{"prompt": protocol.prompt(renderer, p.problem, kernel.solver, kernel.competition), "answer": p.answer}
            for p in problems]
    return Dataset.from_list(rows), protocol, kernel.competition


def trainer(cfg: "TrainConfig", model: Any, tokenizer: Any, peft_config: Any, common: dict[str, Any]):
    from trl import GRPOConfig, GRPOTrainer

    from ..rewards import resolve

    dataset, protocol, comp = prompts(cfg, tokenizer)
    args = dict(common)
    args.pop("max_length", None)  # GRPO bounds the completion instead
    grpo_args = GRPOConfig(
        beta=0.0 if cfg.beta is None else cfg.beta,  # TRL's GRPO default: no KL term (and no reference model)
        num_generations=cfg.num_generations, max_completion_length=cfg.max_completion_length,
        temperature=cfg.temperature, use_vllm=cfg.use_vllm, vllm_mode=cfg.vllm_mode,
        vllm_gpu_memory_utilization=cfg.vllm_gpu_memory_utilization,
        reward_weights=list(cfg.reward_weights) or None, **args, **cfg.method_args())
    rewards = resolve(list(cfg.rewards), protocol, comp, cfg.length_target, tokenizer)
    return GRPOTrainer(model=model, reward_funcs=rewards, args=grpo_args, train_dataset=dataset,
                       processing_class=tokenizer, peft_config=peft_config)


@METHODS.register()
class GRPO:
    name = "grpo"
    trl_config = "GRPOConfig"
    passes = (COMMON - {"max_length"}) | {"beta", "num_generations", "max_completion_length", "temperature", "use_vllm", "vllm_mode",
                       "vllm_gpu_memory_utilization", "reward_weights"}  # GRPO bounds the completion (no max_length)
    reads_files = False  # its prompts are the problems, rendered as the kernel renders them

    @staticmethod
    def check(cfg: Any) -> None:
        from ..rewards import BUILT_IN

        bad = [r for r in cfg.rewards if r not in BUILT_IN and ":" not in r]
        if bad or not cfg.rewards:
            raise ConfigError(f"rewards {bad or '[]'}: use {', '.join(BUILT_IN)} or module:function")
        if cfg.reward_weights and len(cfg.reward_weights) != len(cfg.rewards):
            raise ConfigError(f"reward_weights has {len(cfg.reward_weights)} entries for {len(cfg.rewards)} rewards")
        if cfg.num_generations < 2:
            raise ConfigError("num_generations must be >= 2: GRPO's advantage compares completions of one prompt")
        if cfg.vllm_mode not in ("colocate", "server"):
            raise ConfigError(f"vllm_mode = {cfg.vllm_mode!r}: use colocate or server")

    @staticmethod
    def trainer(cfg: Any, model: Any, tok: Any, peft_config: Any, common: dict[str, Any], train_ds: Any,
                val_ds: Any) -> Any:
        return trainer(cfg, model, tok, peft_config, common)
