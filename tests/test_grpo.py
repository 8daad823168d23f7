"""GRPO through TRL with the kit's prompts and rewards: the rewards grade as the kernel grades, and a run trains."""

import json

import pytest

from aimokit.config import CompetitionConfig, ConfigError
from aimokit.protocols import get_protocol
from aimokit.rewards import RewardError, answer_format, correct, length, resolve
from aimokit.train import TrainConfig, train

from tiny_llama import save_tiny_llama


class _Spelled:
    """A tokenizer whose "ids" are the characters of the text (decode keeps every special token)."""

    def decode(self, ids, skip_special_tokens=True):
        assert not skip_special_tokens
        return "".join(ids)


def test_the_kit_rewards_read_answers_as_the_kernel_does():
    harmony, comp = get_protocol("harmony"), CompetitionConfig(name="aimo3", answer_max=99999, modulo=0)
    done = "<|channel|>analysis<|message|>maybe \\boxed{41}<|end|><|start|>assistant<|channel|>final<|message|>\\boxed{42}"
    guess = "<|channel|>analysis<|message|>maybe \\boxed{42}<|end|>"  # a boxed guess outside the final channel
    assert correct(harmony, comp, tokenizer=_Spelled())([None, None], [None, None], answer=[42, 42],
                                                       completion_ids=[done, guess]) == [1.0, 0.0]
    assert answer_format(harmony, _Spelled())([None, None], [None, None], completion_ids=[done, guess]) == [1.0, 0.0]
    fenced = get_protocol("fenced")
    assert correct(fenced, CompetitionConfig())([None], ["so \\boxed{1042}"], answer=[42]) == [1.0]  # AIMO-2: mod 1000
    assert length(10)([None, None], ["a", "b"], completion_ids=[[1] * 10, [1] * 25]) == [0.0, -1.5]


def test_bad_rewards_name_the_fix():
    with pytest.raises(ConfigError, match=r"rewards \['accuracy'\]: use correct, format, length or module:function"):
        TrainConfig(method="grpo", rewards=["accuracy"])
    with pytest.raises(ConfigError, match="num_generations must be >= 2"):
        TrainConfig(method="grpo", num_generations=1)
    with pytest.raises(RewardError, match="reward 'nope:fn'.*module:function"):
        resolve(["nope:fn"], get_protocol("fenced"), CompetitionConfig(), 100)
    (broken,) = resolve(["grpo_rewards:broken"], get_protocol("fenced"), CompetitionConfig(), 100)
    with pytest.raises(RewardError, match=r"reward 'grpo_rewards:broken' raised ValueError\('this reward has a bug'\) "
                                          r"on a batch of 2 completions .*fix the function, or leave it out"):
        broken([None, None], ["first completion", "second"])


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from transformers import AutoTokenizer

    from aimokit.models import embedded_default_model

    # SmolLM2's chat template renders the prompts
    return save_tiny_llama(tmp_path_factory.mktemp("tiny"), AutoTokenizer.from_pretrained(embedded_default_model()))


def test_grpo_trains_on_the_kernels_prompts_with_the_kits_rewards(tiny_model, tmp_path):
    cfg = TrainConfig(method="grpo", model=str(tiny_model), output_dir=str(tmp_path / "out"), limit=2,
                      rewards=["correct", "grpo_rewards:even_ids"], reward_weights=[1.0, 0.5],
                      max_steps=2, per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
                      logging_steps=1, save_steps=100)
    adapter = train(cfg)
    assert (adapter / "adapter_config.json").is_file()
    logged = [h for h in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines()) if "reward" in h]
    assert len(logged) == 2
    for h in logged:  # each reward is logged by its name; a random model never answers right
        assert h["rewards/correct/mean"] == 0.0 and 0.0 <= h["rewards/even_ids/mean"] <= 1.0
        assert h["reward"] == pytest.approx(0.5 * h["rewards/even_ids/mean"], abs=1e-6)


@pytest.fixture(scope="module")
def byte_model(tmp_path_factory):
    """A tiny random Llama over a byte-level vocabulary (259 ids) with SmolLM2's chat template: small enough that
    a few GRPO steps, each sampling 64 tokens, cover its vocabulary and can move where its probability goes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from aimokit.models import embedded_default_model

    out = tmp_path_factory.mktemp("byte")
    inner = Tokenizer(models.BPE(vocab={ch: i for i, ch in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))},
                                 merges=[]))
    inner.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    inner.decoder = decoders.ByteLevel()
    tok = PreTrainedTokenizerFast(tokenizer_object=inner, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                  bos_token="<|im_start|>")
    tok.chat_template = AutoTokenizer.from_pretrained(embedded_default_model()).chat_template
    return save_tiny_llama(out, tok, max_positions=4096)


def test_grpo_raises_the_mean_reward_within_a_few_steps_full_fine_tuning(byte_model, tmp_path):
    """A reward that is easy to learn (the share of even token ids) climbs within a few steps, every weight trained;
    the result is a whole model the kernel serves as engine.model."""
    from transformers import AutoModelForCausalLM

    cfg = TrainConfig(method="grpo", model=str(byte_model), output_dir=str(tmp_path / "out"), limit=4, finetune="full",
                      rewards=["grpo_rewards:even_ids"], max_steps=10, per_device_train_batch_size=8,
                      num_generations=8, max_completion_length=8, learning_rate=0.03, lr_scheduler_type="constant",
                      logging_steps=1, save_steps=100)
    saved = train(cfg)
    rewards = [h["reward"] for h in map(json.loads, (tmp_path / "out" / "log.jsonl").read_text().splitlines())
               if "reward" in h]
    assert len(rewards) == 10
    first, last = sum(rewards[:3]) / 3, sum(rewards[-3:]) / 3
    assert last >= first + 0.25 and last >= 0.8, rewards
    assert saved == tmp_path / "out" / "model" and not (saved / "adapter_config.json").exists()
    assert AutoModelForCausalLM.from_pretrained(saved).config.vocab_size == 259
