"""DPG-Bench: CSV reading, the official arithmetic and quirks, detail files, rescoring, VQA judges,
and a full run through the runner. Every expected number is worked out by hand in the comments."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from benchmarks.dpg.benchmark import DPGBench
from benchmarks.dpg.data import DPGItem, Proposition, load_prompts, load_question_graph
from benchmarks.dpg.rescore import format_summary, rescore_detail
from benchmarks.dpg.results_io import compose_grid, detail_line, one_line_answer, parse_detail_line
from benchmarks.dpg.rules import MODES, MissingParentError, answer_score, score_tile, zero_out
from harness.errors import HarnessError, InputError
from harness.clients.messages import UndatedModelError
from harness.judges.vqa import HFVQAJudge, OpenAIVQAJudge
from harness.models.base import ModelAdapter
from harness.registry import register
from harness.runner import evaluate
from harness.schema import SampleRecord
from harness.spec import ComponentSpec, RunSpec
from harness.testing.fake_openai import Fault, FakeOpenAIServer

HEADER = ("item_id,text,keywords,proposition_id,dependency,category_broad,category_detailed,tuple,"
          "question_natural_language\n")
# (item, proposition, dependency, tuple, question); "first" is the first data row (quirk 1)
ROWS = [("first", 1, "0", "entity - whole (cat)", "Is there a cat?"),
        ("first", 2, "1", "attribute - color (cat, black)", "Is the cat black?"),
        ("alpha", 1, "0", "entity - whole (dog)", "Is there a dog?"),
        ("alpha", 2, "1", "attribute - color (dog, brown)", "Is the dog brown?"),
        ("alpha", 3, "1,2", "relation - spatial (dog, mat, on)", "Is the dog, which is brown, on the mat?"),
        ("beta", 1, "0", "entity - whole (bird)", "Is there a bird?"),
        ("beta", 2, "0", "global - style (photo)", "Is this a photo?")]


def write_csv(path: Path, rows=ROWS) -> Path:
    body = "".join(f'{item},"a prompt, long",,{qid},"{dep}",b,d,"{tup}","{question}"\n'
                   for item, qid, dep, tup, question in rows)
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def item_of(*props: tuple[int, tuple[int, ...]]) -> DPGItem:
    item = DPGItem("x")
    for qid, dependency in props:
        item.propositions[qid] = Proposition(qid, f"q{qid}?", "entity - whole (x)", dependency, 0)
    return item


# ------------------------------------------------------------------------------ rules

def test_exact_yes_rule():
    assert answer_score("yes") == 1.0
    for answer in ("Yes", "yes.", " yes", "yes ", "YES", "y", ""):
        assert answer_score(answer) == 0.0


def test_dependency_zeroing_cascades_forward_only():
    chain = item_of((1, (0,)), (2, (1,)), (3, (2,)))
    assert zero_out(chain, [0.0, 1.0, 1.0]) == [0.0, 0.0, 0.0]      # 1 -> 2 -> 3
    assert zero_out(chain, [1.0, 0.0, 1.0]) == [1.0, 0.0, 0.0]
    # q1 depends on q2, listed later: q2 is still 1 when q1 is checked, then q2 is zeroed by q3
    later = item_of((1, (2,)), (2, (3,)), (3, (0,)))
    assert zero_out(later, [1.0, 1.0, 0.0]) == [1.0, 0.0, 0.0]
    # parent 0 is skipped, the next parent still counts
    assert zero_out(item_of((1, (0,)), (2, (0, 1))), [0.0, 1.0]) == [0.0, 0.0]


def test_missing_parent_raises_unless_an_earlier_parent_already_zeroed():
    item = item_of((2, (0,)), (3, (2, 1)))      # proposition 1 absent
    with pytest.raises(MissingParentError):
        zero_out(item, [1.0, 1.0])              # parent 2 is 1, then parent 1 is looked up
    assert zero_out(item, [0.0, 1.0]) == [0.0, 0.0]  # parent 2 is 0: break before parent 1
    assert score_tile(item, ["yes", "yes"]).error.startswith("missing_parent")
    tile = score_tile(item_of((1, (0,)), (2, (1,)), (3, (0,))), ["no", "yes", "yes"])
    assert (tile.raw, tile.zeroed, tile.score) == ([0.0, 1.0, 1.0], [0.0, 0.0, 1.0], 1 / 3)


# ------------------------------------------------------------------------------ data

def test_first_csv_row_is_dropped_in_official_mode(tmp_path):
    csv = write_csv(tmp_path / "q.csv")
    official = load_question_graph(csv, drop_first_row=True)
    assert official["first"].qids == [2] and official["alpha"].qids == [1, 2, 3]
    assert load_question_graph(csv, drop_first_row=False)["first"].qids == [1, 2]
    assert official["alpha"].propositions[3].dependency == (1, 2)
    assert official["alpha"].propositions[3].l2 == "relation - spatial"
    assert official["alpha"].propositions[3].l1 == "relation"
    # an item whose only row is the first disappears: its images are "not in the CSV"
    single = write_csv(tmp_path / "single.csv", [("solo", 1, "0", "entity - whole (a)", "Is there a?")] + ROWS[2:])
    assert "solo" not in load_question_graph(single, True)


def test_malformed_csv_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.csv"
    # the quoted text of the first row spans lines 2-3, so the second row starts on line 4
    bad.write_text(HEADER + 'a,"two\nlines",,1,0,b,d,"entity - whole (a)","Is there a?"\n'
                   'a,t,,2,"1,x",b,d,"entity - whole (b)","Is there b?"\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.csv:4: dependency must be an integer, got 'x'"):
        load_question_graph(bad)
    (tmp_path / "cols.csv").write_text("item_id,text\na,b\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"cols\.csv:1: the header lacks column"):
        load_question_graph(tmp_path / "cols.csv")


def test_packaged_prompts_and_prompt_folder(tmp_path):
    prompts = load_prompts("official")
    assert len(prompts) == 1065 and prompts[0].item_id == "0"
    assert next(p for p in prompts if p.item_id == "countbench4").prompt.endswith("\n")
    assert next(p for p in prompts if p.item_id == "diffusiondb25").prompt.startswith(" ")
    folder = tmp_path / "prompts"
    folder.mkdir()
    for name in ("whoops2", "10", "2", "whoops10"):
        (folder / f"{name}.txt").write_text(f"prompt {name} ", encoding="utf-8")
    assert [p.item_id for p in load_prompts(folder)] == ["2", "10", "whoops2", "whoops10"]
    assert load_prompts(folder)[0].prompt == "prompt 2 "


# ------------------------------------------------------------------------------ detail files

def test_detail_line_parsing_with_commas():
    line = parse_detail_line("out, dir/alpha.png, (64, 0, 128, 64), Is the dog, which is brown, on the mat?, yes\n")
    assert (line.image_path, line.crop) == ("out, dir/alpha.png", (64, 0, 128, 64))
    assert (line.question, line.answer) == ("Is the dog, which is brown, on the mat?", "yes")
    assert parse_detail_line("g/a.png, (0, 0, 8, 8), Q?, \r\n").answer == ""
    with pytest.raises(InputError, match=r"d\.txt:7:"):
        parse_detail_line("g/a.png, (0, 0, 8), Q?, yes", "d.txt", 7)
    # written answers keep the exact-yes outcome and stay parseable
    assert one_line_answer("no, yes") == "no,yes" and one_line_answer("yes\n") == "yes "
    written = detail_line("g/a.png", (0, 0, 8, 8), "Q, really?", "no, yes")
    assert written == "g/a.png, (0, 0, 8, 8), Q, really?, no,yes\n"
    assert parse_detail_line(written).answer == "no,yes"


def _detail_file(path: Path) -> Path:
    lines = []
    answers = {  # image -> tile -> [(question, answer)]
        "first": [[("Is there a cat?", "yes"), ("Is the cat black?", "yes")],
                  [("Is there a cat?", "yes"), ("Is the cat black?", "no")]],
        "alpha": [[("Is there a dog?", "yes"), ("Is the dog brown?", "yes"), (ROWS[4][4], "yes")],
                  [("Is there a dog?", "no"), ("Is the dog brown?", "yes"), (ROWS[4][4], "yes")]],
        "beta": [[("Is there a bird?", "Yes"), ("Is this a photo?", "yes")],
                 [("Is there a bird?", "yes"), ("Is this a photo?", "yes.")]],
    }
    for item, tiles in answers.items():
        for k, pairs in enumerate(tiles):
            lines += [detail_line(f"out/m/{item}.png", [(0, 0, 64, 64), (64, 0, 128, 64)][k], q, a)
                      for q, a in pairs]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_rescore_official_by_hand(tmp_path):
    summary = rescore_detail(_detail_file(tmp_path / "run_detail.txt"), write_csv(tmp_path / "q.csv"))
    # first: proposition 1 dropped, "Is the cat black?" depends on it -> KeyError -> skipped.
    # alpha: tile 0 raw 1,1,1 -> 1.0; tile 1 raw 0,1,1 -> zeroed 0,0,0 -> 0.0; image 0.5.
    # beta: tile 0 "Yes" -> 0,1 -> 0.5; tile 1 "yes." -> 1,0 -> 0.5; image 0.5. Overall 50.
    assert summary["overall"] == 50.0 and summary["images"] == 2 and summary["pic_num"] == 2
    assert (summary["images_missing_parent"], summary["images_skipped"]) == (1, 1)
    assert summary["unmatched_lines"] == 2            # first's "Is there a cat?" lines
    # categories: the last tile's raw answers: alpha 0,1,1; beta 1,0
    assert summary["l2"] == {"attribute - color": 100.0, "entity - whole": 50.0,
                             "global - style": 0.0, "relation - spatial": 100.0}
    assert summary["l1"] == {"attribute": 100.0, "entity": 50.0, "global": 0.0, "relation": 100.0}
    assert summary["image_lines"] == [["out/m/alpha.png", [1.0, 0.0], 0.5], ["out/m/beta.png", [0.5, 0.5], 0.5]]
    text = format_summary(summary)
    assert text.startswith("Model: m\nL1 category scores:\n\tattribute: 100.0\n")
    assert "\trelation - spatial: 100.0\nImage path: out/m\n" in text
    assert f"Save results to: {tmp_path / 'run.txt'}\nDPG-Bench score: 50.0\n" in text


def test_rescore_fixed_mode_by_hand(tmp_path):
    summary = rescore_detail(_detail_file(tmp_path / "d.txt"), write_csv(tmp_path / "q.csv"), mode="fixed")
    # first kept whole: tile 0 1,1 -> 1.0; tile 1 1,0 -> 0.5; image 0.75. alpha 0.5, beta 0.5.
    assert summary["overall"] == (1.75 / 3) * 100 and summary["images"] == 3
    # all tiles after zeroing: entity 1,1 | 1,0 | 0,1 -> 4/6; attribute 1,0 | 1,0; relation 1,0;
    # global 1,0
    assert summary["l2"] == {"attribute - color": 50.0, "entity - whole": (4 / 6) * 100,
                             "global - style": 50.0, "relation - spatial": 50.0}
    # an item outside the CSV is never zeroed; a CSV item without lines scores 0 in fixed mode
    more = rescore_detail(tmp_path / "d.txt", tmp_path / "q.csv", mode="fixed",
                          expected_items=["first", "alpha", "beta", "gamma"])
    assert more["overall"] == summary["overall"] and more["images_not_in_csv"] == 1
    lines = (tmp_path / "d.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "d2.txt").write_text("".join(l for l in lines if "first" not in l), encoding="utf-8")
    fewer = rescore_detail(tmp_path / "d2.txt", tmp_path / "q.csv", mode="fixed")
    assert fewer["overall"] == (0.0 + 0.5 + 0.5) / 3 * 100 and fewer["images_missing_tiles"] == 1


# ------------------------------------------------------------------------------ benchmark

@register("model", "test-dpg-painter")
class TilePainter(ModelAdapter):
    """Paints tiles 0 and 2 red, tiles 1 and 3 blue (from the sample id), 32x32."""

    capabilities = frozenset({"text_to_image"})
    model_digest = "test-dpg-painter"

    def generate_images(self, requests):
        return [Image.new("RGB", (32, 32), "red" if int(r.sample_id.rsplit("/", 1)[1]) % 2 == 0 else "blue")
                for r in requests]


@register("vqa", "test-dpg-vqa")
class ColourVQA:
    """On a red image everything is "yes"; on a blue one "Is there ..." is "no", the rest "yes"."""

    judge_id = "test-dpg-vqa"

    def __init__(self, fail_on: str | None = None):
        self.fail_on = fail_on

    def answer(self, images, questions):
        if self.fail_on and any(self.fail_on in q for q in questions):
            raise RuntimeError("judge down")
        return ["yes" if image.getpixel((0, 0))[0] > 128 or not q.startswith("Is there") else "no"
                for image, q in zip(images, questions)]


def _prompts(tmp_path: Path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"item_id": i, "prompt": f"a {i}"}) + "\n"
                            for i in ("first", "alpha", "beta", "gamma")), encoding="utf-8")
    return path


def test_an_image_with_a_judge_failure_is_excluded_in_both_modes_never_zeroed(tmp_path):
    """A judge failure is the judge's, not the model's: excluded and retried, even in fixed mode."""
    csv, prompts = write_csv(tmp_path / "q.csv"), _prompts(tmp_path)
    for mode, expected in (("official", 75.0), ("fixed", 75.0)):
        bench = DPGBench(str(csv), str(prompts), tiles_per_prompt=4, mode=mode)
        requests = [r for r in bench.requests(0) if r.extra["item_id"] in ("alpha", "beta")]
        paths = []
        for request, image in zip(requests, TilePainter().generate_images(requests)):
            paths.append(tmp_path / mode / bench.output_path(request))
            paths[-1].parent.mkdir(parents=True, exist_ok=True)
            image.save(paths[-1])
        records = bench.score(requests, paths, {"vqa": ColourVQA()})
        records[1] = SampleRecord(**{**records[1].to_dict(), "score": None, "judge_failed": True})  # alpha tile 1
        scores, counts = bench.summarize(records)
        # alpha fails; beta: red 1.0, blue 0,1 -> 0.5 -> image 0.75
        assert scores["overall"] == expected
        assert counts["images_judge_failed"] == 1 and counts["judge_failed"] == 1
        assert (counts["images_skipped"], counts["images_zeroed"]) == (1, 0)


def test_the_judges_model_facts_go_from_the_verdicts_onto_the_card(tmp_path):
    """mplug describes the model it loaded (``model_facts``); the card carries it, read from the
    verdicts; verdicts that disagree leave a note; judges that describe nothing change nothing."""
    csv, prompts = write_csv(tmp_path / "q.csv"), _prompts(tmp_path)
    bench = DPGBench(str(csv), str(prompts), tiles_per_prompt=2)
    before = dict(bench.protocol)
    requests = [r for r in bench.requests(0) if r.extra["item_id"] in ("alpha", "beta", "gamma")]
    paths = []
    for request, image in zip(requests, TilePainter().generate_images(requests)):
        paths.append(tmp_path / bench.output_path(request))
        paths[-1].parent.mkdir(parents=True, exist_ok=True)
        image.save(paths[-1])
    plain = bench.score(requests, paths, {"vqa": ColourVQA()})
    bench.summarize(plain)
    assert bench.protocol == before and not any("vqa_model" in r.verdict for r in plain)
    described = ColourVQA()
    described.model_facts = {"vision_layers": 2}
    records = bench.score(requests, paths, {"vqa": described})
    assert [r.verdict.get("vqa_model") for r in records] == [{"vision_layers": 2}] * 4 + [None] * 2  # gamma: no CSV
    bench.summarize(records)
    assert bench.protocol == {**before, "vqa_model": {"vision_layers": 2}}
    assert "vqa_model" not in bench.judging_protocol and "vqa_model" not in bench.generation_protocol
    bench.summarize(records[:1] + plain[1:])  # one verdict judged before the facts were recorded
    assert "2 different models" in bench.protocol["vqa_model"]
    bench.summarize(plain)
    assert bench.protocol == before


def test_end_to_end_run_grids_and_replay(tmp_path):
    csv, prompts = write_csv(tmp_path / "q.csv"), _prompts(tmp_path)
    spec = RunSpec(benchmark=ComponentSpec("dpg", {"csv": str(csv), "prompts": str(prompts)}),
                   model=ComponentSpec("test-dpg-painter"), judges={"vqa": ComponentSpec("test-dpg-vqa")})
    outcome = evaluate(spec, tmp_path / "run", cache_dir=tmp_path / "cache", show_progress=False)
    scores, counts = outcome.summary.scores, outcome.summary.counts
    # alpha: red tiles 1.0, blue tiles raw 0,1,1 -> zeroed 0 -> (1+0+1+0)/4 = 0.5
    # beta: red 1.0, blue 0,1 -> 0.5 -> 0.75; first: KeyError (row 1 dropped); gamma: not in CSV
    assert scores["overall"] == 62.5
    assert scores["l2"] == {"attribute - color": 100.0, "entity - whole": 0.0, "global - style": 100.0,
                            "relation - spatial": 100.0}  # last (blue) tile, raw answers
    assert (counts["samples"], counts["images_seen"], counts["images_scored"]) == (16, 4, 2)
    assert (counts["images_missing_parent"], counts["images_not_in_csv"]) == (1, 1)
    assert outcome.summary.protocol["mode"] == "official" and outcome.summary.protocol["drop_first_csv_row"]

    run = tmp_path / "run"
    grid = Image.open(run / "grids" / "alpha.png")
    assert grid.size == (64, 64)
    assert [grid.getpixel(xy) for xy in ((1, 1), (33, 1), (1, 33), (33, 33))] == \
        [(255, 0, 0), (0, 0, 255), (255, 0, 0), (0, 0, 255)]
    results = (run / "dpg_results.txt").read_text(encoding="utf-8").splitlines()
    assert results[0] == "grids/alpha.png, 1.0, 0.0, 1.0, 0.0, 0.5"
    assert results[1] == "grids/beta.png, 1.0, 0.5, 1.0, 0.5, 0.75"
    assert results[-1] == "DPG-Bench score: 62.5"
    detail = (run / "dpg_detail.txt").read_text(encoding="utf-8").splitlines()
    assert detail[0] == "grids/first.png, (0, 0, 32, 32), Is the cat black?, yes"
    assert "grids/alpha.png, (32, 0, 64, 32), Is the dog, which is brown, on the mat?, yes" in detail
    replay = rescore_detail(run / "dpg_detail.txt", csv)
    for key in ("overall", "l1", "l2"):
        assert replay[key] == scores[key]

    # mode is a scoring key: nothing is generated again, every tile is judged again
    fixed = RunSpec(benchmark=ComponentSpec("dpg", {"csv": str(csv), "prompts": str(prompts), "mode": "fixed"}),
                    model=ComponentSpec("test-dpg-painter"), judges={"vqa": ComponentSpec("test-dpg-vqa")})
    again = evaluate(fixed, tmp_path / "run-fixed", cache_dir=tmp_path / "cache", show_progress=False)
    assert (again.generated, again.judged) == (0, 16)
    # first now whole: red 1,1 -> 1; blue 0,1 -> zeroed 0,0 -> 0; image 0.5. gamma still skipped
    assert again.summary.scores["overall"] == (0.5 + 0.5 + 0.75) / 3 * 100
    replay = rescore_detail(tmp_path / "run-fixed" / "dpg_detail.txt", csv, mode="fixed",
                            expected_items=["first", "alpha", "beta"])
    for key in ("overall", "l1", "l2"):
        assert replay[key] == again.summary.scores[key]


def test_bad_parameters(tmp_path):
    csv = write_csv(tmp_path / "q.csv")
    with pytest.raises(InputError, match="mode"):
        DPGBench(str(csv), mode="strict")
    with pytest.raises(InputError, match="tiles_per_prompt"):
        DPGBench(str(csv), tiles_per_prompt=5)
    with pytest.raises(InputError, match="question CSV not found"):
        DPGBench(str(tmp_path / "absent.csv"))
    assert compose_grid([Image.new("RGB", (8, 8), "red")]).size == (8, 8)
    assert MODES["official"].drop_first_csv_row and not MODES["fixed"].drop_first_csv_row


# ------------------------------------------------------------------------------ VQA judges

def _tiny_vilt(folder: Path, favoured: int) -> Path:
    import torch
    from transformers import BertTokenizer, ViltConfig, ViltForQuestionAnswering, ViltImageProcessor, ViltProcessor

    folder.mkdir()
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "is", "there",
                                                 "a", "cat", "?"]) + "\n", encoding="utf-8")
    processor = ViltProcessor(ViltImageProcessor(size={"shortest_edge": 32}, size_divisor=32),
                              BertTokenizer(str(folder / "vocab.txt")))
    config = ViltConfig(vocab_size=10, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, image_size=32, patch_size=16, max_position_embeddings=40,
                        id2label={0: "no", 1: "yes", 2: "Yes"}, label2id={"no": 0, "yes": 1, "Yes": 2})
    model = ViltForQuestionAnswering(config)
    with torch.no_grad():  # the head ignores its input and always picks label `favoured`
        model.classifier[-1].weight.zero_()
        model.classifier[-1].bias.copy_(torch.nn.functional.one_hot(torch.tensor(favoured), 3) * 5.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def test_hf_vqa_judge_with_a_tiny_vilt(tmp_path, one_torch_thread):
    images = [Image.new("RGB", (40, 40), "red"), Image.new("RGB", (24, 24), "blue"), Image.new("RGB", (32, 32))]
    questions = ["is there a cat?", "cat?", "is there a dog?"]
    judge = HFVQAJudge(str(_tiny_vilt(tmp_path / "yes", 1)), batch_size=2, device="cpu")
    assert judge.style == "classify" and judge.judge_id.startswith("hf-vqa:yes@unpinned(classify")
    assert judge.answer(images, questions) == ["yes", "yes", "yes"]
    capital = str(_tiny_vilt(tmp_path / "capital", 2))
    assert HFVQAJudge(capital, device="cpu").answer(images[:1], questions[:1]) == ["Yes"]  # raw
    assert HFVQAJudge(capital, device="cpu", normalize=True).answer(images[:1], questions[:1]) == ["yes"]
    with pytest.raises(HarnessError, match="could not load"):
        HFVQAJudge(str(tmp_path / "yes" / "vocab.txt"), device="cpu")


def test_openai_vqa_judge_against_fake_server():
    def responder(body):
        text = body["messages"][-1]["content"][-1]["text"]
        return Fault.server_error() if "broken" in text else ("Yes." if "cat" in text else "no")

    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    with FakeOpenAIServer(responder) as server:
        judge = OpenAIVQAJudge(server.base_url, "vlm-2024-01-01", max_retries=0, backoff_s=0)
        assert judge.answer([red, blue], ["Is there a cat?", "Is there a dog?"]) == ["Yes.", "no"]
        body = server.requests[0].body
        content = body["messages"][0]["content"]
        assert content[0]["type"] == "image_url" and content[1]["text"].startswith("Is there a")
        assert content[1]["text"].endswith("\nAnswer the question using a single word or phrase, in lower case.")
        assert body["temperature"] == 0
        with pytest.raises(HarnessError, match="1 of 2 calls failed"):
            judge.answer([red, red], ["Is the broken cat red?", "Is there a red cat?"])
        calls = len(server.requests)
        normalized = OpenAIVQAJudge(server.base_url, "vlm-2024-01-01", normalize=True)
        assert normalized.answer([red], ["Is there a cat?"]) == ["yes"]
        # answers received before a failure are remembered: only new pairs are asked again
        assert judge.answer([red], ["Is there a red cat?"]) == ["Yes."] and len(server.requests) == calls + 1
    with pytest.raises(UndatedModelError):
        OpenAIVQAJudge("http://127.0.0.1:9/v1", "gpt-4o")


def test_a_fixed_mode_subset_run_replays_through_the_cli_with_its_items_file(tmp_path, capsys):
    from harness.cli import main

    csv, prompts = write_csv(tmp_path / "q.csv"), _prompts(tmp_path)
    spec = RunSpec(benchmark=ComponentSpec("dpg", {"csv": str(csv), "prompts": str(prompts), "mode": "fixed"}),
                   model=ComponentSpec("test-dpg-painter"), judges={"vqa": ComponentSpec("test-dpg-vqa")}, limit=2)
    outcome = evaluate(spec, tmp_path / "run", show_progress=False)
    run = tmp_path / "run"
    assert (run / "dpg_items.txt").read_text().split() == ["first", "alpha"]
    args = ["rescore", "dpg", str(run / "dpg_detail.txt"), "--csv", str(csv), "--mode", "fixed"]
    assert main(args + ["--items", str(run / "dpg_items.txt")]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["overall"] == outcome.summary.scores["overall"]
    assert main(args) == 0  # without the items file every CSV item is expected: beta counts as 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["overall"] < outcome.summary.scores["overall"]
