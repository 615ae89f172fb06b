"""`gptstore demo` end to end on the tiny model: search, tune, metrics, deploy, three answers."""

from __future__ import annotations

from pathlib import Path

from bot.cli.main import main
from bot.console.demo import SAMPLE_FAQ, sample_pairs


def test_the_sample_faq_has_enough_pairs_for_the_demo() -> None:
    pairs = sample_pairs(SAMPLE_FAQ)
    assert len(pairs) >= 40 and all(q.endswith("?") or q for q, _ in pairs)


def test_demo_runs_the_whole_loop_unattended(home: Path, tiny_base_dir: Path, capsys,
                                            monkeypatch) -> None:
    monkeypatch.setenv("GPTSTORE_DEVICE", "cpu")
    assert main(["models", "add", "tiny", "--path", str(tiny_base_dir)]) == 0
    capsys.readouterr()
    code = main(["demo", "--base", "tiny", "--epochs", "1", "--max-examples", "12"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "store> search" in out and "smollm2-135m-instruct" in out
    assert "finished: acme-support-demo v1" in out and "Token F1" in out
    assert "now answers messages in console" in out
    first_question = sample_pairs(SAMPLE_FAQ)[0][0]
    assert f"store> {first_question}" in out and out.count("(the FAQ says:") == 3
    plot = out.split("The loss plot was saved to ")[1].split()[0]
    assert Path(plot).is_file()

    # running it again adds a version instead of failing on the taken name
    assert main(["demo", "--base", "tiny", "--epochs", "1", "--max-examples", "12"]) == 0
    assert "acme-support-demo v2" in capsys.readouterr().out
