"""GenEval rules: hand-computed cases for every tag and every threshold edge (PROTOCOLS.md 1.4)."""
from __future__ import annotations

import json

import pytest

from benchmarks.geneval.rules import (GenEvalOptions, evaluate, keep_detections, relations,
                                      score_image)
from harness.errors import InputError
from harness.judges.base import Detection

DEFAULT = GenEvalOptions()


def det(label: str, score: float, box=(0, 0, 10, 10), color: str | None = None) -> Detection:
    return Detection(label=label, score=score, box=list(box), color=color)


def file_colors(found: list[Detection], class_name: str) -> list[str]:
    return [d.color for d in found]


def judge(metadata: dict, detections: list[Detection], options: GenEvalOptions = DEFAULT):
    objects = keep_detections(detections, metadata["tag"], options)
    return evaluate(metadata, objects, file_colors, options)


def single(name: str) -> dict:
    return {"tag": "single_object", "include": [{"class": name, "count": 1}],
            "prompt": f"a photo of a {name}"}


def counting(name: str, n: int) -> dict:
    return {"tag": "counting", "include": [{"class": name, "count": n}],
            "exclude": [{"class": name, "count": n + 1}], "prompt": f"a photo of {n} {name}s"}


def colors(name: str, color: str) -> dict:
    return {"tag": "colors", "include": [{"class": name, "count": 1, "color": color}],
            "prompt": f"a photo of a {color} {name}"}


def position(a: str, rel: str, b: str) -> dict:
    return {"tag": "position", "include": [{"class": b, "count": 1},
                                           {"class": a, "count": 1, "position": [rel, 0]}],
            "prompt": f"a photo of a {a} {rel} a {b}"}


# --- options -----------------------------------------------------------------------------------

def test_default_options_are_the_official_ones():
    assert DEFAULT.to_dict() == {
        "threshold": 0.3, "counting_threshold": 0.9, "max_objects": 16, "max_overlap": 1.0,
        "position_threshold": 0.1, "bgcolor": "#999", "crop": True, "clip_model": "ViT-L-14",
        "model": "mask2former_swin-s-p4-w7-224_lsj_8x2_50e_coco"}


def test_options_parse_like_the_official_cli():
    parsed = GenEvalOptions.from_options(["threshold=0.5", "max_objects=4", "bgcolor=original"])
    assert (parsed.threshold, parsed.max_objects, parsed.bgcolor) == (0.5, 4, "original")
    assert GenEvalOptions.from_options({"max_overlap": "0.5"}).max_overlap == 0.5
    # the official turns crop on only for the exact text "1"
    assert GenEvalOptions.from_options({"crop": "1"}).crop is True
    assert GenEvalOptions.from_options({"crop": "true"}).crop is False
    assert GenEvalOptions.from_options(["bgcolor=a=b"]).bgcolor == "a=b"  # split on the first "="


@pytest.mark.parametrize("bad", [["threshhold=0.5"], ["max_objects=1.5"], ["threshold"]])
def test_bad_options_are_rejected(bad):
    with pytest.raises(InputError):
        GenEvalOptions.from_options(bad)


# --- filtering -------------------------------------------------------------------------------

def test_threshold_is_strict():
    assert judge(single("cat"), [det("cat", 0.3)]) == (False, "expected cat>=1, found 0")
    assert judge(single("cat"), [det("cat", 0.3001)]) == (True, "")


def test_threshold_compares_in_float32_like_the_detector_output():
    # float32(0.3) widened to float64 is 0.30000001192092896 > 0.3, but the official compares
    # float32 scores with float32(0.3): not above the threshold.
    assert judge(single("cat"), [det("cat", 0.30000001192092896)])[0] is False
    assert judge(single("cat"), [det("cat", 0.3000001)])[0] is True  # next float32 up


def test_counting_threshold_applies_to_every_class():
    kept = keep_detections([det("cat", 0.95), det("cat", 0.9), det("dog", 0.8), det("dog", 0.91)],
                           "counting", DEFAULT)
    assert {k: [d.score for d in v] for k, v in kept.items()} == {"cat": [0.95], "dog": [0.91]}
    # the same detections under another tag use 0.3
    kept = keep_detections([det("cat", 0.95), det("cat", 0.9), det("dog", 0.8)], "two_object",
                           DEFAULT)
    assert {k: len(v) for k, v in kept.items()} == {"cat": 2, "dog": 1}


def test_counting_09_dropped_095_kept():
    assert judge(counting("cat", 2), [det("cat", 0.95), det("cat", 0.9)]) == \
        (False, "expected cat>=2, found 1")
    assert judge(counting("cat", 2), [det("cat", 0.95), det("cat", 0.95, (20, 0, 30, 10))]) == \
        (True, "")


def test_at_most_16_objects_per_class_most_confident_first():
    detections = [det("cat", 0.31 + i / 100, (i, 0, i + 5, 5)) for i in range(17)]
    kept = keep_detections(detections, "single_object", DEFAULT)["cat"]
    assert len(kept) == 16
    assert [d.box[0] for d in kept] == list(range(16, 0, -1))   # the 0.31 one is cut


def test_classes_with_nothing_kept_are_absent_and_order_follows_class_order():
    detections = [det("dog", 0.5), det("cat", 0.2), det("bird", 0.6)]
    assert list(keep_detections(detections, "two_object", DEFAULT)) == ["dog", "bird"]
    ordered = keep_detections(detections, "two_object", DEFAULT, class_order=["bird", "cat", "dog"])
    assert list(ordered) == ["bird", "dog"]
    # labels missing from class_order come after, in first-appearance order
    assert list(keep_detections(detections, "two_object", DEFAULT, class_order=["bird"])) == \
        ["bird", "dog"]


def test_equal_scores_put_the_later_detection_first():
    # np.argsort(scores)[::-1] on a small array (insertion sort, stable) reverses ties
    kept = keep_detections([det("cat", 0.5, (0, 0, 1, 1)), det("cat", 0.5, (2, 0, 3, 1))],
                           "single_object", DEFAULT)["cat"]
    assert [d.box[0] for d in kept] == [2, 0]


@pytest.mark.parametrize("n, extra, expected", [
    (3, 0, (True, "")),
    (3, 1, (False, "expected cat<4, found 4")),
    (3, -1, (False, "expected cat>=3, found 2")),
    (2, 1, (False, "expected cat<3, found 3")),
    (4, -4, (False, "expected cat>=4, found 0")),
])
def test_counting_needs_exactly_n(n, extra, expected):
    detections = [det("cat", 0.99, (20 * i, 0, 20 * i + 10, 10)) for i in range(n + extra)]
    assert judge(counting("cat", n), detections) == expected


def test_nms_off_by_default_so_a_duplicate_box_counts_twice():
    detections = [det("cat", 0.99, (0, 0, 9, 9)), det("cat", 0.98, (0, 0, 9, 9)),
                  det("cat", 0.97, (50, 0, 59, 9))]
    assert judge(counting("cat", 2), detections) == (False, "expected cat<3, found 3")
    with_nms = GenEvalOptions(max_overlap=0.5)
    assert judge(counting("cat", 2), detections, with_nms) == (True, "")


def test_nms_uses_the_plus_one_pixel_area():
    # +1 areas: 10x10 = 100 each, overlap 5x10 = 50, union 150, IoU 1/3.
    # (Without +1: 81 each, overlap 36, IoU 36/126 = 0.286, which 0.30 would keep.)
    detections = [det("cat", 0.9, (0, 0, 9, 9)), det("cat", 0.8, (5, 0, 14, 9))]
    for max_overlap, count in ((0.34, 2), (0.3334, 2), (0.3333, 1), (0.30, 1)):
        kept = keep_detections(detections, "single_object", GenEvalOptions(max_overlap=max_overlap))
        assert len(kept["cat"]) == count, max_overlap


# --- relations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("box_b, expected", [
    ((20, 0, 30, 10), {"left of"}),        # dx = -18 / 20 = -0.9
    ((5, 0, 15, 10), {"left of"}),         # dx = -3 / 5 = -0.6
    ((1, 0, 11, 10), set()),               # |offset| 1 < margin 2: revised 0
    ((10, 10, 20, 20), {"left of", "above"}),   # (-8, -8) / 14.142 = -0.566 each
    ((-20, 0, -10, 10), {"right of"}),
    ((0, 20, 10, 30), {"above"}),
    ((0, -20, 10, -10), {"below"}),
    ((0, 0, 10, 10), set()),               # same box
    ((8, 0, 18, 10), {"left of"}),         # offset -8, margin 2: dx = -6 / 8 = -0.75
])
def test_relations_vectors(box_b, expected):
    assert relations((0, 0, 10, 10), box_b) == expected


def test_relations_half_is_not_enough():
    # offset (-4, -4), margin 2 per axis: revised (-2, -2) / 5.657 = -0.354 each: no relation
    assert relations((0, 0, 10, 10), (4, 4, 14, 14)) == set()
    # offset (-4, 0): revised -2 / 4 = exactly -0.5, and the test is strict
    assert relations((0, 0, 10, 10), (4, 0, 14, 10)) == set()
    # position_threshold 0 makes any offset count: -4 / 4 = -1
    assert relations((0, 0, 10, 10), (4, 0, 14, 10), 0.0) == {"left of"}


# --- whole prompts, every tag -----------------------------------------------------------------

def test_single_object():
    assert judge(single("cat"), [det("cat", 0.5)]) == (True, "")
    assert judge(single("cat"), [det("dog", 0.9)]) == (False, "expected cat>=1, found 0")


def test_two_object_missing_one_class():
    meta = {"tag": "two_object", "include": [{"class": "cat", "count": 1},
                                             {"class": "dog", "count": 1}], "prompt": "p"}
    assert judge(meta, [det("cat", 0.9), det("dog", 0.4)]) == (True, "")
    assert judge(meta, [det("cat", 0.9), det("dog", 0.2)]) == (False, "expected dog>=1, found 0")
    assert judge(meta, []) == (False, "expected cat>=1, found 0\nexpected dog>=1, found 0")


def test_colors_look_only_at_the_top_count_objects():
    confident_wrong = [det("cup", 0.9, color="blue"), det("cup", 0.5, color="red")]
    assert judge(colors("cup", "red"), confident_wrong) == \
        (False, "expected red cup>=1, found 0 red; and 1 blue")
    less_confident_wrong = [det("cup", 0.9, color="red"), det("cup", 0.5, color="blue")]
    assert judge(colors("cup", "red"), less_confident_wrong) == (True, "")


def test_color_judge_is_asked_only_about_top_count_objects_of_colour_clauses():
    calls = []

    def spy(found, class_name):
        calls.append((class_name, [d.score for d in found]))
        return [d.color for d in found]

    meta = {"tag": "color_attr", "include": [{"class": "cup", "count": 2, "color": "red"},
                                             {"class": "dog", "count": 1}], "prompt": "p"}
    objects = keep_detections([det("cup", 0.5, color="red"), det("cup", 0.9, color="red"),
                               det("cup", 0.7, color="blue"), det("dog", 0.9)],
                              "color_attr", DEFAULT)
    # the top two are red and blue; the red 0.5 one, third, is never looked at
    assert evaluate(meta, objects, spy, DEFAULT) == \
        (False, "expected red cup>=2, found 1 red; and 1 red, 1 blue")
    assert calls == [("cup", [0.9, 0.7])]
    calls.clear()
    evaluate(colors("cup", "red"), {}, spy, DEFAULT)       # count not met: no colour question
    assert calls == []


def test_colour_reason_lists_counts_in_colors_order():
    meta = {"tag": "colors", "include": [{"class": "cup", "count": 3, "color": "blue"}],
            "prompt": "p"}
    found = [det("cup", 0.9, color="white"), det("cup", 0.8, color="red"),
             det("cup", 0.7, color="white")]
    assert judge(meta, found) == (False, "expected blue cup>=3, found 0 blue; and 1 red, 2 white")


def test_color_attr_with_one_wrong_colour():
    meta = {"tag": "color_attr", "include": [{"class": "cup", "count": 1, "color": "red"},
                                             {"class": "dog", "count": 1, "color": "black"}],
            "prompt": "a photo of a red cup and a black dog"}
    good = [det("cup", 0.9, color="red"), det("dog", 0.9, color="black")]
    assert judge(meta, good) == (True, "")
    bad = [det("cup", 0.9, color="red"), det("dog", 0.9, color="brown")]
    assert judge(meta, bad) == (False, "expected black dog>=1, found 0 black; and 1 brown")


def test_position_pass_and_fail():
    meta = position("dog", "left of", "cat")
    cat, dog_left = det("cat", 0.9, (20, 0, 30, 10)), det("dog", 0.9, (0, 0, 10, 10))
    assert judge(meta, [cat, dog_left]) == (True, "")
    dog_right = det("dog", 0.9, (40, 0, 50, 10))
    assert judge(meta, [cat, dog_right]) == \
        (False, "expected dog left of target, found right of target")
    dog_same = det("dog", 0.9, (21, 0, 31, 10))
    assert judge(meta, [cat, dog_same]) == (False, "expected dog left of target, found  target")


def test_position_with_two_relations_lists_them_in_relations_order():
    meta = position("dog", "below", "cat")
    found = [det("cat", 0.9, (10, 10, 20, 20)), det("dog", 0.9, (0, 0, 10, 10))]
    assert judge(meta, found) == \
        (False, "expected dog below target, found left of and above target")


def test_position_without_target():
    meta = position("dog", "left of", "cat")
    assert judge(meta, [det("dog", 0.9)]) == \
        (False, "expected cat>=1, found 0\nno target for dog to be left of")
    assert judge(meta, [det("cat", 0.9)]) == (False, "expected dog>=1, found 0")


def test_position_uses_only_the_most_confident_objects():
    meta = position("dog", "left of", "cat")
    found = [det("cat", 0.9, (20, 0, 30, 10)), det("cat", 0.5, (-40, 0, -30, 10)),
             det("dog", 0.9, (0, 0, 10, 10)), det("dog", 0.4, (60, 0, 70, 10))]
    assert judge(meta, found) == (True, "")


def test_position_pointing_forward_is_an_error():
    meta = {"tag": "position", "include": [{"class": "dog", "count": 1, "position": ["left of", 1]},
                                           {"class": "cat", "count": 1}], "prompt": "p"}
    with pytest.raises(InputError):
        judge(meta, [det("dog", 0.9), det("cat", 0.9)])


# --- the official row ----------------------------------------------------------------------------

def test_score_image_row():
    meta = {"tag": "colors", "include": [{"class": "cup", "count": 1, "color": "red"}],
            "prompt": "a photo of a red cup"}
    row = score_image("00005/samples/0000.png", meta,
                      [det("dog", 0.5, (1, 2, 3.5, 4)), det("cup", 0.95, (0, 0, 10, 10), "red"),
                       det("cup", 0.1)], file_colors, class_order=["cup", "dog"])
    assert list(row) == ["filename", "tag", "prompt", "correct", "reason", "metadata", "details"]
    assert row["filename"] == "00005/samples/0000.png"
    assert (row["tag"], row["prompt"], row["correct"], row["reason"]) == \
        ("colors", "a photo of a red cup", True, "")
    assert row["metadata"] == ('{"tag": "colors", "include": [{"class": "cup", "count": 1, '
                               '"color": "red"}], "prompt": "a photo of a red cup"}')
    # float32 values widened, as ndarray.tolist() prints them: 0.95 -> 0.949999988079071
    assert row["details"] == ('{"cup": [[0.0, 0.0, 10.0, 10.0, 0.949999988079071]], '
                              '"dog": [[1.0, 2.0, 3.5, 4.0, 0.5]]}')
    assert json.loads(row["metadata"]) == meta
