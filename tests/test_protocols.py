"""Protocol cards as comparisons read them."""
from reports.protocols import comparable_card, flatten, protocol_parts

CARD = {"benchmark": "mmbench", "questions": 40, "run_seed": 0,
        "model": {"name": "janus", "cfg_weight": 5.0},
        "judges": {"choice_extractor": {"name": "openai-compatible",
                                        "params": {"model": "gpt-4o-mini-2024-07-18", "base_url": "http://127.0.0.1:1/v1",
                                                   "max_retries": 3, "temperature": 0}}}}


def test_a_judge_reached_at_another_address_is_the_same_judge():
    moved = {**CARD, "judges": {"choice_extractor": {"name": "openai-compatible", "params": {
        "model": "gpt-4o-mini-2024-07-18", "base_url": "https://proxy.example/v1", "max_retries": 9, "temperature": 0}}}}
    assert comparable_card(CARD) == comparable_card(moved)
    assert comparable_card(CARD)["judges"]["choice_extractor"]["params"] == {"model": "gpt-4o-mini-2024-07-18",
                                                                            "temperature": 0}
    other = {**CARD, "judges": {"choice_extractor": {"name": "openai-compatible", "params": {
        "model": "gpt-4.1-2025-04-14", "temperature": 0}}}}
    assert protocol_parts(CARD)["judges"] != protocol_parts(other)["judges"]


def test_flattened_leaves_keep_their_types_and_parts_split_the_model_off():
    assert flatten({"a": {"b": 5, "c": 5.0, "d": "5"}}) == {"a.b": "5", "a.c": "5.0", "a.d": '"5"'}
    parts = protocol_parts(CARD)
    assert parts["model"] == {"model.name": '"janus"', "model.cfg_weight": "5.0", "run_seed": "0"}
    assert "questions" in parts["benchmark"] and "run_seed" not in parts["benchmark"]
